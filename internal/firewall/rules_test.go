package firewall_test

import (
	"bufio"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/pgveil/pgveil/internal/firewall"
	"github.com/pgveil/pgveil/internal/sqlstate"
)

// update rewrites the README's rule table from the registry.
var update = flag.Bool("update", false, "rewrite the README's firewall rule table from the registry")

// readmePath is the README holding the rule table.
const readmePath = "../../README.md"

// tableHeader starts the README's rule table.
const tableHeader = "| rule | SQLSTATE | refuses |"

// tableLines renders the registry as the README's table.
func tableLines() []string {
	lines := []string{tableHeader, "| --- | --- | --- |"}
	for _, r := range firewall.Rules {
		lines = append(lines, "| `"+r.Name+"` | "+r.Code+" | "+r.Doc+" |")
	}
	return lines
}

// readmeTable returns the README's lines and the span [start, end) of its
// rule table.
func readmeTable(t *testing.T) (lines []string, start, end int) {
	t.Helper()
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatalf("reading the README: %v", err)
	}
	lines = strings.Split(string(b), "\n")
	start = -1
	for i, l := range lines {
		if l == tableHeader {
			start = i
			break
		}
	}
	if start < 0 {
		t.Fatalf("%s has no line %q starting the firewall rule table", readmePath, tableHeader)
	}
	end = start
	for end < len(lines) && strings.HasPrefix(lines[end], "|") {
		end++
	}
	return lines, start, end
}

// tableRule reads the rule name of a table row: its first cell, in
// backquotes.
var tableRule = regexp.MustCompile("^\\| `([a-z_]+)` \\|")

// TestReadme checks what the documentation shows: the README's firewall
// rule table equals the registry (`go test ./internal/firewall -update`
// rewrites it), and every HCL example parses.
func TestReadme(t *testing.T) {
	t.Run("the rule table documents the registry, line for line", testRuleTable)
	t.Run("every HCL example of the documentation parses", testHCLExamples)
}

// testRuleTable keeps the README's firewall rule table equal to the
// registry: every registered rule is documented, line for line, and the
// table names no rule the registry lacks.
func testRuleTable(t *testing.T) {
	lines, start, end := readmeTable(t)
	want := tableLines()
	if *update {
		out := append(append(append([]string{}, lines[:start]...), want...), lines[end:]...)
		if err := os.WriteFile(readmePath, []byte(strings.Join(out, "\n")), 0o644); err != nil {
			t.Fatalf("writing the README: %v", err)
		}
		return
	}
	got := lines[start:end]

	documented := map[string]bool{}
	for _, l := range got[2:] {
		m := tableRule.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("README table row does not start with a rule name in backquotes: %s", l)
			continue
		}
		documented[m[1]] = true
		if _, ok := lookup(m[1]); !ok {
			t.Errorf("README documents the rule %s, which the registry (internal/firewall/rules.go) lacks", m[1])
		}
	}
	for _, r := range firewall.Rules {
		if !documented[r.Name] {
			t.Errorf("the rule %s is not documented in the README's table", r.Name)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("README's rule table differs from the registry; run go test ./internal/firewall -run TestReadme -update, or make it:\n%s",
			strings.Join(want, "\n"))
	}
}

// documentation lists the Markdown files whose HCL examples must parse.
var documentation = []string{readmePath, "../../configs/README.md", "../../docs/tutorial.md"}

// hclExample is a fenced ```hcl block of a Markdown file.
type hclExample struct {
	// line is the example's first line in the file.
	line int
	// src is the example, without the fence's indentation.
	src string
}

// hclExamples returns the ```hcl blocks of the Markdown text md, an
// unterminated one included (it runs to the end).
func hclExamples(md string) []hclExample {
	var out []hclExample
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		indent, ok := strings.CutSuffix(lines[i], "```hcl")
		if !ok || strings.TrimLeft(indent, " ") != "" {
			continue
		}
		start := i + 1
		var body []string
		for i = start; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, strings.TrimPrefix(lines[i], indent))
		}
		out = append(out, hclExample{line: start + 1, src: strings.Join(body, "\n")})
	}
	return out
}

// testHCLExamples parses every ```hcl example of the documentation: an
// example a reader copies must at least be HCL. (Examples are fragments,
// written with placeholders such as "SCRAM-SHA-256$4096:…": only their
// syntax is checked.)
func testHCLExamples(t *testing.T) {
	for _, path := range documentation {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		examples := hclExamples(string(b))
		if path == readmePath && len(examples) < 2 {
			t.Fatalf("found %d HCL examples in %s: the scan is broken", len(examples), path)
		}
		for _, ex := range examples {
			name := strings.TrimPrefix(path, "../../")
			_, diags := hclsyntax.ParseConfig([]byte(ex.src), name, hcl.Pos{Line: ex.line, Column: 1})
			for _, d := range diags {
				t.Errorf("the example at %s:%d does not parse: %s", name, ex.line, d)
			}
		}
	}
}

