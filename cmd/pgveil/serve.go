package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pgveil/pgveil/internal/audit"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// cmdServe runs the proxy until SIGTERM or SIGINT, then shuts down
// gracefully: no new connections, running statements finish up to the
// configured shutdown_timeout, then every session is closed, and the
// audit log is drained. A second signal closes everything at once. SIGHUP
// (and, with --watch, a change of the configuration files) reloads the
// policies and identities.
func cmdServe(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file or directory of *.hcl files (required)")
	logFormat := fs.String("log-format", "json", "log format: json or console")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	watch := fs.Duration("watch", 0, "also reload when the configuration files change, checking at this interval (e.g. 5s); 0 = SIGHUP only")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *configPath == "" {
		fmt.Fprintln(stderr, "pgveil serve: --config is required")
		return 2
	}
	log, err := newLogger(*logFormat, *logLevel, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pgveil serve: %v\n", err)
		return 2
	}
	defer func() { _ = log.Sync() }()

	cfg, ok := loadConfig(*configPath, stderr)
	if !ok {
		return 1
	}
	// Policies are always enforced: with no table blocks, every
	// ungoverned table is denied (fail closed).
	enf, diags, err := proxy.LoadEnforcement(context.Background(), cfg)
	if len(diags) > 0 {
		_ = policy.WriteDiagnostics(stderr, nil, diags)
	}
	if err != nil {
		log.Error("loading policies", zap.Error(err))
		return 1
	}
	pols := proxy.NewPolicies(enf)
	opts := proxy.Options{Logger: log}
	pols.Apply(&opts)
	log.Info("policies loaded", zap.String("policy_version", enf.Version),
		zap.Int("relations", len(enf.Engine.Catalog().Relations)))

	var reg *prometheus.Registry
	if cfg.Admin != nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		opts.Metrics = proxy.NewMetrics(reg)
		opts.Metrics.SetPolicyVersion(enf.Version)
		proxy.RegisterPolicies(reg, pols)
	}
	alog, err := openAudit(cfg, reg, log)
	if err != nil {
		log.Error("opening the audit log", zap.Error(err))
		return 1
	}
	// closeAudit records the stop and drains the audit log. It runs
	// before serve returns, while the signal handlers still hold: a
	// second signal must not kill the process before every record is on
	// disk.
	var closeOnce sync.Once
	closeAudit := func() {
		closeOnce.Do(func() {
			if alog == nil {
				return
			}
			alog.Write(&audit.Record{Event: "stop", PolicyVersion: pols.Current().Version})
			if err := alog.Close(); err != nil {
				log.Error("closing the audit log", zap.Error(err))
			}
		})
	}
	defer closeAudit()
	if alog != nil {
		opts.Audit = alog
		alog.Write(&audit.Record{Event: "start", PolicyVersion: enf.Version, Message: "pgveil " + version})
	}

	srv, err := proxy.New(proxy.ConfigOf(cfg), opts)
	if err != nil {
		log.Error("starting pgveil", zap.Error(err))
		return 1
	}
	ln, err := net.Listen("tcp", cfg.Listen.Address)
	if err != nil {
		log.Error("listening", zap.String("address", cfg.Listen.Address), zap.Error(err))
		return 1
	}
	if cfg.Admin != nil {
		stop, err := serveAdmin(cfg, reg, pols, log)
		if err != nil {
			ln.Close()
			log.Error("starting the admin listener", zap.String("address", cfg.Admin.Address), zap.Error(err))
			return 1
		}
		defer stop()
	}
	rl := &proxy.Reloader{Path: *configPath, Base: cfg, Policies: pols, Server: srv, Metrics: opts.Metrics, Logger: log}
	if alog != nil {
		rl.Audit = alog
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	defer closeAudit() // runs before signal.Stop
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var changed <-chan struct{}
	if *watch > 0 {
		w := newWatcher(cfg.Files, *configPath, *watch)
		defer w.stop()
		changed = w.changed
	}

	for {
		select {
		case err := <-served:
			if err != nil && !errors.Is(err, proxy.ErrServerClosed) {
				log.Error("serving", zap.Error(err))
				return 1
			}
			return 0
		case <-changed:
			log.Info("configuration files changed; reloading")
			_ = rl.Reload(context.Background())
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				log.Info("SIGHUP received; reloading policies and identities")
				_ = rl.Reload(context.Background())
				continue
			}
			log.Info("shutting down", zap.String("signal", sig.String()),
				zap.Duration("deadline", cfg.Listen.ShutdownTimeout))
			ctx, cancel := context.WithTimeout(context.Background(), cfg.Listen.ShutdownTimeout)
			go func() {
				// A second signal closes every session at once.
				select {
				case <-sigs:
					cancel()
				case <-ctx.Done():
				}
			}()
			err := srv.Shutdown(ctx)
			cancel()
			<-served
			if err != nil {
				log.Warn("shutdown deadline reached; remaining sessions were closed")
			}
			log.Info("stopped")
			return 0
		}
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
		File: a.File, MaxSize: a.MaxSize, QueueSize: a.QueueSize, OnFull: a.OnFull, Key: a.Key,
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
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "pgveil_audit_records_written_total", Help: "Audit records written.",
			}, func() float64 { return float64(alog.Stats().Written) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "pgveil_audit_records_dropped_total", Help: "Audit records dropped because the queue was full (on_full = \"drop\").",
			}, func() float64 { return float64(alog.Stats().Dropped) }),
		)
	}
	return alog, nil
}

// serveAdmin starts the admin HTTP listener; stop shuts it down.
func serveAdmin(cfg *policy.Config, reg *prometheus.Registry, pols *proxy.Policies, log *zap.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", cfg.Admin.Address)
	if err != nil {
		return nil, err
	}
	admin := proxy.NewAdmin(reg, proxy.UpstreamReady(cfg, pols))
	hs := &http.Server{Handler: admin.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener", zap.Error(err))
		}
	}()
	log.Info("admin listener", zap.String("address", ln.Addr().String()))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	}, nil
}

// newLogger builds the diagnostic logger: JSON lines by default, a
// human-readable console format on request.
func newLogger(format, level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	var enc zapcore.Encoder
	switch format {
	case "json":
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	case "console":
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		enc = zapcore.NewConsoleEncoder(ec)
	default:
		return nil, fmt.Errorf("--log-format must be json or console, not %q", format)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core), nil
}
