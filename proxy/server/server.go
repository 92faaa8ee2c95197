package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// Config is what Start needs to run pgveil.
type Config struct {
	// Path is the configuration file or directory, read again by Reload.
	Path string
	// Config is the configuration loaded from Path.
	Config *policy.Config
	// Logger receives the diagnostic log; zap.NewNop() when nil.
	Logger *zap.Logger
	// Diagnostics receives the diagnostics of a start that fails (the
	// identity sources', the checks against the database), as
	// policy.WriteDiagnostics writes them; warnings of a start that
	// succeeds are logged instead. nil discards them.
	Diagnostics io.Writer
	// Version is pgveil's version, for the audit trail's start record.
	Version string
}

// Server is a running pgveil: the proxy, its policies, the audit trail
// and the admin endpoint, from Start to Shutdown or Close.
type Server struct {
	log      *zap.Logger
	cfg      *policy.Config
	proxy    *proxy.Server
	policies *Policies
	reloader *Reloader
	// audit is nil without an audit block.
	audit *audit.Log
	// stopAdmin shuts the admin listener down; nil without an admin block.
	stopAdmin func()
	// admin serves the admin endpoints; nil without an admin block.
	admin *Admin
	// catalog reads the upstream catalog again while the server runs.
	catalog *catalogWatch
	// identities read the identity blocks' rows again while the server
	// runs.
	identities *identityWatch
	addr       net.Addr
	adminAddr  net.Addr
	// served is closed when the proxy stops serving; err is why.
	served chan struct{}
	err    error
	// stopOnce runs stop once, whichever of Shutdown and Close comes first.
	stopOnce sync.Once
}

// Start loads the enforcement of cfg.Config (identities, catalog
// snapshot, policies), opens the audit trail, starts the admin endpoint
// and serves clients on the listen address. Policies are always
// enforced: with no table blocks, every ungoverned table is denied (fail
// closed). On error nothing is left running.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	c := cfg.Config
	enf, diags, err := LoadEnforcement(ctx, c)
	if err != nil {
		if len(diags) > 0 && cfg.Diagnostics != nil {
			_ = policy.WriteDiagnostics(cfg.Diagnostics, nil, diags)
		}
		return nil, fmt.Errorf("loading policies: %w", err)
	}
	// NOTE: warnings go to the log, as a reload's do: serve's stderr is
	// then the log alone (JSON lines with --log-format json).
	logWarnings(log, diags)
	enf.SetLogger(log)
	s := &Server{log: log, cfg: c, policies: NewPolicies(enf), served: make(chan struct{})}
	opts := proxy.Options{Logger: log}
	s.policies.Apply(&opts)
	log.Info("policies loaded", zap.String("policy_version", enf.Version),
		zap.Int("relations", len(enf.Engine.Catalog().Relations)))

	var reg *prometheus.Registry
	if c.Admin != nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		opts.Metrics = proxy.NewMetrics(reg)
		opts.Metrics.SetPolicyVersion(enf.Version)
		RegisterPolicies(reg, s.policies)
	}
	if s.audit, err = openAudit(c, reg, log); err != nil {
		return nil, fmt.Errorf("opening the audit log: %w", err)
	}
	// NOTE: from here on, a failure must drain the audit log it opened.
	defer func() {
		if err != nil {
			s.closeAudit()
		}
	}()
	if s.audit != nil {
		opts.Audit = s.audit
		if c.Audit.LogParameters {
			opts.AuditParameters = c.Audit.ParameterMaxLength
		}
		if c.Audit.OnError == policy.AuditRefuse {
			opts.AuditFailing = s.audit.Failing
		}
		s.audit.Write(&audit.Record{Event: "start", PolicyVersion: enf.Version, Message: "pgveil " + cfg.Version})
	}

	s.catalog = newCatalogWatch(s.policies, log, reg, s.audit)
	// NOTE: from here on, a failure must stop the watch it started.
	defer func() {
		if err != nil {
			s.catalog.close()
		}
	}()
	opts.StaleCatalog = s.catalog.Kick
	if s.proxy, err = proxy.New(proxy.ConfigOf(c), opts); err != nil {
		return nil, fmt.Errorf("starting pgveil: %w", err)
	}
	ln, err := net.Listen("tcp", c.Listen.Address)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", c.Listen.Address, err)
	}
	s.addr = ln.Addr()
	if c.Admin != nil {
		if s.admin, s.stopAdmin, s.adminAddr, err = serveAdmin(c, reg, s.policies, log); err != nil {
			ln.Close()
			return nil, fmt.Errorf("starting the admin listener on %s: %w", c.Admin.Address, err)
		}
	}
	s.reloader = &Reloader{Path: cfg.Path, Base: c, Policies: s.policies, Server: s.proxy, Metrics: opts.Metrics, Logger: log}
	if s.audit != nil {
		s.reloader.Audit = s.audit
	}
	s.identities = newIdentityWatch(s.reloader, log, reg)
	go func() {
		err := s.proxy.Serve(ln)
		if errors.Is(err, proxy.ErrServerClosed) {
			err = nil
		}
		s.err = err
		close(s.served)
	}()
	return s, nil
}

