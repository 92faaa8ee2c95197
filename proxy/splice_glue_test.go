package proxy_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"
)

// TestSpliceKeepsTheClientsOuterJoin: a FROM item written with the
// inheritance star or ONLY (name), the client's next token glued to it,
// reads through the proxy as the client wrote it: t*LEFT JOIN is an
// outer join, not an alias tLEFT and an inner join, cold and through the
// caches and templates.
func TestSpliceKeepsTheClientsOuterJoin(t *testing.T) {
	p := proxytest.StartDemo(t)
	c := p.Connect(t, "marie")
	ctx := context.Background()
	france := directCount(t, proxytest.Scopes["marie"])
	for _, q := range []string{
		"SELECT count(*) FROM responses*LEFT JOIN countries c ON false",
		"SELECT count(*) FROM ONLY(responses)LEFT JOIN countries c ON false",
		"SELECT count(*) FROM public.responses*FULL JOIN countries c ON false WHERE c.code IS NULL",
	} {
		for range 2 { // cold, then through the caches and templates
			var s string
			if err := c.QueryRow(ctx, q).Scan(&s); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			if n, _ := strconv.Atoi(s); n != france {
				t.Fatalf("%s: %s, want %d", q, s, france)
			}
		}
	}
}
