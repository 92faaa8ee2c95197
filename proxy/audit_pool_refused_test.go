package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/proxy"
)

// TestAuditPoolRefused checks the pool_refused record of a statement
// that found no free backend: who, for whom, the statement that did not
// run and the SQLSTATE the client got.
func TestAuditPoolRefused(t *testing.T) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		path := t.TempDir() + "/audit.log"
		alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = alog.Close() })
		p := startPooled(t, relay, 1, 200*time.Millisecond, func(po *proxy.Options) { po.Audit = alog })
		ctx := context.Background()
		holder := p.Connect(t, "hq")
		if _, err := holder.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := holder.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		mb := p.SimpleConn(t, "metabase")
		if _, err := mb.PgConn().Exec(ctx, "SET ROLE marie").ReadAll(); err == nil {
			t.Fatal("SET ROLE ran with no backend free")
		}
		marie := p.Connect(t, "marie")
		var n int
		if err := marie.QueryRow(ctx, "SELECT count(*) FROM responses WHERE nps > $1", 5).Scan(&n); err == nil {
			t.Fatal("a Parse ran with no backend free")
		}
		holder.Close(ctx)
		mb.Close(ctx)
		marie.Close(ctx)
		proxytest.WaitSessions(t, p, 0)
		var got []*audit.Entry
		for _, e := range proxytest.ReadAudit(t, alog, path) {
			if e.Event == "pool_refused" {
				got = append(got, e)
			}
		}
		if len(got) != 2 {
			t.Fatalf("%d pool_refused records, want 2", len(got))
		}
		if e := got[0]; e.User != "metabase" || e.SQL != "SET ROLE marie" || e.SQLState != "53300" || e.Reason == "" {
			t.Errorf("simple query: %+v", e)
		}
		if e := got[1]; e.User != "marie" || e.SQL != "SELECT count(*) FROM responses WHERE nps > $1" || e.SQLState != "53300" {
			t.Errorf("parse: %+v", e)
		}
	})
}
