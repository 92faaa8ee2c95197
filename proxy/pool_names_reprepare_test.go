package proxy_test

import (
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestTransactionPoolLongNameReprepareRuns: a statement named by more
// than 63 bytes, prepared as hq, must be
// prepared again for marie after SET ROLE marie in transaction pooling
// and run: as it does with a name of 63 bytes or less.
func TestTransactionPoolLongNameReprepareRuns(t *testing.T) {
	path := proxytest.PooledDemo(t, 4)
	p, _ := proxytest.StartDemoFrom(t, path)
	for _, n := range []int{63, 64, 70} {
		c := p.Connect(t, "metabase")
		name := strings.Repeat("s", n)
		if _, err := proxytest.RoundTrip(t, c, &pgproto3.Query{String: "SET ROLE hq"}); err != nil {
			t.Fatal(err)
		}
		if _, err := proxytest.RoundTrip(t, c, &pgproto3.Parse{Name: name, Query: "SELECT DISTINCT country FROM responses"}, &pgproto3.Sync{}); err != nil {
			t.Fatal(err)
		}
		if _, err := proxytest.RoundTrip(t, c, &pgproto3.Query{String: "SET ROLE marie"}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			rows, err := proxytest.RoundTrip(t, c, &pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{}, &pgproto3.Sync{})
			t.Logf("name of %d bytes, Bind %d: rows %q, err %v", n, i, rows, err)
			if err != nil {
				t.Errorf("name of %d bytes: the Bind after SET ROLE marie failed: %v", n, err)
			}
		}
	}
}
