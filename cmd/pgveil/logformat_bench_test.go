package main

import (
	"io"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// BenchmarkLogEntry measures a session's plain ASCII log line through
// newLogger's encoders, the escape check included.
func BenchmarkLogEntry(b *testing.B) {
	for _, format := range []string{"json", "console"} {
		b.Run(format, func(b *testing.B) {
			log, err := newLogger(format, "info", io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			log = log.With(zap.String("session", "s-8f3a2c"), zap.String("user", "marie"),
				zap.String("client", "10.1.2.3:51234"), zap.String("application_name", "psql"))
			b.ReportAllocs()
			for b.Loop() {
				log.Info("session ended", zap.String("reason", "client terminated the session"),
					zap.Duration("duration", 1500*time.Millisecond), zap.Int64("statements", 42))
			}
		})
	}
}

// BenchmarkLogEntryZapAlone is BenchmarkLogEntry's JSON line without
// the escaping wrapper: the cost it is measured against.
func BenchmarkLogEntryZapAlone(b *testing.B) {
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(ec), zapcore.Lock(zapcore.AddSync(io.Discard)), zap.InfoLevel))
	log = log.With(zap.String("session", "s-8f3a2c"), zap.String("user", "marie"),
		zap.String("client", "10.1.2.3:51234"), zap.String("application_name", "psql"))
	b.ReportAllocs()
	for b.Loop() {
		log.Info("session ended", zap.String("reason", "client terminated the session"),
			zap.Duration("duration", 1500*time.Millisecond), zap.Int64("statements", 42))
	}
}

// TestPlainLogLinesAreNotCopied: a plain ASCII line, most of the log,
// goes through the escaping wrapper without a copy of the line.
func TestPlainLogLinesAreNotCopied(t *testing.T) {
	for _, tt := range []struct {
		format string
		enc    func(zapcore.EncoderConfig) zapcore.Encoder
		escape func(string) string
	}{
		{"json", zapcore.NewJSONEncoder, jsonEscapes},
		{"console", zapcore.NewConsoleEncoder, consoleEscapes},
	} {
		t.Run("the "+tt.format+" format allocates no more than zap alone", func(t *testing.T) {
			ec := zap.NewProductionEncoderConfig()
			ent := zapcore.Entry{Level: zap.InfoLevel, Time: time.Now(), Message: "session ended"}
			fields := []zapcore.Field{zap.String("user", "marie"), zap.String("reason", "client terminated the session")}
			allocs := func(enc zapcore.Encoder) float64 {
				return testing.AllocsPerRun(100, func() {
					buf, err := enc.EncodeEntry(ent, fields)
					if err != nil {
						t.Fatal(err)
					}
					buf.Free()
				})
			}
			got, want := allocs(inertEncoder{Encoder: tt.enc(ec), escape: tt.escape}), allocs(tt.enc(ec))
			if got > want {
				t.Fatalf("%v allocations a line, zap alone %v", got, want)
			}
		})
	}
}
