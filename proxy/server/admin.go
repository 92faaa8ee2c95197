package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// Admin serves the operators' HTTP endpoints:
//
//   - /metrics: the Prometheus metrics of gatherer;
//   - /healthz: 200 while the process serves HTTP at all;
//   - /readyz: 200 when a policy is loaded and the upstream accepts a
//     connection of the service account, 503 otherwise, with the reason
//     (an unreachable upstream's cause goes to Log only); 503 "shutting
//     down" once Drain was called, so that a load balancer sends no new
//     client to an instance draining its sessions.
//
// NOTE: /readyz dials the upstream at most once per readyTTL, however
// often it is probed, and never while another probe is dialing.
type Admin struct {
	gatherer prometheus.Gatherer
	// ready reports why the proxy is not ready, or nil.
	ready func(ctx context.Context) error
	// Now is the clock that ages a readiness verdict; time.Now when nil.
	// Tests set it to advance time without waiting.
	Now func() time.Time
	// Log gets why the upstream is unreachable, which the endpoint does
	// not tell; nil logs nothing.
	Log *zap.Logger

	// draining is set by Drain: shutdown has begun.
	draining atomic.Bool

	mu      sync.Mutex
	checked time.Time
	lastErr error
}

// errShuttingDown is /readyz's reason once Drain was called.
var errShuttingDown = errors.New("shutting down")

// Drain makes /readyz answer 503 from now on, whatever the upstream: the
// proxy is shutting down and accepts no new client.
func (a *Admin) Drain() { a.draining.Store(true) }

// readyTTL is how long a readiness verdict is reused.
const readyTTL = time.Second

// NewAdmin returns the admin endpoints over gatherer; ready is the
// readiness check.
func NewAdmin(gatherer prometheus.Gatherer, ready func(ctx context.Context) error) *Admin {
	return &Admin{gatherer: gatherer, ready: ready}
}

// UpstreamReady returns a readiness check: policies are loaded and the
// upstream of cfg accepts a connection of the service account.
func UpstreamReady(cfg *policy.Config, p *Policies) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if p.Current() == nil {
			return fmt.Errorf("no policy loaded")
		}
		c, err := proxy.ConnectService(ctx, cfg, "readyz")
		if err != nil {
			return &unreachable{err}
		}
		return c.Close(ctx)
	}
}

// unreachable is an upstream /readyz could not connect to. Its cause,
// which names the upstream's host, the service account and the database,
// goes to the log, not to whoever probes the endpoint (it has no
// authentication).
type unreachable struct{ cause error }

func (u *unreachable) Error() string { return "upstream unreachable" }
func (u *unreachable) Unwrap() error { return u.cause }

// Handler returns the HTTP handler of the endpoints.
func (a *Admin) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := a.readiness(r.Context()); err != nil {
			var u *unreachable
			if errors.As(err, &u) && a.Log != nil {
				a.Log.Warn("not ready: upstream unreachable", zap.Error(u.cause))
			}
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// readiness returns the cached verdict, or checks again when it is old.
func (a *Admin) readiness(ctx context.Context) error {
	if a.draining.Load() {
		return errShuttingDown
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.Now
	if now == nil {
		now = time.Now
	}
	if !a.checked.IsZero() && now().Sub(a.checked) < readyTTL {
		return a.lastErr
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	a.lastErr = a.ready(ctx)
	a.checked = now()
	return a.lastErr
}
