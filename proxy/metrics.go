package proxy

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the proxy's Prometheus metrics. Sessions update them on
// their hot paths with pre-resolved counters only (no label lookups).
//
// NOTE: a nil *Metrics is valid and records nothing, so a server without
// an admin listener pays a nil check per statement.
type Metrics struct {
	sessions       prometheus.Gauge
	sessionsTotal  prometheus.Counter
	authFailures   prometheus.Counter
	stmtAllowed    prometheus.Counter
	stmtRewritten  prometheus.Counter
	stmtDenied     prometheus.Counter
	rewriteSeconds prometheus.Histogram
	upstreamSecs   prometheus.Histogram
	bytesToClient  prometheus.Counter
	panics         prometheus.Counter
	poolTimeouts   prometheus.Counter
	// poolUserCapped counts those of poolTimeouts whose login was at
	// upstream.pool.max_per_user.
	poolUserCapped prometheus.Counter
	// poolStmts counts the named statements prepared again on, and
	// closed on, backends of the transaction pool (pooled_stmt.go).
	poolStmtsPrepared prometheus.Counter
	poolStmtsClosed   prometheus.Counter
	// cancels counts cancel requests by outcome (cancelOutcome).
	cancels [cancelOutcomes]prometheus.Counter
	// endCancels counts the cancel requests ending sessions sent for the
	// statements they left running, by outcome (endCancelOutcome).
	endCancels [endCancelOutcomes]prometheus.Counter
	// refusedServer and refusedUser count the connections refused by
	// listen.max_connections and by a login's cap (limits.go).
	refusedServer prometheus.Counter
	refusedUser   prometheus.Counter
	// refusedAddr and refusedAuth count those refused by the startup
	// cap of one address and by the failed-login throttle (throttle.go).
	refusedAddr prometheus.Counter
	refusedAuth prometheus.Counter
	// refusalsUnrecorded counts the refused startups the audit trail
	// does not record, past the first of their address in a window
	// (refused.go).
	refusalsUnrecorded prometheus.Counter
	// pool reports the transaction pool's backends for its gauges; nil
	// in session mode (the gauges read 0).
	pool atomic.Pointer[pool]
	// spares reports the backends session mode keeps; nil in transaction
	// mode or when it keeps none (the gauge reads 0). keptReused counts
	// the sessions that started on one.
	spares     atomic.Pointer[spares]
	keptReused prometheus.Counter
	// Reloads and ReloadFailures count policy reloads; the command that
	// reloads updates them.
	Reloads        prometheus.Counter
	ReloadFailures prometheus.Counter
	policyInfo     *prometheus.GaugeVec
}

