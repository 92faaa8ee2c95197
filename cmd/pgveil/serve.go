package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"

	"github.com/pgveil/pgveil/proxy/server"
)

// cmdServe runs pgveil (package server) until SIGTERM or SIGINT, then
// shuts down gracefully: no new connections, running statements finish
// up to the configured shutdown_timeout, then every session is closed,
// and the audit log is drained. A second signal closes everything at
// once. SIGHUP (and, with --watch, a change of the configuration files)
// reloads the policies and identities.
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
	if err := ensureStack(); err != nil {
		fmt.Fprintf(stderr, "pgveil serve: %v\n", err)
		return 1
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
	srv, err := server.Start(context.Background(), server.Config{
		Path: *configPath, Config: cfg, Logger: log, Diagnostics: stderr, Version: version,
	})
	if err != nil {
		log.Error("starting pgveil", zap.Error(err))
		return 1
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	var changed <-chan struct{}
	if *watch > 0 {
		w := newWatcher(cfg.Files, *configPath, *watch)
		defer w.stop()
		changed = w.changed
	}

	for {
		select {
		case <-srv.Done():
			// NOTE: Close drains the audit log while the signal handlers
			// still hold: a second signal must not kill the process
			// before every record is on disk.
			_ = srv.Close()
			if err := srv.Err(); err != nil {
				log.Error("serving", zap.Error(err))
				return 1
			}
			return 0
		case <-changed:
			log.Info("configuration files changed; reloading")
			reload(srv)
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				log.Info("SIGHUP received; reloading policies and identities")
				reload(srv)
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
		enc = printableEncoder{zapcore.NewConsoleEncoder(ec)}
	default:
		return nil, fmt.Errorf("--log-format must be json or console, not %q", format)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core), nil
}

// reloadTimeout bounds a reload: the signal loop waits for it, and a
// reload stuck upstream must not keep SIGTERM from being handled.
const reloadTimeout = 2 * time.Minute

// reload reloads srv's policies and identities within reloadTimeout; a
// failure is logged by srv and leaves the old policy serving.
func reload(srv *server.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), reloadTimeout)
	defer cancel()
	_ = srv.Reload(ctx)
}

// printableEncoder is the console log's encoder: its lines reach an
// operator's terminal, so every character a terminal would act on
// rather than print (C1 controls such as CSI and OSC, bidirectional
// overrides and isolates, zero-width and line-separator characters) is
// written as an escape, as audit search's table does. The values of
// fields are what clients sent (a login name, an application_name, the
// text of an upstream error); zap escapes only C0 controls in them.
//
// NOTE: tabs (the console format's separator) and newlines (a stack
// trace's) are kept: zap escapes both inside values, so any left in the
// encoded entry are its own. The JSON format is not wrapped: its values
// stay exact, and JSON readers decode them.
type printableEncoder struct{ zapcore.Encoder }

// Clone keeps the clone printable: a logger's With clones its encoder.
func (e printableEncoder) Clone() zapcore.Encoder { return printableEncoder{e.Encoder.Clone()} }

// EncodeEntry encodes the entry, then escapes what a terminal would act
// on.
func (e printableEncoder) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	buf, err := e.Encoder.EncodeEntry(ent, fields)
	if err != nil {
		return nil, err
	}
	line := buf.String()
	if safe := printableKeeping(line, keepConsole); safe != line {
		buf.Reset()
		buf.AppendString(safe)
	}
	return buf, nil
}

// keepConsole reports the characters the console log keeps raw.
func keepConsole(r rune) bool { return r == '\n' || r == '\t' }
