package audit

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestWriteAfterClose(t *testing.T) {
	core, logs := observer.New(zapcore.ErrorLevel)
	var out bytes.Buffer
	l, err := Open(Options{File: "-", Stdout: &out, Key: testKey, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	l.Write(statement(0))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l.Write(statement(1))
	l.Write(statement(2))
	if s := l.Stats(); s.Written != 1 || s.Dropped != 2 {
		t.Fatalf("stats %+v: a record written after Close must count as dropped", s)
	}
	if n := logs.FilterMessageSnippet("after the audit log was closed").Len(); n != 1 {
		t.Fatalf("%d log lines, want 1: %v", n, logs.All())
	}
	if strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("trail %s", out.String())
	}
}
