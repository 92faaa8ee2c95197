package proxy_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/rewrite"
)

// TestAuditAffectedRowsAfterErrors checks that a write's count goes to
// its own record, each execution recorded once, where errors or a row
// limit end some: a pipeline whose second Execute fails (the third is
// skipped), an UPDATE … RETURNING read in chunks (PortalSuspended; the
// last tag counts its own chunk only), a COPY FROM STDIN the client
// abandons (CopyFail) before a write, and a Query whose second
// statement fails.
func TestAuditAffectedRowsAfterErrors(t *testing.T) {
	proxytest.SetupDemo(t)
	for _, q := range []string{
		"CREATE SCHEMA IF NOT EXISTS audit_w",
		"CREATE TABLE IF NOT EXISTS audit_w.items (id int, note text)",
		"GRANT USAGE ON SCHEMA audit_w TO pgveil_svc",
		"GRANT SELECT, INSERT, UPDATE, DELETE ON audit_w.items TO pgveil_svc",
	} {
		proxytest.Direct(t, q)
	}
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		proxytest.Direct(t, "TRUNCATE audit_w.items")
		proxytest.Direct(t, "INSERT INTO audit_w.items SELECT g, 'n' FROM generate_series(1, 50) g")
		path := filepath.Join(t.TempDir(), "audit.log")
		alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = alog.Close() })
		p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(cfg *policy.Config) {
			cfg.Listen.Relay = relay
			cfg.Schemas["audit_w"] = &policy.Schema{Name: "audit_w", Allow: true}
			cfg.Roles["central_analyst"].Statements = append(cfg.Roles["central_analyst"].Statements,
				rewrite.KindInsert, rewrite.KindUpdate, rewrite.KindDelete)
		}, func(po *proxy.Options) { po.Audit = alog })
		ctx := context.Background()
		x := p.Connect(t, "hq")
		s := p.SimpleConn(t, "hq")
		proxytest.PipelineBatches(t, x, 2,
			&pgproto3.Parse{Query: "UPDATE audit_w.items SET note = 'p' WHERE id <= 5"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "DELETE FROM audit_w.items WHERE id <= 7"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Sync{},
			&pgproto3.Parse{Query: "DELETE FROM audit_w.items WHERE id = 8"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Sync{})
		proxytest.PipelineBatches(t, x, 1,
			&pgproto3.Parse{Query: "UPDATE audit_w.items SET note = 'r' WHERE id BETWEEN 10 AND 14 RETURNING id"},
			&pgproto3.Bind{}, &pgproto3.Execute{MaxRows: 2}, &pgproto3.Execute{MaxRows: 2}, &pgproto3.Execute{},
			&pgproto3.Sync{})
		if _, err := s.PgConn().CopyFrom(ctx, &abandonedCopy{}, "COPY audit_w.items FROM STDIN"); err == nil {
			t.Fatal("the COPY did not fail")
		}
		if _, err := s.PgConn().Exec(ctx, "DELETE FROM audit_w.items WHERE id = 20").ReadAll(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PgConn().Exec(ctx, "DELETE FROM audit_w.items WHERE id = 21; SELECT 1/0").ReadAll(); err == nil {
			t.Fatal("the Query did not fail")
		}
		if _, err := s.PgConn().Exec(ctx, "DELETE FROM audit_w.items WHERE id = 22").ReadAll(); err != nil {
			t.Fatal(err)
		}
		s.Close(ctx)
		x.Close(ctx)
		proxytest.WaitSessions(t, p, 0)
		var got []string
		for _, e := range proxytest.ReadAudit(t, alog, path) {
			if e.Event == audit.EventStatement && e.User == "hq" && e.Kind != "transaction" {
				got = append(got, fmt.Sprintf("%s rows %d affected %d %s", e.Kind, e.Rows, e.Affected, e.SQLState))
			}
		}
		want := []string{
			// Rolled back with its batch, whose error it carries.
			"update rows 0 affected 5 22012",
			"select rows 0 affected 0 22012",
			"delete rows 0 affected 0 ",
			"delete rows 0 affected 1 ",
			// The last tag says UPDATE 1: each chunk counts its rows.
			"update rows 2 affected 2 ",
			"update rows 2 affected 2 ",
			"update rows 1 affected 1 ",
			"copy rows 0 affected 0 57014",
			"delete rows 0 affected 1 ",
			"delete,select rows 0 affected 1 22012",
			"delete rows 0 affected 1 ",
		}
		if !slices.Equal(got, want) {
			t.Errorf("records\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

// abandonedCopy fails the COPY it feeds after one row.
type abandonedCopy struct{ sent bool }

func (r *abandonedCopy) Read(b []byte) (int, error) {
	if !r.sent {
		r.sent = true
		return copy(b, "900\tz\n"), nil
	}
	return 0, fmt.Errorf("the client gives up")
}
