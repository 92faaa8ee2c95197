package proxy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy"
)

// TestSearchPath holds the parse of upstream.search_path to what
// PostgreSQL reads in it: the rewriter resolves unqualified names
// through the result, as the upstream does.
func TestSearchPath(t *testing.T) {
	for _, c := range []struct {
		setting string
		want    []string
	}{
		{`public`, []string{"public"}},
		{`"$user", public`, []string{"svc", "public"}},
		{`$user,public`, []string{"svc", "public"}},
		{`Public, "Public"`, []string{"public", "Public"}},
		{`"a,b" , c`, []string{"a,b", "c"}},
		{`"x""y"`, []string{`x"y`}},
		{strings.Repeat("s", 70), []string{strings.Repeat("s", 63)}},
		{`"` + strings.Repeat("é", 40) + `"`, []string{strings.Repeat("é", 31)}},
		{``, nil},
	} {
		if got := proxy.SearchPath(c.setting, "svc"); !slices.Equal(got, c.want) {
			t.Errorf("SearchPath(%q) = %q, want %q", c.setting, got, c.want)
		}
	}
}
