package proxy_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"
)

// TestSpliceReadsTheRuleAsWritten: a rule whose where clause pg_query's
// deparser would print otherwise ((NOT a) IS NULL printed NOT a IS NULL)
// scopes a spliced statement as written: marie's rows are those of her
// country and those with none, not every row with a country.
func TestSpliceReadsTheRuleAsWritten(t *testing.T) {
	raw, err := os.ReadFile("../configs/demo.hcl")
	if err != nil {
		t.Fatal(err)
	}
	const from = `where  = "country = me.country"`
	if !strings.Contains(string(raw), from) {
		t.Fatalf("no %s in the demo configuration", from)
	}
	cfg := strings.Replace(string(raw), from, `where  = "(NOT country = me.country) IS NULL OR country = me.country"`, 1)
	path := filepath.Join(t.TempDir(), "demo.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := proxytest.StartDemoFrom(t, path)
	c := p.Connect(t, "marie")
	want := directCount(t, "country IS NULL OR country = 'France'")
	for range 2 { // cold, then through the caches and templates
		var s string
		if err := c.QueryRow(context.Background(), "SELECT count(*) FROM responses").Scan(&s); err != nil {
			t.Fatal(err)
		}
		if n, _ := strconv.Atoi(s); n != want {
			t.Fatalf("marie counts %s responses, want %d", s, want)
		}
	}
}