// NewMetrics registers the proxy's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	stmts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgveil_statements_total",
		Help: "Statements received, by decision: allowed (forwarded unchanged), rewritten, denied.",
	}, []string{"decision"})
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgveil_connections_refused_total",
		Help: "Client connections refused (53300, or closed unread) by a connection cap: listen.max_connections (limit=\"server\"), a login's (limit=\"user\"), listen.max_startup_per_address (limit=\"address\"), or refused before authentication after too many failed logins of that login from that address (limit=\"auth_failures\").",
	}, []string{"limit"})
	cancels := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgveil_cancel_requests_total",
		Help: "Cancel requests received, by outcome: forwarded upstream; unknown (a key pgveil did not issue, or a session gone); idle (the session holds no backend); busy (another of the session's is waiting for its turn or being forwarded); failed (forwarding failed, or found no turn in time).",
	}, []string{"outcome"})
	endCancels := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgveil_end_cancels_total",
		Help: "Cancel requests sent for the statement a session left running as it ended, by outcome: delivered (PostgreSQL received it); busy (too many being sent at once: not sent); failed (sending it failed or timed out). A statement whose cancel was not delivered runs on until it ends or its backend notices the closed connection (upstream.client_connection_check_interval).",
	}, []string{"outcome"})
	m := &Metrics{
		refusedServer: refused.WithLabelValues("server"),
		refusedUser:   refused.WithLabelValues("user"),
		refusedAddr:   refused.WithLabelValues("address"),
		refusedAuth:   refused.WithLabelValues("auth_failures"),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pgveil_sessions", Help: "Client sessions open now, each counted from just before its first ReadyForQuery until it ends; connections still in their startup (authentication, the upstream connection) are not.",
		}),
		sessionsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgveil_sessions_total", Help: "Client sessions started.",
		}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgveil_auth_failures_total", Help: "Failed authentications (wrong password or unknown user).",
		}),
		stmtAllowed:   stmts.WithLabelValues("allowed"),
		stmtRewritten: stmts.WithLabelValues("rewritten"),
		stmtDenied:    stmts.WithLabelValues("denied"),
		rewriteSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pgveil_rewrite_seconds",
			Help:    "Time to check and rewrite one statement text (cache hits included).",
			Buckets: []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 5e-2},
		}),
		upstreamSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pgveil_upstream_seconds",
			Help:    "Time from a batch (Query or Sync) sent upstream to its ReadyForQuery.",
			Buckets: prometheus.ExponentialBuckets(1e-4, 4, 10),
		}),
		bytesToClient: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgveil_client_bytes_sent_total", Help: "Bytes sent to clients.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgveil_panics_total", Help: "Sessions ended by an internal error (a panic contained to its session).",
		}),
		poolTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgveil_pool_wait_timeouts_total", Help: "Transactions refused (53300) because no upstream connection of the transaction pool became free in time.",
		}),
		poolUserCapped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgveil_pool_wait_timeouts_user_cap_total", Help: "Of pgveil_pool_wait_timeouts_total, those whose login held upstream.pool.max_per_user backends as the wait ended.",
		}),
		refusalsUnrecorded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgveil_audit_refusals_unrecorded_total",
			Help: "Startups refused before authentication that the audit trail does not record: past the first connect_refused record of their client address in a minute, or past the addresses it remembers.",
		}),
		poolStmtsPrepared: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgveil_pool_statements_prepared_total", Help: "Prepared statements of transaction-mode sessions prepared again on a backend of the pool that lacked them, when a transaction named them.",
		}),
		poolStmtsClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgveil_pool_statements_closed_total", Help: "Prepared statements closed on backends of the transaction pool that held more than their bound, least recently used first.",
		}),
		keptReused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgveil_kept_backends_reused_total", Help: "Session-mode sessions that started on a backend an ended session left (upstream.pool.keep_idle).",
		}),
		Reloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgveil_policy_reloads_total", Help: "Successful policy reloads.",
		}),
		ReloadFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgveil_policy_reload_failures_total", Help: "Policy reloads refused (the old policy kept serving).",
		}),
		policyInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgveil_policy_info", Help: "The policy version in force (value 1).",
		}, []string{"version"}),
	}
	poolGauge := func(name, help string, read func(p *pool) int) prometheus.GaugeFunc {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			if p := m.pool.Load(); p != nil {
				return float64(read(p))
			}
			return 0
		})
	}
	reg.MustRegister(
		poolGauge("pgveil_pool_backends", "Upstream backends the transaction pool holds open: in use, free or being opened.",
			func(p *pool) int { open, _, _ := p.stats(); return open }),
		poolGauge("pgveil_pool_backends_free", "Upstream backends free in the transaction pool.",
			func(p *pool) int { _, free, _ := p.stats(); return free }),
		poolGauge("pgveil_pool_waiting", "Client transactions waiting for a backend of the transaction pool.",
			func(p *pool) int { _, _, waiting := p.stats(); return waiting }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pgveil_kept_backends", Help: "Session-mode upstream backends of ended sessions kept open for later sessions (upstream.pool.keep_idle).",
		}, func() float64 { return float64(m.spares.Load().count()) }))
	for o := range cancelOutcome(cancelOutcomes) {
		m.cancels[o] = cancels.WithLabelValues(o.String())
	}
	for o := range endCancelOutcome(endCancelOutcomes) {
		m.endCancels[o] = endCancels.WithLabelValues(o.String())
	}
	reg.MustRegister(m.sessions, m.sessionsTotal, m.authFailures, stmts, m.rewriteSeconds,
		m.upstreamSecs, m.bytesToClient, m.panics, m.poolTimeouts, m.poolUserCapped, m.poolStmtsPrepared, m.poolStmtsClosed, refused, m.refusalsUnrecorded, m.keptReused, m.Reloads, m.ReloadFailures, m.policyInfo,
		cancels, endCancels)
	return m
}

