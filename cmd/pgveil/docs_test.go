package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/pgveil/pgveil/internal/testcert"
	"github.com/pgveil/pgveil/policy"
)

// docFiles are the documents DBAs write their policies from, relative to
// this package.
var docFiles = []string{"../../README.md", "../../configs/README.md", "../../docs/tutorial.md"}

// docBlock is one ```hcl block of a document.
//
// NOTE: an HTML comment on the line just before the fence says what the
// block is meant to do, when it is not "load cleanly":
//
//	<!-- hcl: error "text of the diagnostic" -->  the block shows a mistake
//	<!-- hcl: from configs/demo.hcl -->         the block is quoted from that file
type docBlock struct {
	// doc and line locate the fence's first line of text (1-based).
	doc  string
	line int
	// text is the block's HCL.
	text string
	// wantError, when set, is text the diagnostics must include.
	wantError string
	// from, when set, is a file the block is quoted from verbatim.
	from string
}

var hclDirective = regexp.MustCompile(`^<!--\s*hcl:\s*(error|from)\s+(.*?)\s*-->$`)

// docBlocks returns every ```hcl block of doc.
func docBlocks(t *testing.T, doc string) []docBlock {
	t.Helper()
	src, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(src), "\n")
	var blocks []docBlock
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```hcl" {
			continue
		}
		b := docBlock{doc: doc, line: i + 2}
		if i > 0 {
			if m := hclDirective.FindStringSubmatch(strings.TrimSpace(lines[i-1])); m != nil {
				switch m[1] {
				case "error":
					b.wantError = strings.Trim(m[2], `"`)
				case "from":
					b.from = m[2]
				}
			}
		}
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		b.text = strings.Join(body, "\n") + "\n"
		blocks = append(blocks, b)
	}
	return blocks
}

// docBase is the configuration a fragment is completed with, keyed by
// blockKey: the demo database's service account and the names the documents' fragments
// refer to. A block of the fragment replaces the base's block of the same
// type and labels (listen, upstream: of the same type).
//
// NOTE: the fragment is written first, so that the line numbers of its
// diagnostics are those of the block.
var docBase = []struct{ key, text string }{
	{"listen", `listen { address = "127.0.0.1:6432" }`},
	{"upstream", `upstream {
  address  = "@UPSTREAM@"
  database = "feedback"
  user     = "pgveil_svc"
  password = env("PGVEIL_DEMO_UPSTREAM_PASSWORD")
}`},
	{"schema public", `schema "public" { default = "deny" }`},
	{"table public.responses", `table "public.responses" {
  owner_column = "agent_login"
  team_column  = "team_id"
  column "contact" { class = "pii" }
  column "email" { class = "pii" }
  column "score" { class = "technical" }
}`},
	{"table public.employees", `table "public.employees" {}`},
	{"role country_analyst", `role "country_analyst" { statements = ["select"] }`},
	{"role manager", `role "manager" { statements = ["select"] }`},
	{"role bi_service", `role "bi_service" { statements = ["select"] }`},
	{"role loader", `role "loader" { statements = ["select"] }`},
	{"user hq", `user "hq" {
  password = "VERIFIER"
  roles    = ["manager"]
}`},
	{"user marie", `user "marie" {
  password   = "VERIFIER"
  roles      = ["country_analyst"]
  attributes = { country = "France" }
}`},
}

// singletons are the block types a configuration holds once.
var singletons = map[string]bool{"listen": true, "upstream": true, "teams": true, "audit": true, "admin": true, "ldap": true}

// docConfig returns the configuration file of b, and whether the block is
// a complete configuration (it has listen and upstream blocks). Elided
// verifiers ("SCRAM-SHA-256$4096:…") become real ones; files under
// /etc/pgveil and /var/log/pgveil are in dir, which holds a certificate,
// its key and CA bundles.
func docConfig(t *testing.T, b docBlock, dir, upstream string) (string, bool) {
	t.Helper()
	text := b.text
	text = strings.ReplaceAll(text, "SCRAM-SHA-256$4096:…", verifier)
	text = strings.ReplaceAll(text, "/etc/pgveil/", dir+"/")
	text = strings.ReplaceAll(text, "/var/log/pgveil/", dir+"/")
	f, diags := hclsyntax.ParseConfig([]byte(text), "doc.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		return text, true // NOTE: the loader reports it.
	}
	body := f.Body.(*hclsyntax.Body)
	defined := map[string]bool{}
	for _, blk := range body.Blocks {
		defined[blockKey(blk.Type, blk.Labels)] = true
	}
	if defined["listen"] && defined["upstream"] {
		return text, true
	}
	if len(body.Blocks) == 0 {
		// NOTE: attributes alone (a rule's where): inside a rule.
		text = "rule \"doc\" {\n  tables = [\"public.responses\"]\n  roles = [\"country_analyst\"]\n" + text + "}\n"
	}
	var out strings.Builder
	out.WriteString(text)
	for _, blk := range docBase {
		if !defined[blk.key] {
			out.WriteString("\n" + blk.text + "\n")
		}
	}
	cfg := strings.ReplaceAll(out.String(), "VERIFIER", verifier)
	return strings.ReplaceAll(cfg, "@UPSTREAM@", upstream), false
}