// Addr is the address the proxy listens on.
func (s *Server) Addr() net.Addr { return s.addr }

// AdminAddr is the address of the admin endpoint; nil without one.
func (s *Server) AdminAddr() net.Addr { return s.adminAddr }

// Policies are the policies in force.
func (s *Server) Policies() *Policies { return s.policies }

// Done is closed when the proxy stops serving: after Shutdown or Close,
// or when accepting connections fails (see Err).
func (s *Server) Done() <-chan struct{} { return s.served }

// Err is why the proxy stopped serving once Done is closed: nil after
// Shutdown or Close.
func (s *Server) Err() error {
	<-s.served
	return s.err
}

// Reload loads the configuration again and puts its policies in force;
// see Reloader.
func (s *Server) Reload(ctx context.Context) error {
	err := s.reloader.Reload(ctx)
	if err == nil {
		// upstream.catalog_refresh and the identity blocks' refresh may
		// have changed; the identities were just read.
		s.catalog.rearm()
		s.identities.rearm()
	}
	return err
}

// Shutdown stops accepting connections and lets running statements
// finish until ctx ends, when the remaining sessions are closed (and
// ctx.Err() returned); then it drains the audit log and stops the admin
// endpoint. From its start /readyz answers 503.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.admin != nil {
		s.admin.Drain()
	}
	err := s.proxy.Shutdown(ctx)
	s.stop()
	return err
}

// Close closes every connection at once, drains the audit log and stops
// the admin endpoint.
func (s *Server) Close() error {
	if s.admin != nil {
		s.admin.Drain()
	}
	err := s.proxy.Close()
	s.stop()
	return err
}

// stop waits for the proxy to stop serving, records the stop in the
// audit log and drains it, then stops the admin endpoint.
func (s *Server) stop() {
	s.stopOnce.Do(func() {
		<-s.served
		// NOTE: before the audit log closes: a refresh writes to it.
		s.identities.close()
		s.catalog.close()
		s.closeAudit()
		if s.stopAdmin != nil {
			s.stopAdmin()
		}
	})
}

// closeAudit records the stop and drains the audit log.
func (s *Server) closeAudit() {
	if s.audit == nil {
		return
	}
	s.audit.Write(&audit.Record{Event: "stop", PolicyVersion: s.policies.Current().Version})
	if err := s.audit.Close(); err != nil {
		s.log.Error("closing the audit log", zap.Error(err))
	}
}

