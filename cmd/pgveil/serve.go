package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// cmdServe runs the proxy until SIGTERM or SIGINT, then shuts down
// gracefully: no new connections, running statements finish up to the
// configured shutdown_timeout, then every session is closed. A second
// signal closes everything at once.
func cmdServe(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file or directory of *.hcl files (required)")
	logFormat := fs.String("log-format", "json", "log format: json or console")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
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
	opts := proxy.Options{Logger: log}
	enf.Apply(&opts)
	log.Info("policies loaded", zap.String("policy_version", enf.Version),
		zap.Int("relations", len(enf.Engine.Catalog().Relations)))
	srv, err := proxy.New(cfg, opts)
	if err != nil {
		log.Error("starting pgveil", zap.Error(err))
		return 1
	}
	ln, err := net.Listen("tcp", cfg.Listen.Address)
	if err != nil {
		log.Error("listening", zap.String("address", cfg.Listen.Address), zap.Error(err))
		return 1
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	for {
		select {
		case err := <-served:
			if err != nil && !errors.Is(err, proxy.ErrServerClosed) {
				log.Error("serving", zap.Error(err))
				return 1
			}
			return 0
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				log.Warn("SIGHUP received: live reload is not available yet; restart pgveil to apply configuration changes")
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