// blockKey is what makes blk the same block as another.
func blockKey(typ string, labels []string) string {
	if singletons[typ] {
		return typ
	}
	return strings.Join(append([]string{typ}, labels...), " ")
}

// docLocation rewrites doc.hcl:L: positions as the document's own lines.
func docLocation(out string, b docBlock) string {
	re := regexp.MustCompile(`doc\.hcl:(\d+):`)
	return re.ReplaceAllStringFunc(out, func(m string) string {
		var n int
		fmt.Sscanf(m, "doc.hcl:%d:", &n)
		if n > strings.Count(b.text, "\n") {
			return fmt.Sprintf("base:%d:", n)
		}
		return fmt.Sprintf("%s:%d:", strings.TrimPrefix(b.doc, "../../"), b.line+n-1)
	})
}

// TestDocumentedConfigurationsLoad loads every ```hcl block of the
// documents as pgveil check does: a complete configuration as it is, a
// fragment completed with docBase, checked against the demo database.
func TestDocumentedConfigurationsLoad(t *testing.T) {
	setupDemo(t)
	t.Setenv("PGVEIL_UPSTREAM_PASSWORD", "x")
	t.Setenv("PGVEIL_LDAP_PASSWORD", "x")
	t.Setenv("PGVEIL_AUDIT_KEY", "x")
	t.Setenv("PGVEIL_HASH_SECRET", "x")
	certPEM, keyPEM := testcert.PEM(t, testcert.New(t))
	for _, doc := range docFiles {
		for _, b := range docBlocks(t, doc) {
			name := fmt.Sprintf("%s:%d", doc[len("../../"):], b.line)
			if b.wantError != "" {
				name += " shows the error " + b.wantError
			} else {
				name += " loads"
			}
			t.Run(name, func(t *testing.T) {
				if b.from != "" {
					src, err := os.ReadFile(filepath.Join("../..", b.from))
					if err != nil {
						t.Fatal(err)
					}
					if !strings.Contains(string(src), b.text) {
						t.Fatalf("the block is not in %s as shown:\n%s", b.from, b.text)
					}
				}
				dir := t.TempDir()
				for _, f := range []string{"server.crt", "ca.pem", "clients-ca.crt"} {
					writeDocFile(t, filepath.Join(dir, f), certPEM)
				}
				writeDocFile(t, filepath.Join(dir, "server.key"), keyPEM)
				cfg, complete := docConfig(t, b, dir, cluster.Addr())
				path := filepath.Join(dir, "doc.hcl")
				writeDocFile(t, path, []byte(cfg))
				args := []string{"check", "--config", path}
				if !complete {
					args = append(args, "--upstream")
				}
				if !complete {
					installDocMaskKeys(t, path)
				}
				code, out, errOut := runCLI("", args...)
				all := docLocation(out+errOut, b)
				switch {
				case b.wantError == "" && code != 0:
					t.Fatalf("exit %d:\n%s\nconfiguration:\n%s", code, all, cfg)
				case b.wantError != "" && (code == 0 || !strings.Contains(all, b.wantError)):
					t.Fatalf("exit %d, want 1 and %q:\n%s", code, b.wantError, all)
				}
				t.Logf("%s", all)
			})
		}
	}
}

// writeDocFile writes data to path.
func writeDocFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// installDocMaskKeys installs the keys of the hash masks of the
// configuration at path in the demo database, as its owner would (pgveil
// mask-keys), for check --upstream to find them, and drops them when t
// ends. Nothing when the configuration does not load or has no hash mask.
func installDocMaskKeys(t *testing.T, path string) {
	t.Helper()
	cfg, diags := policy.NewLoader().Load(path)
	if diags.HasErrors() || cfg == nil || !cfg.HasHashMasks() {
		return
	}
	ctx := context.Background()
	if err := cluster.ExecScript(ctx, "feedback", cfg.MaskKeysSQL()); err != nil {
		t.Fatalf("installing the hash masks' keys: %v", err)
	}
	t.Cleanup(func() {
		if err := cluster.Exec(context.Background(), "feedback", "DROP SCHEMA IF EXISTS pgveil CASCADE"); err != nil {
			t.Errorf("dropping the hash masks' keys: %v", err)
		}
	})
}
