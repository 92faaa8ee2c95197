package proxytest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/proxy/server"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// ReloadableDemo runs the demo proxy from a copy of configs/demo.hcl that
// the test may edit, and returns the copy's path and a Reloader.
func ReloadableDemo(t *testing.T, opts ...func(*proxy.Options)) (*Proxy, string, *server.Reloader) {
	t.Helper()
	src, err := os.ReadFile(DemoHCL)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "demo.hcl")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	var po proxy.Options
	opts = append(opts, func(o *proxy.Options) { po = *o })
	p, pols := StartDemoFrom(t, path, opts...)
	rl := &server.Reloader{
		Path: path, Base: p.Config, Policies: pols, Server: p.Server, Audit: po.Audit, Metrics: po.Metrics,
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.FatalLevel)),
	}
	return p, path, rl
}

// EditConfig replaces old by new in the configuration file at path.
func EditConfig(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%q is not in %s", old, path)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// RoundTrip sends msgs on c's connection as they are and reads the
// answers up to the ReadyForQuery of each Sync or Query among them. It
// returns the first column of every DataRow, as text, and the first
// error.
func RoundTrip(t *testing.T, c *pgx.Conn, msgs ...pgproto3.FrontendMessage) ([]string, error) {
	t.Helper()
	pc := c.PgConn()
	fe := pc.Frontend()
	syncs := 0
	for _, m := range msgs {
		fe.Send(m)
		switch m.(type) {
		case *pgproto3.Sync, *pgproto3.Query:
			syncs++
		}
	}
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = pc.Conn().SetReadDeadline(time.Now().Add(10 * time.Second))
	defer func() { _ = pc.Conn().SetReadDeadline(time.Time{}) }()
	var rows []string
	var first error
	for syncs > 0 {
		m, err := fe.Receive()
		if err != nil {
			t.Fatalf("the connection ended: %v", err)
		}
		switch m := m.(type) {
		case *pgproto3.DataRow:
			if len(m.Values) > 0 {
				rows = append(rows, string(m.Values[0]))
			}
		case *pgproto3.ErrorResponse:
			if first == nil {
				first = pgconn.ErrorResponseToPgError(m)
			}
		case *pgproto3.ReadyForQuery:
			syncs--
		}
	}
	return rows, first
}
