package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"

	"github.com/pgveil/pgveil/internal/printable"
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
		enc = inertEncoder{Encoder: zapcore.NewJSONEncoder(ec), escape: jsonEscapes}
	case "console":
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		enc = inertEncoder{Encoder: zapcore.NewConsoleEncoder(ec), escape: consoleEscapes}
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

// inertEncoder wraps the log's encoder: its lines reach an operator's
// terminal (the console format directly, the JSON one through tail or
// less), so every character a terminal would act on rather than print
// (C1 controls such as CSI and OSC, bidirectional overrides and
// isolates, zero-width and line-separator characters) is written as an
// escape, as audit search's table and the audit trail do. The values of
// fields are what clients sent (a login name, an application_name, the
// text of an upstream error); zap escapes only C0 controls in them.
//
// NOTE: the line's own newline, and the console format's tabs
// (its separator) and stack trace newlines, are kept: zap escapes both
// inside values, so any left in the encoded entry are its own.
type inertEncoder struct {
	zapcore.Encoder
	// escape returns the encoded line made inert, or the line itself.
	escape func(line string) string
}

// Clone keeps the clone inert: a logger's With clones its encoder.
func (e inertEncoder) Clone() zapcore.Encoder {
	return inertEncoder{Encoder: e.Encoder.Clone(), escape: e.escape}
}

// EncodeEntry encodes the entry, then escapes what a terminal would act
// on.
func (e inertEncoder) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	buf, err := e.Encoder.EncodeEntry(ent, fields)
	if err != nil {
		return nil, err
	}
	if plain(buf.Bytes()) {
		return buf, nil
	}
	line := buf.String()
	if safe := e.escape(line); safe != line {
		buf.Reset()
		buf.AppendString(safe)
	}
	return buf, nil
}

// plain reports whether line is ASCII without controls but newlines and
// tabs: no escape applies to it, in either format.
//
// NOTE: most lines are such; this scan spares them the copy of the line
// and the rune by rune check of the escape functions, a several-fold
// cost on every log line (BenchmarkLogEntry).
func plain(line []byte) bool {
	for _, c := range line {
		if c >= utf8.RuneSelf || c == 0x7f || c < 0x20 && c != '\n' && c != '\t' {
			return false
		}
	}
	return true
}

// consoleEscapes makes a console log line inert: printable, keeping its
// tabs and newlines.
func consoleEscapes(line string) string {
	return printable.Escape(line, func(r rune) bool { return r == '\n' || r == '\t' })
}

// jsonEscapes makes a JSON log line inert and keeps its values exact:
// what a terminal would act on is written as a JSON \u escape
// (surrogate pairs beyond the basic plane), which a JSON reader decodes
// to the same character.
//
// NOTE: zap writes C0 controls and invalid UTF-8 inside strings as
// escapes, and nothing outside them but ASCII punctuation, so every
// character escaped here is inside a string, where \u is valid.
func jsonEscapes(line string) string {
	escape := func(r rune) bool { return r != '\n' && unprintable(r) }
	if !strings.ContainsFunc(line, escape) {
		return line
	}
	var b strings.Builder
	for _, r := range line {
		switch {
		case !escape(r):
			b.WriteRune(r)
		case r > 0xffff:
			hi, lo := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, hi, lo)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}