func (m *Metrics) cancelRequest(o cancelOutcome) {
	if m != nil {
		m.cancels[o].Inc()
	}
}

func (m *Metrics) endCancel(o endCancelOutcome) {
	if m != nil {
		m.endCancels[o].Inc()
	}
}

// SetPolicyVersion reports version as the policy in force.
func (m *Metrics) SetPolicyVersion(version string) {
	if m == nil {
		return
	}
	m.policyInfo.Reset()
	m.policyInfo.WithLabelValues(version).Set(1)
}

func (m *Metrics) sessionStarted() {
	if m != nil {
		m.sessions.Inc()
		m.sessionsTotal.Inc()
	}
}

func (m *Metrics) sessionEnded() {
	if m != nil {
		m.sessions.Dec()
	}
}

func (m *Metrics) keptBackendReused() {
	if m != nil {
		m.keptReused.Inc()
	}
}

// connectionRefused counts a connection refused by a cap: a login's when
// user is true, listen.max_connections otherwise.
func (m *Metrics) connectionRefused(user bool) {
	switch {
	case m == nil:
	case user:
		m.refusedUser.Inc()
	default:
		m.refusedServer.Inc()
	}
}

// addressRefused counts a connection closed past
// listen.max_startup_per_address.
func (m *Metrics) addressRefused() {
	if m != nil {
		m.refusedAddr.Inc()
	}
}

// authThrottled counts a login refused by the failed-login throttle.
func (m *Metrics) authThrottled() {
	if m != nil {
		m.refusedAuth.Inc()
	}
}

// refusalUnrecorded counts a refused startup the audit trail does not
// record.
func (m *Metrics) refusalUnrecorded() {
	if m != nil {
		m.refusalsUnrecorded.Inc()
	}
}

// poolTimedOut counts a transaction refused for want of a backend;
// userCap says its login was at upstream.pool.max_per_user.
func (m *Metrics) poolTimedOut(userCap bool) {
	if m != nil {
		m.poolTimeouts.Inc()
		if userCap {
			m.poolUserCapped.Inc()
		}
	}
}

// poolStatements counts n statements prepared again on a pool's
// backend and closed closed on one.
func (m *Metrics) poolStatements(prepared, closed int) {
	if m != nil {
		m.poolStmtsPrepared.Add(float64(prepared))
		m.poolStmtsClosed.Add(float64(closed))
	}
}

func (m *Metrics) panicked() {
	if m != nil {
		m.panics.Inc()
	}
}

func (m *Metrics) authFailed() {
	if m != nil {
		m.authFailures.Inc()
	}
}

// statement counts a decision and the time the Rewriter took.
func (m *Metrics) statement(rewritten, denied bool, took time.Duration) {
	if m == nil {
		return
	}
	switch {
	case denied:
		m.stmtDenied.Inc()
	case rewritten:
		m.stmtRewritten.Inc()
	default:
		m.stmtAllowed.Inc()
	}
	m.rewriteSeconds.Observe(took.Seconds())
}

// batchDone records a batch's upstream latency and the bytes sent for it.
func (m *Metrics) batchDone(took time.Duration, bytes int64) {
	if m == nil {
		return
	}
	if took > 0 {
		m.upstreamSecs.Observe(took.Seconds())
	}
	m.bytesToClient.Add(float64(bytes))
}