// openAudit opens the audit log of cfg's audit block, or returns nil
// without one. With reg, its queue and counters are exported.
func openAudit(cfg *policy.Config, reg *prometheus.Registry, log *zap.Logger) (*audit.Log, error) {
	a := cfg.Audit
	if a == nil {
		return nil, nil
	}
	if len(a.Key) == 0 {
		log.Warn("the audit block has no hmac_key: the audit chain is a plain SHA-256 chain that anyone can recompute")
	}
	alog, err := audit.Open(audit.Options{
		File: a.File, MaxSize: a.MaxSize, QueueSize: a.QueueSize, QueueBytes: a.QueueBytes, MaxText: a.MaxText,
		SyncInterval: a.SyncInterval, OnFull: a.OnFull, Key: a.Key,
		RewrittenSQL: a.RewrittenSQL, RedactLiterals: a.RedactLiterals, Logger: log.Named("audit"),
	})
	if err != nil {
		return nil, err
	}
	if reg != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pgveil_audit_queue_depth", Help: "Audit records waiting to be written.",
			}, func() float64 { return float64(alog.Stats().Queued) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pgveil_audit_queue_bytes", Help: "Bytes the audit records waiting to be written hold (bounded by audit.queue_bytes).",
			}, func() float64 { return float64(alog.Stats().QueuedBytes) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pgveil_audit_failing", Help: "1 while the audit trail cannot be written (a write or fsync failed, and none has succeeded since); with audit.on_error = \"refuse\", statements are refused meanwhile.",
			}, func() float64 {
				if alog.Failing() {
					return 1
				}
				return 0
			}),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "pgveil_audit_records_written_total", Help: "Audit records written.",
			}, func() float64 { return float64(alog.Stats().Written) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "pgveil_audit_last_seq", Help: "The seq of the last audit record written to the file: pgveil audit verify cannot tell records cut from the end of the newest file, this can.",
			}, func() float64 { return float64(alog.Stats().LastSeq) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "pgveil_audit_records_dropped_total", Help: "Audit records lost: dropped because the queue was full (on_full = \"drop\"), given up at shutdown after write errors, or written after the log was closed.",
			}, func() float64 { return float64(alog.Stats().Dropped) }),
		)
	}
	return alog, nil
}

// The admin listener's bounds: at most maxAdminConns connections open,
// at most maxAdminConnsPerHost of one client address. A connection past
// either is closed at once, so that a client holding idle sockets takes
// neither the proxy's descriptors nor the probes' turn: a prober from
// another address still gets in.
const (
	maxAdminConns        = 256
	maxAdminConnsPerHost = 8
)

// limitListener applies the admin listener's bounds.
type limitListener struct {
	net.Listener
	mu sync.Mutex
	// NOTE: guarded by mu.
	open   int
	byHost map[string]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := ""
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			host = ta.IP.String()
		}
		l.mu.Lock()
		if l.open >= maxAdminConns || l.byHost[host] >= maxAdminConnsPerHost {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.open++
		l.byHost[host]++
		l.mu.Unlock()
		return &limitConn{Conn: c, release: func() {
			l.mu.Lock()
			l.open--
			if l.byHost[host]--; l.byHost[host] <= 0 {
				delete(l.byHost, host)
			}
			l.mu.Unlock()
		}}, nil
	}
}

// limitConn gives its slot back once closed.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// serveAdmin starts the admin HTTP listener of admin; stop shuts it down.
func serveAdmin(cfg *policy.Config, reg *prometheus.Registry, pols *Policies, log *zap.Logger) (admin *Admin, stop func(), addr net.Addr, err error) {
	ln, err := net.Listen("tcp", cfg.Admin.Address)
	if err != nil {
		return nil, nil, nil, err
	}
	ln = &limitListener{Listener: ln, byHost: map[string]int{}}
	admin = NewAdmin(reg, UpstreamReady(cfg, pols))
	admin.Log = log
	// NOTE: every connection is bounded in time and in number: scrapers
	// and probes keep theirs alive, and a client holding thousands would
	// take the descriptors the proxy's clients need.
	hs := &http.Server{Handler: admin.Handler(), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 30 * time.Second,
		MaxHeaderBytes: 64 << 10}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener", zap.Error(err))
		}
	}()
	log.Info("admin listener", zap.String("address", ln.Addr().String()))
	return admin, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	}, ln.Addr(), nil
}
