package rewrite_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgveil/pgveil/rewrite"
)

// TestParserKeywordsFile keeps keywords.txt equal to the keyword list of
// the linked parser (kwlist.h in pg_query_go's module), and each entry to
// what its scanner says of the word.
func TestParserKeywordsFile(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/pganalyze/pg_query_go/v6").Output()
	if err != nil {
		t.Fatalf("locating pg_query_go: %v", err)
	}
	kwlist, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "parser/include/postgres/parser/kwlist.h"))
	if err != nil {
		t.Fatal(err)
	}
	cats := map[string]string{"UNRESERVED_KEYWORD": "U", "COL_NAME_KEYWORD": "C", "TYPE_FUNC_NAME_KEYWORD": "T", "RESERVED_KEYWORD": "R"}
	var want []string
	sc := bufio.NewScanner(strings.NewReader(string(kwlist)))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "PG_KEYWORD(") {
			continue
		}
		args, _, _ := strings.Cut(strings.TrimPrefix(line, "PG_KEYWORD("), ")")
		f := strings.Split(args, ", ")
		if len(f) != 4 {
			t.Fatalf("unexpected kwlist.h line %q", line)
		}
		bare := "f"
		if f[3] == "BARE_LABEL" {
			bare = "t"
		}
		want = append(want, strings.Trim(f[0], `"`)+" "+cats[f[2]]+" "+bare)
	}
	file, err := os.ReadFile("keywords.txt")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(string(file), "\n") {
		if line != "" && line[0] != '#' {
			got = append(got, line)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Errorf("first difference: %q, kwlist.h says %q", got[i], want[i])
				break
			}
		}
		t.Fatalf("keywords.txt differs from the parser's kwlist.h (%d lines against %d): regenerate it", len(got), len(want))
	}
	kinds := map[string]pg_query.KeywordKind{"U": pg_query.KeywordKind_UNRESERVED_KEYWORD, "C": pg_query.KeywordKind_COL_NAME_KEYWORD,
		"T": pg_query.KeywordKind_TYPE_FUNC_NAME_KEYWORD, "R": pg_query.KeywordKind_RESERVED_KEYWORD}
	for _, line := range got {
		f := strings.Fields(line)
		res, err := pg_query.Scan(f[0])
		if err != nil || len(res.Tokens) != 1 || res.Tokens[0].KeywordKind != kinds[f[1]] {
			t.Errorf("the scanner does not read %q as a %s keyword: %v %v", f[0], f[1], res, err)
		}
	}
}

func TestGrammarDifferences(t *testing.T) {
	cat := demoCatalog(t)
	g := cat.Grammar
	if g == nil {
		t.Fatal("the catalog read upstream has no grammar comparison")
	}
	t.Logf("upstream %d: %d words read differently: %s", g.Upstream, len(g.Words()), strings.Join(g.Words(), " "))
	if g.Upstream < 160000 {
		found := false
		for _, w := range g.Words() {
			found = found || w == "system_user"
		}
		if !found {
			t.Fatal("SYSTEM_USER, a keyword from PostgreSQL 16 on, is not among the differences")
		}
	}
	p := &fakePolicy{}
	refusedBy := func(sql string) string {
		_, err := rewrite.Rewrite(sql, cat, p)
		var r *rewrite.Refused
		if errors.As(err, &r) {
			return r.Rule
		}
		return ""
	}
	t.Run("every differing word is refused unquoted and passes quoted", func(t *testing.T) {
		for _, w := range g.Words() {
			if got := refusedBy("SELECT " + w); got != "grammar_version" {
				t.Errorf("%s unquoted: rule %q, want grammar_version", w, got)
			}
			if got := refusedBy(`SELECT "` + w + `"`); got == "grammar_version" {
				t.Errorf("%s quoted: refused", w)
			}
		}
	})
	t.Run("where both grammars read a name, a differing word passes", func(t *testing.T) {
		for _, w := range g.Words() {
			for _, sql := range []string{"SELECT 1 AS " + w, "SELECT r." + w + " FROM responses r"} {
				if got := refusedBy(sql); got == "grammar_version" {
					t.Errorf("%s: refused", sql)
				}
			}
		}
	})
	t.Run("JSON as a type passes, JSON syntax of the newer grammar does not", func(t *testing.T) {
		for _, sql := range []string{
			"SELECT CAST(to_jsonb(tags) AS JSON) FROM responses",
			"SELECT CAST(NULL AS pg_catalog.json)",
			`SELECT json '{"a":1}', JSON E'[]'`,
			"SELECT x FROM (SELECT 1) AS json(x)",
			"SELECT '{}'::json",
			"EXPLAIN (FORMAT JSON) SELECT 1",
			"EXPLAIN (ANALYZE false, FORMAT json, COSTS off) SELECT 1",
		} {
			if got := refusedBy(sql); got == "grammar_version" {
				t.Errorf("%s: refused", sql)
			}
		}
		for _, sql := range []string{
			`SELECT JSON('{"a":1}')`,
			`SELECT '{}' IS JSON`,
			`SELECT '{}' IS NOT JSON OBJECT`,
			"SELECT json FROM (SELECT 1) AS t(json)",
		} {
			if got := refusedBy(sql); got != "grammar_version" {
				t.Errorf("%s: rule %q, want grammar_version", sql, got)
			}
		}
	})
	if g.Upstream < 160000 {
		t.Run("a number only PostgreSQL 16 reads is refused, where the upstream reads a syntax error", func(t *testing.T) {
			for _, sql := range []string{
				"SELECT 0x10",
				"SELECT 0X1f, 1",
				"SELECT 0o17",
				"SELECT 0B101",
				"SELECT 1_000",
				"SELECT 1_000.5",
				"SELECT 1.000_5",
				"SELECT id FROM responses WHERE nps = 0x5",
				"SELECT id FROM responses LIMIT 0x2",
				"SELECT id FROM responses WHERE id = -0x1",
			} {
				if got := refusedBy(sql); got != "grammar_version" {
					t.Errorf("%s: rule %q, want grammar_version", sql, got)
				}
			}
		})
		t.Run("a decimal number, or the form in a name, a string or a comment, is not such a number", func(t *testing.T) {
			for _, sql := range []string{
				"SELECT 0, 10, 0.5, 1e5, 00012",
				"SELECT 1 AS col1_x, 2 AS t0b, 3 AS c0x10",
				`SELECT 1 AS "1_000"`,
				"SELECT '0x10', $q$1_000$q$",
				"SELECT 1 /* 0x10 */ -- 1_000",
			} {
				if got := refusedBy(sql); got == "grammar_version" {
					t.Errorf("%s: refused", sql)
				}
			}
		})
		t.Run("SYSTEM_USER as an alias cannot hide a whole-row reference", func(t *testing.T) {
			for _, sql := range []string{
				`SELECT SYSTEM_USER FROM responses "system_user"`,
				`SELECT system_user FROM pg_class system_user`,
				"SELECT\tSystem_User\nFROM responses AS \"system_user\"",
			} {
				if got := refusedBy(sql); got != "grammar_version" {
					t.Errorf("%s: rule %q, want grammar_version", sql, got)
				}
			}
		})
		t.Run("the word in a string, a comment or a quoted identifier is not a use", func(t *testing.T) {
			for _, sql := range []string{
				`SELECT 'system_user' AS x`,
				`SELECT 1 AS x /* system_user */`,
				"SELECT 1 AS x -- system_user",
				`SELECT $q$ system_user $q$ AS x`,
				`SELECT 1 AS "system_user"`,
				`SELECT relname AS system_user_name FROM pg_class LIMIT 1`,
			} {
				if got := refusedBy(sql); got == "grammar_version" {
					t.Errorf("%s: refused", sql)
				}
			}
		})
	}
}

