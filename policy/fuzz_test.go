package policy

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad holds Load to the promise DEVELOPERS.md makes for bad input:
// whatever bytes a configuration file holds, loading it ends with a
// configuration or with error diagnostics that print, never a panic or
// a configuration returned alongside errors. The seeds are every
// configuration in the repository's configs/ and policy/testdata/, so
// the mutations start from the blocks and attributes a DBA writes.
//
// go test -run '^$' -fuzz FuzzLoad -parallel 1 ./policy
func FuzzLoad(f *testing.F) {
	f.Add([]byte(mistakesBase))
	// The twenty-first round's: hash masks on integer and uuid keys, a
	// rule's now() window in days, a near-miss table block, a table
	// block quoted as in SQL, a role listing writes but not select.
	for _, r := range [][2]string{
		{`mask  = "partial"`, "mask  = \"hash\"\n  }\n  column \"team_id\" {\n    class = \"internal\"\n    mask  = \"hash\""},
		{`where  = "country = me.country"`, `where  = "country = me.country AND submitted_at > now() - interval '90 days'"`},
		{`where  = "country = me.country"`, `where  = "submitted_at > CURRENT_TIMESTAMP(0) - '3 mons'::interval OR submitted_at > interval 'P2W' + pg_catalog.now()"`},
		{`tables = ["public.responses"]`, `tables = ["public.respones"]`},
		{`table "public.responses"`, `table "\"public\".\"Responses\""`},
		{`statements = ["select"]`, `statements = ["insert", "update", "delete"]`},
	} {
		f.Add([]byte(strings.Replace(mistakesBase, r[0], r[1], 1)))
	}
	for _, pattern := range []string{"../configs/*.hcl", "../configs/*/*.hcl", "testdata/*.hcl"} {
		paths, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, p := range paths {
			src, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(src)
		}
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, src []byte) {
		path := filepath.Join(dir, "fuzz.hcl")
		if err := os.WriteFile(path, src, 0o600); err != nil {
			t.Fatal(err)
		}
		l := NewLoader()
		cfg, diags := l.Load(path)
		if diags.HasErrors() {
			if cfg != nil {
				t.Fatalf("Load returned a configuration with errors: %s", diags.Error())
			}
			var out bytes.Buffer
			if err := WriteDiagnostics(&out, l.Files(), diags); err != nil {
				t.Fatalf("printing the diagnostics: %v", err)
			}
			if out.Len() == 0 {
				t.Fatal("error diagnostics printed nothing")
			}
			return
		}
		if cfg == nil {
			t.Fatal("Load returned neither a configuration nor an error")
		}
	})
}
