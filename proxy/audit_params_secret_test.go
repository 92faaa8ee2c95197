package proxy_test

import (
	"context"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/proxy"
)

// TestAuditParamsWithheldForPreparedWithSQL checks that the values of a
// Bind are withheld alike whether its statement was prepared with a
// Parse or with SQL PREPARE, when the statement's text may hold a
// secret (audit.mayHoldSecret): the record of an Execute of a statement
// made with PREPARE has EXECUTE "name" for its text, in which the
// writer finds no secret word, and kept the values in clear: they are
// withheld for every statement prepared with SQL, whose text the trail
// does not hold.
func TestAuditParamsWithheldForPreparedWithSQL(t *testing.T) {
	recs := auditedRun(t, func(po *proxy.Options) { po.AuditParameters = 256 }, func(ctx context.Context, c *pgx.Conn) {
		fe := c.PgConn().Frontend()
		if _, codes := proxytest.SendBatch(t, fe, &pgproto3.Parse{Name: "viaparse", Query: "SELECT $1::text AS password"},
			&pgproto3.Bind{PreparedStatement: "viaparse", Parameters: [][]byte{[]byte("hunter2")}}, &pgproto3.Execute{}, &pgproto3.Sync{}); len(codes) != 0 {
			t.Fatal(codes)
		}
		if _, codes := proxytest.SendBatch(t, fe, &pgproto3.Query{String: "PREPARE viasql(text) AS SELECT $1::text AS password"}); len(codes) != 0 {
			t.Fatal(codes)
		}
		if _, codes := proxytest.SendBatch(t, fe, &pgproto3.Bind{PreparedStatement: "viasql", Parameters: [][]byte{[]byte("hunter2")}}, &pgproto3.Execute{}, &pgproto3.Sync{}); len(codes) != 0 {
			t.Fatal(codes)
		}
	})
	parsed := recordOf(t, recs, "SELECT $1::text AS password").Params
	if e := recordOf(t, recs, `EXECUTE "viasql"`); e.Params != parsed {
		t.Errorf("values of a Bind to the statement prepared with SQL: %q; with a Parse: %q", e.Params, parsed)
	}
}
