package proxy_test

import (
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestTransactionPoolStatementNamesPastNAMEDATALEN holds transaction
// pooling to PostgreSQL's names: a statement is its name's first 63
// bytes, to the pool as to the tracker. Keyed by the client's full name
// in the pool (a red team's case, before 35bc1ff), a Parse of a 64-byte
// name as hq and one of its 63-byte prefix as marie were two statements
// upstream and one to the tracker: a Bind of the long name ran hq's text
// while metabase acted for marie.
func TestTransactionPoolStatementNamesPastNAMEDATALEN(t *testing.T) {
	path := proxytest.PooledDemo(t, 1)
	p, _ := proxytest.StartDemoFrom(t, path)
	c := p.Connect(t, "metabase")
	long, short := strings.Repeat("s", 64), strings.Repeat("s", 63)
	if _, err := proxytest.RoundTrip(t, c, &pgproto3.Query{String: "SET ROLE hq"}); err != nil {
		t.Fatal(err)
	}
	if _, err := proxytest.RoundTrip(t, c, &pgproto3.Parse{Name: long, Query: "SELECT country FROM responses WHERE country <> 'France'"}, &pgproto3.Sync{}); err != nil {
		t.Fatal(err)
	}
	if _, err := proxytest.RoundTrip(t, c, &pgproto3.Query{String: "SET ROLE marie"}); err != nil {
		t.Fatal(err)
	}
	// PostgreSQL (session mode) answers 42P05 "already exists" here.
	_, _ = proxytest.RoundTrip(t, c, &pgproto3.Parse{Name: short, Query: "SELECT 'harmless'"}, &pgproto3.Sync{})
	rows, err := proxytest.RoundTrip(t, c, &pgproto3.Bind{PreparedStatement: long}, &pgproto3.Execute{}, &pgproto3.Sync{})
	for _, r := range rows {
		if r != "France" && r != "harmless" {
			t.Fatalf("acting for marie, the statement prepared as hq ran: read %d rows, e.g. %q (err %v)", len(rows), r, err)
		}
	}
}

// TestTransactionPoolLongNameReprepare holds a statement named by 64
// bytes, prepared as hq, to being prepared again for marie after SET ROLE
// marie in transaction pooling: the tracker prepares it again under its
// 63-byte name, which the pool must take for the same statement (before
// 35bc1ff the client's Bind of the 64-byte name reached the old text).
func TestTransactionPoolLongNameReprepare(t *testing.T) {
	path := proxytest.PooledDemo(t, 1)
	p, _ := proxytest.StartDemoFrom(t, path)
	c := p.Connect(t, "metabase")
	long := strings.Repeat("s", 64)
	if _, err := proxytest.RoundTrip(t, c, &pgproto3.Query{String: "SET ROLE hq"}); err != nil {
		t.Fatal(err)
	}
	if _, err := proxytest.RoundTrip(t, c, &pgproto3.Parse{Name: long, Query: "SELECT country FROM responses WHERE country <> 'France'"}, &pgproto3.Sync{}); err != nil {
		t.Fatal(err)
	}
	if _, err := proxytest.RoundTrip(t, c, &pgproto3.Query{String: "SET ROLE marie"}); err != nil {
		t.Fatal(err)
	}
	rows, err := proxytest.RoundTrip(t, c, &pgproto3.Bind{PreparedStatement: long}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if len(rows) > 0 {
		t.Fatalf("acting for marie, the statement prepared as hq ran: read %d rows, e.g. %q (err %v)", len(rows), rows[0], err)
	}
}