// TestHCLExamples checks the scan of Markdown for HCL examples.
func TestHCLExamples(t *testing.T) {
	md := "text\n```hcl\na = 1\n```\n```sh\nls\n```\n1. item\n\n   ```hcl\n   b = 2\n   ```\n```hcl\nc {"
	got := hclExamples(md)
	want := []hclExample{{line: 3, src: "a = 1"}, {line: 11, src: "b = 2"}, {line: 14, src: "c {"}}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("example %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

// lookup returns the registered rule named name.
func lookup(name string) (firewall.Rule, bool) {
	for _, r := range firewall.Rules {
		if r.Name == name {
			return r, true
		}
	}
	return firewall.Rule{}, false
}

// ruleName is the form of a rule's name: lower_snake_case.
var ruleName = regexp.MustCompile(`^[a-z][a-z_]*$`)

// TestRegistry checks each rule once, with a name, a known SQLSTATE and
// a documentation line.
func TestRegistry(t *testing.T) {
	// FeatureNotSupported: what a pooling mode cannot keep for the
	// session is a missing feature, not a policy's decision.
	// UndefinedColumn: a name PostgreSQL itself refuses as no column.
	// WrongObjectType: a relation PostgreSQL's COPY TO itself refuses.
	// IOError: the audit trail cannot be written (audit_unavailable), a
	// failure of the system, not a decision on the statement.
	codes := map[string]bool{sqlstate.InsufficientPrivilege: true, sqlstate.SyntaxError: true, sqlstate.UndefinedTable: true,
		sqlstate.FeatureNotSupported: true, sqlstate.UndefinedColumn: true, sqlstate.IOError: true,
		sqlstate.WrongObjectType: true}
	seen := map[string]bool{}
	for _, r := range firewall.Rules {
		switch {
		case !ruleName.MatchString(r.Name):
			t.Errorf("rule %q: the name is not lower_snake_case", r.Name)
		case seen[r.Name]:
			t.Errorf("rule %s is registered twice", r.Name)
		case !codes[r.Code]:
			t.Errorf("rule %s: SQLSTATE %q is not one a refusal sends", r.Name, r.Code)
		case r.Doc == "" || strings.Contains(r.Doc, "\n") || strings.Contains(strings.ReplaceAll(r.Doc, `\|`, ""), "|"):
			t.Errorf("rule %s: the documentation must be one table cell", r.Name)
		}
		seen[r.Name] = true
	}
}

// TestRulesInCode finds the rule names the code refuses with — deny and
// firewall.Deny/New calls, Rule fields, rule constants, denyRule's
// answers, the rules of the pg_catalog classifications — and checks that
// every one is registered and every registered rule is used.
func TestRulesInCode(t *testing.T) {
	used := map[string]string{} // rule → where
	fset := token.NewFileSet()
	// Every package below these, proxy/statement and proxy/server
	// included.
	for _, dir := range []string{"../../rewrite", "../../proxy", "../../cmd/pgveil"} {
		var files []string
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") {
				files = append(files, path)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			file, err := parser.ParseFile(fset, f, nil, 0)
			if err != nil {
				t.Fatalf("parsing %s: %v", f, err)
			}
			collectRules(fset, file, used)
		}
	}
	for _, tsv := range []string{"../../rewrite/functions.tsv", "../../rewrite/relations.tsv"} {
		collectClassificationRules(t, tsv, used)
	}
	if len(used) < 20 {
		t.Fatalf("found only %d rule names in the code: the scan is broken", len(used))
	}
	for name, where := range used {
		if _, ok := lookup(name); !ok {
			t.Errorf("%s refuses with the rule %s, which the registry (internal/firewall/rules.go) lacks", where, name)
		}
	}
	for _, r := range firewall.Rules {
		if _, ok := used[r.Name]; !ok {
			t.Errorf("the registered rule %s refuses nothing in the code", r.Name)
		}
	}
}

// collectRules adds the rule names file refuses with to used.
func collectRules(fset *token.FileSet, file *ast.File, used map[string]string) {
	add := func(e ast.Expr) {
		lit, ok := e.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return
		}
		if s, err := strconv.Unquote(lit.Value); err == nil {
			used[s] = fset.Position(lit.Pos()).String()
		}
	}
	ast.Inspect(file, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if len(n.Args) > 0 && refusingCall(n.Fun) {
				add(n.Args[0])
			}
		case *ast.KeyValueExpr:
			if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Rule" {
				add(n.Value)
			}
		case *ast.ValueSpec:
			for i, name := range n.Names {
				if strings.HasPrefix(name.Name, "rule") && i < len(n.Values) {
					add(n.Values[i])
				}
			}
		case *ast.FuncDecl:
			if n.Name.Name == "denyRule" && n.Body != nil {
				ast.Inspect(n.Body, func(m ast.Node) bool {
					if ret, ok := m.(*ast.ReturnStmt); ok && len(ret.Results) == 1 {
						add(ret.Results[0])
					}
					return true
				})
			}
		}
		return true
	})
}

// refusingCall reports whether fun builds a refusal from a rule name:
// rewrite's deny, or firewall.Deny and firewall.New.
func refusingCall(fun ast.Expr) bool {
	switch f := fun.(type) {
	case *ast.Ident:
		return f.Name == "deny"
	case *ast.SelectorExpr:
		x, ok := f.X.(*ast.Ident)
		return ok && x.Name == "firewall" && (f.Sel.Name == "Deny" || f.Sel.Name == "New")
	}
	return false
}

// collectClassificationRules adds the rules of a classification's groups
// ("== group TAB class TAB rule TAB reason") to used.
func collectClassificationRules(t *testing.T, path string, used map[string]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if fields := strings.Split(sc.Text(), "\t"); strings.HasPrefix(sc.Text(), "== ") && len(fields) == 4 && fields[2] != "-" {
			used[fields[2]] = path + ":" + strconv.Itoa(n)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
}

// TestPolicyChangedHint: a BI tool whose cursor is refused after it
// switched the user it acts for was told to reconnect, as after a reload;
// the hint says what changes the policy and that a cursor is declared
// again.
func TestPolicyChangedHint(t *testing.T) {
	r := firewall.Deny("policy_changed", "the policy changed since the cursor %q was checked", "h")
	for _, want := range []string{"BI service acts for", "DECLARE the cursor", "prepare the statement again"} {
		if !strings.Contains(r.Hint, want) {
			t.Errorf("hint %q does not say %q", r.Hint, want)
		}
	}
}