// TestGrammarDifferencesOfOtherVersions compares the parser's grammar with
// the keyword lists of PostgreSQL 13, 15 and 16 (testdata/keywords, from
// their kwlist.h): the words each reads differently, and for 15 the same
// answer as the live upstream's pg_get_keywords().
func TestGrammarDifferencesOfOtherVersions(t *testing.T) {
	cases := []struct {
		file    string
		version int
		// differ and same are words that must and must not differ.
		differ, same []string
	}{
		{"pg13.txt", 130008, []string{"system_user", "json", "json_object", "json_table", "merge_action"}, []string{"select", "format", "path"}},
		{"pg15.txt", 150001, []string{"system_user", "json", "json_object", "json_table", "merge_action"}, []string{"select", "merge", "format"}},
		{"pg16.txt", 160001, []string{"json", "json_table", "json_query", "json_value", "json_exists", "merge_action"}, []string{"system_user", "json_object", "json_array", "select"}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			list, err := os.ReadFile(filepath.Join("testdata", "keywords", c.file))
			if err != nil {
				t.Fatal(err)
			}
			g, err := rewrite.DiffKeywordList(c.version, string(list))
			if err != nil {
				t.Fatal(err)
			}
			words := map[string]bool{}
			for _, w := range g.Words() {
				words[w] = true
			}
			t.Logf("%d words differ: %s", len(words), strings.Join(g.Words(), " "))
			for _, w := range c.differ {
				if !words[w] {
					t.Errorf("%s does not differ", w)
				}
			}
			for _, w := range c.same {
				if words[w] {
					t.Errorf("%s differs", w)
				}
			}
			if c.version/10000 == 15 {
				live := demoCatalog(t).Grammar
				if live.Upstream/10000 == 15 && strings.Join(live.Words(), " ") != strings.Join(g.Words(), " ") {
					t.Errorf("the live upstream's differences are %v", live.Words())
				}
			}
		})
	}
}

// TestParserIsNotVulnerable keeps every pg_query_go the module links at
// v6.2.5 or later: v5.1.0's Normalize, which the engine runs on every
// client statement, writes out of bounds on hostile input
// (GHSA-6ggm-xmc9-8ffg).
func TestParserIsNotVulnerable(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{.Path}} {{.Version}}{{end}}", "github.com/pgveil/pgveil/...").Output()
	if err != nil {
		t.Fatalf("listing the module's dependencies: %v", err)
	}
	seen := false
	for _, line := range strings.Split(string(out), "\n") {
		path, version, _ := strings.Cut(line, " ")
		if !strings.HasPrefix(path, "github.com/pganalyze/pg_query_go") {
			continue
		}
		seen = true
		var major, minor, patch int
		fmt.Sscanf(version, "v%d.%d.%d", &major, &minor, &patch)
		if path != "github.com/pganalyze/pg_query_go/v6" || major != 6 || minor < 2 || minor == 2 && patch < 5 {
			t.Errorf("linked %s %s; want github.com/pganalyze/pg_query_go/v6 v6.2.5 or later", path, version)
		}
	}
	if !seen {
		t.Fatal("pg_query_go is not linked")
	}
}
