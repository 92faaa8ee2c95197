package policy

import (
	"github.com/pgveil/pgveil/internal/testcert"

	"bytes"
	"crypto/tls"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

var update = flag.Bool("update", false, "rewrite the expected diagnostics in testdata/*.golden")

// goldenCase is one configuration under testdata.
type goldenCase struct {
	// name is the file (without .hcl) or directory name.
	name string
	// env sets environment variables for the case.
	env map[string]string
}

// goldenCases are the configurations under testdata: a file <name>.hcl or
// a directory <name>/, whose diagnostics (and configuration, when it
// loads) must match <name>.golden.
var goldenCases = []goldenCase{
	{name: "valid_full"},
	{name: "valid_minimal"},
	{name: "split"},
	{name: "split_duplicate_upstream"},
	{name: "typo_attribute"},
	{name: "typo_block"},
	{name: "env_missing"},
	{name: "env_default", env: map[string]string{"PGVEIL_UPSTREAM_PASSWORD": ""}},
	{name: "env_too_many_arguments"},
	{name: "unknown_function"},
	{name: "variable_reference"},
	{name: "plain_password"},
	{name: "bad_duration"},
	{name: "bad_size"},
	{name: "bad_connections"},
	{name: "bad_address"},
	{name: "bad_verifier"},
	{name: "plaintext_user_password"},
	{name: "duplicate_user"},
	{name: "missing_listen"},
	{name: "bad_tls_mode"},
	{name: "bad_relay"},
	{name: "bad_pool"},
	{name: "tls_mode_verify_ca"},
	{name: "ca_file_without_verify"},
	{name: "missing_cert"},
	{name: "tls_missing_key_file"},
	{name: "syntax_error"},
	{name: "wrong_types"},
	{name: "policy_valid"},
	{name: "unknown_role"},
	{name: "bad_scope"},
	{name: "where_syntax"},
	{name: "where_attributes"},
	{name: "where_forbidden"},
	{name: "table_patterns"},
	{name: "missing_owner_column"},
	{name: "bad_mask"},
	{name: "duplicate_blocks"},
	{name: "teams_errors"},
	{name: "teams_table_errors"},
	{name: "identity_query"},
	{name: "rule_errors"},
	{name: "user_policy_errors"},
	{name: "client_cert_valid"},
	{name: "client_cert_errors"},
	{name: "client_cert_bad_auth"},
	{name: "ldap_search_bind"},
	{name: "ldap_errors"},
	{name: "act_for_errors"},
}

func TestLoadGolden(t *testing.T) {
	testdata, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM := selfSignedCert(t)
	for _, tt := range goldenCases {
		t.Run(tt.name, func(t *testing.T) {
			// NOTE: the case runs from a temporary directory holding a copy
			// of it and freshly generated TLS files, so that diagnostics
			// show short, stable relative paths.
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "server.crt"), certPEM)
			writeFile(t, filepath.Join(dir, "server.key"), keyPEM)
			writeFile(t, filepath.Join(dir, "ca.pem"), certPEM)
			path := tt.name
			if _, err := os.Stat(filepath.Join(testdata, tt.name)); err != nil {
				path += ".hcl"
			}
			copyTree(t, filepath.Join(testdata, path), filepath.Join(dir, path))
			t.Chdir(dir)

			t.Setenv("PGVEIL_UPSTREAM_PASSWORD", "s3cret")
			t.Setenv("PGVEIL_TEST_UNSET", "")
			os.Unsetenv("PGVEIL_TEST_UNSET")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}

			l := NewLoader()
			cfg, diags := l.Load(path)
			var got bytes.Buffer
			if err := WriteDiagnostics(&got, l.Files(), diags); err != nil {
				t.Fatal(err)
			}
			if (cfg == nil) != diags.HasErrors() {
				t.Errorf("config %v with errors %v", cfg != nil, diags.HasErrors())
			}
			if cfg != nil {
				got.WriteString("--- config ---\n")
				dumpConfig(&got, cfg)
			}

			golden := filepath.Join(testdata, tt.name+".golden")
			if *update {
				writeFile(t, golden, got.Bytes())
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got.String() != string(want) {
				t.Errorf("diagnostics differ from %s (run go test -update to accept):\n--- got ---\n%s--- want ---\n%s", golden, got.String(), want)
			}
		})
	}
}

func TestEveryTestdataCaseRuns(t *testing.T) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := strings.TrimSuffix(strings.TrimSuffix(e.Name(), ".hcl"), ".golden")
		if !slices.ContainsFunc(goldenCases, func(c goldenCase) bool { return c.name == name }) {
			t.Errorf("testdata/%s belongs to no golden case", e.Name())
		}
	}
}

func TestLoad(t *testing.T) {
	for _, c := range []struct {
		name, src, want string
	}{
		{"parentheses nested a hundred thousand deep are an error, not a stack overflow",
			"x = " + strings.Repeat("(", 100000) + "1" + strings.Repeat(")", 100000), "nested too deeply"},
		{"blocks nested too deeply are an error", strings.Repeat("a {\n", 200) + strings.Repeat("}\n", 200), "nested too deeply"},
		{"a long run of unary operators is an error", "x = " + strings.Repeat("!", 5000) + "true", "nested too deeply"},
		{"a number with a huge exponent is an error, quickly", "user \"u\" {\n  attributes = { x = 1e-1000000 }\n}", "Number too large"},
		{"a number with a huge mantissa is an error", "x = " + strings.Repeat("9", 5000), "Number too large"},
		{"a long chain of operators is an error, not a stack overflow", "x = 1" + strings.Repeat("+1", 10000), "Expression too long"},
		{"so is one dividing a number in a template", `x = "a${1` + strings.Repeat("/1e400", 100) + `}"`, "Expression too long"},
		{"a computed number out of range is an error", `listen { address = "127.0.0.1:6432" }
upstream {
  address  = "127.0.0.1:5432"
  database = "db"
  user     = "svc"
}
user "u" {
  password = "SCRAM-SHA-256$4096:UhSmBtEvd3peBj1P+aiWVQ==$m1CEsm/JM1LTWyYa7PjZhlruMkwsJtDCrvwQ1+Do+8Q=:sJ1/SRpjmzujYW5rhvGW9Ht0EBUXt1WgDUar42e3Idw="
  attributes = { x = 1e-300 * 1e-300 * 1e-300 * 1e-300 }
}`, "beyond 1e±1000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pgveil.hcl")
			writeFile(t, path, []byte(c.src))
			cfg, diags := Load(path)
			if cfg != nil || !strings.Contains(diags.Error(), c.want) {
				t.Fatalf("got %v, %v", cfg, diags)
			}
		})
	}
	t.Run("a missing path is an error", func(t *testing.T) {
		cfg, diags := Load(filepath.Join(t.TempDir(), "nope.hcl"))
		if cfg != nil || !diags.HasErrors() || !strings.Contains(diags.Error(), "no such file or directory") {
			t.Errorf("got %v, %v", cfg, diags)
		}
	})
	t.Run("a file named .HCL in a configuration directory is an error", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "a.hcl"), []byte("listen {}"))
		writeFile(t, filepath.Join(dir, "rules.HCL"), []byte("rule {}"))
		cfg, diags := Load(dir)
		if cfg != nil || !diags.HasErrors() || !strings.Contains(diags.Error(), "rules.HCL would not be read") {
			t.Errorf("got %v, %v", cfg, diags)
		}
	})
	t.Run("a file that never ends is an error, read no further than the limit", func(t *testing.T) {
		if _, err := os.Stat("/dev/zero"); err != nil {
			t.Skip("no /dev/zero")
		}
		cfg, diags := Load("/dev/zero")
		if cfg != nil || !strings.Contains(diags.Error(), "Configuration file too large") ||
			!strings.Contains(diags.Error(), "/dev/zero holds more than 32 MiB") {
			t.Errorf("got %v, %v", cfg, diags)
		}
	})
	t.Run("a file larger than 32 MiB is an error", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "pgveil.hcl")
		sparseFile(t, path, maxConfigBytes+1)
		cfg, diags := Load(path)
		if cfg != nil || !strings.Contains(diags.Error(), "Configuration file too large") {
			t.Errorf("got %v, %v", cfg, diags)
		}
	})
	t.Run("files of a directory holding more than 32 MiB together are an error", func(t *testing.T) {
		dir := t.TempDir()
		sparseFile(t, filepath.Join(dir, "a.hcl"), maxConfigBytes/2+1)
		sparseFile(t, filepath.Join(dir, "b.hcl"), maxConfigBytes/2+1)
		cfg, diags := Load(dir)
		if cfg != nil || !strings.Contains(diags.Error(), "Configuration too large") ||
			!strings.Contains(diags.Error(), "hold more than 32 MiB together (b.hcl and those before it)") {
			t.Errorf("got %v, %v", cfg, diags)
		}
	})
	t.Run("hidden files of a configuration directory are not read", func(t *testing.T) {
		dir := t.TempDir()
		t.Setenv("PGVEIL_UPSTREAM_PASSWORD", "s3cret")
		src, err := os.ReadFile(filepath.Join("testdata", "valid_minimal.hcl"))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "pgveil.hcl"), src)
		// Emacs's lock file: a dangling symbolic link.
		if err := os.Symlink("marie@host.1234:1700000000", filepath.Join(dir, ".#pgveil.hcl")); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, ".pgveil.hcl"), []byte("this is { not HCL"))
		writeFile(t, filepath.Join(dir, ".old.HCL"), []byte("rule {}"))
		cfg, diags := Load(dir)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		if want := []string{filepath.Join(dir, "pgveil.hcl")}; !slices.Equal(cfg.Files, want) {
			t.Errorf("read %q, want %q", cfg.Files, want)
		}
	})
	t.Run("an unreadable file of a directory is an error, and the others are still checked", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Symlink("nowhere", filepath.Join(dir, "a.hcl")); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "b.hcl"), []byte("listen {"))
		cfg, diags := Load(dir)
		var summaries []string
		for _, d := range diags {
			where := ""
			if d.Subject != nil {
				where = filepath.Base(d.Subject.Filename) + ": "
			}
			summaries = append(summaries, where+d.Summary)
		}
		if cfg != nil || len(summaries) != 2 || summaries[0] != "Cannot read configuration" || !strings.HasPrefix(summaries[1], "b.hcl: ") {
			t.Errorf("got %v, %q", cfg, summaries)
		}
	})
	t.Run("a directory without hcl files is an error", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "notes.txt"), []byte("listen {}"))
		cfg, diags := Load(dir)
		if cfg != nil || !diags.HasErrors() || !strings.Contains(diags.Error(), "contains no *.hcl files") {
			t.Errorf("got %v, %v", cfg, diags)
		}
	})
	t.Run("relative paths resolve against the configuration file's directory", func(t *testing.T) {
		dir := t.TempDir()
		certPEM, keyPEM := selfSignedCert(t)
		writeFile(t, filepath.Join(dir, "tls", "server.crt"), certPEM)
		writeFile(t, filepath.Join(dir, "tls", "server.key"), keyPEM)
		writeFile(t, filepath.Join(dir, "conf", "pgveil.hcl"), []byte(`
listen {
  address = "127.0.0.1:6432"
  tls {
    cert_file = "../tls/server.crt"
    key_file  = "`+filepath.Join(dir, "tls", "server.key")+`"
  }
}
upstream {
  address  = "127.0.0.1:5432"
  database = "db"
  user     = "svc"
}
`))
		cfg, diags := Load(filepath.Join(dir, "conf", "pgveil.hcl"))
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		if want := filepath.Join(dir, "tls", "server.crt"); cfg.Listen.TLS.CertFile != want {
			t.Errorf("cert_file %q, want %q", cfg.Listen.TLS.CertFile, want)
		}
		if want := filepath.Join(dir, "tls", "server.key"); cfg.Listen.TLS.KeyFile != want {
			t.Errorf("key_file %q, want %q", cfg.Listen.TLS.KeyFile, want)
		}
		if c := cfg.Listen.TLS.Config; c == nil || c.MinVersion != tls.VersionTLS12 || len(c.Certificates) != 1 || c.Certificates[0].Leaf == nil {
			t.Errorf("TLS configuration %+v", c)
		}
	})
	t.Run("diagnostics name file:line:col and underline the offending range", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "pgveil.hcl")
		writeFile(t, path, []byte("listen {\n  address = \"nowhere\"\n}\n"))
		l := NewLoader()
		_, diags := l.Load(path)
		var out bytes.Buffer
		if err := WriteDiagnostics(&out, l.Files(), diags); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{path + ":2:13: error: ", "   2 |   address = \"nowhere\"\n     |             ^^^^^^^^^\n"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("missing %q in\n%s", want, out.String())
			}
		}
	})
	t.Run("warnings come back with the configuration", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "pgveil.hcl"), []byte(`
listen {
  address = "127.0.0.1:6432"
}
upstream {
  address  = "127.0.0.1:5432"
  database = "db"
  user     = "svc"
  password = "plain"
}
`))
		cfg, diags := Load(filepath.Join(dir, "pgveil.hcl"))
		if cfg == nil || len(diags) != 1 || diags[0].Severity != hcl.DiagWarning {
			t.Fatalf("got %v, %v", cfg, diags)
		}
		if cfg.Upstream.Password != "plain" {
			t.Errorf("password %q", cfg.Upstream.Password)
		}
	})
}

// dumpConfig writes cfg in a stable, readable form for golden files.
func dumpConfig(w *bytes.Buffer, cfg *Config) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("files = %q", cfg.Files)
	l := cfg.Listen
	p("listen.address = %q", l.Address)
	p("listen.database = %q", l.Database)
	p("listen.startup_timeout = %s", l.StartupTimeout)
	p("listen.shutdown_timeout = %s", l.ShutdownTimeout)
	p("listen.max_message_size = %d", l.MaxMessageSize)
	p("listen.max_connections = %d, max_user_connections = %d", l.MaxConnections, l.MaxUserConnections)
	p("listen.relay = %q", l.Relay)
	if t := l.TLS; t != nil {
		p("listen.tls.cert_file = %q", t.CertFile)
		p("listen.tls.key_file = %q", t.KeyFile)
		p("listen.tls.require = %v", t.Require)
		if c := t.Config; c != nil && len(c.Certificates) == 1 && c.Certificates[0].Leaf != nil {
			p("listen.tls.config = certificate %q, minimum TLS version %s", c.Certificates[0].Leaf.Subject.CommonName, tls.VersionName(c.MinVersion))
		} else {
			p("listen.tls.config = %v", c)
		}
		if t.ClientCAFile != "" {
			p("listen.tls.client_ca_file = %q, client_crl_file = %q, client_name = %q", t.ClientCAFile, t.ClientCRLFile, t.ClientName)
			p("listen.tls.client_cas loaded = %v, crl loaded = %v, client auth = %v", t.ClientCAs != nil, t.ClientCRL != nil, t.Config != nil && t.Config.ClientAuth == tls.RequestClientCert)
		}
	}
	u := cfg.Upstream
	p("upstream.address = %q", u.Address)
	p("upstream.database = %q", u.Database)
	p("upstream.user = %q", u.User)
	p("upstream.password = %q", u.Password)
	p("upstream.search_path = %q", u.SearchPath)
	p("upstream.connect_timeout = %s", u.ConnectTimeout)
	p("upstream.catalog_refresh = %s", u.CatalogRefresh)
	p("upstream.tls.mode = %q", u.TLS.Mode)
	p("upstream.tls.ca_file = %q", u.TLS.CAFile)
	p("upstream.tls.server_name = %q", u.TLS.ServerName)
	p("upstream.tls.root_cas loaded = %v", u.TLS.RootCAs != nil)
	p("upstream.pool.mode = %q", u.Pool.Mode)
	p("upstream.pool.size = %d", u.Pool.Size)
	p("upstream.pool.wait_timeout = %s", u.Pool.WaitTimeout)
	p("upstream.pool.idle_timeout = %s", u.Pool.IdleTimeout)
	names := make([]string, 0, len(cfg.Users))
	for name := range cfg.Users {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		user := cfg.Users[name]
		p("user %q (login %q, declared at %s) = %s", name, user.Login, position(user.DeclRange), user.Verifier)
		if user.Auth != "" {
			p("user %q auth = %q", name, user.Auth)
		}
		if user.MaxConnections != 0 {
			p("user %q max_connections = %d", name, user.MaxConnections)
		}
	}
	if l := cfg.LDAP; l != nil {
		d := l.Directory
		p("ldap.url = %q, start_tls = %v, ca_file = %q (loaded %v), server_name = %q, timeout = %s, allow_cleartext = %v",
			d.URL, d.StartTLS, l.CAFile, d.RootCAs != nil, d.ServerName, d.Timeout, l.AllowCleartext)
		p("ldap simple bind: prefix = %q, suffix = %q", d.Prefix, d.Suffix)
		p("ldap search: base_dn = %q, bind_dn = %q, bind_password set = %v, search_attribute = %q, search_filter = %q",
			d.BaseDN, d.BindDN, d.BindPassword != "", d.SearchAttribute, d.SearchFilter)
		p("ldap groups: member_of_attribute = %q, group_base_dn = %q, group_filter = %q", d.MemberOfAttribute, d.GroupBaseDN, d.GroupFilter)
		for _, g := range l.Groups {
			p("ldap group %q: roles %q, groups %q", g.DN, g.Roles, g.Groups)
		}
	}
	dumpPolicy(w, cfg)
}

// selfSignedCert returns a fresh self-signed ECDSA certificate and its
// key, PEM-encoded.
func selfSignedCert(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	return testcert.PEM(t, testcert.New(t))
}

// writeFile writes data to path, creating directories.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// copyTree copies the file or directory src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		writeFile(t, filepath.Join(dst, rel), data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// sparseFile creates the file path of size bytes, all zero, taking no
// room on disk.
func sparseFile(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

func TestLoaderWithoutTests(t *testing.T) {
	const base = `
listen { address = "127.0.0.1:6432" }
upstream {
  address  = "127.0.0.1:5432"
  database = "db"
  user     = "svc"
  password = "plain"
  UPSTREAM
}
role "reader" { statements = ["select"] }
`
	brokenTest := "test \"t\" {\n  user  = \"nobody\"\n  query = \"SELECT 1\"\n}\n"
	cases := []struct {
		name, upstream, extra string
		// whole says whether WithoutTests returns a configuration, and
		// want is a summary the diagnostics must hold.
		whole bool
		want  string
	}{
		{"a configuration without errors needs no policy without tests", "", "", false, ""},
		{"errors only in test blocks leave the policy whole", "", brokenTest, true, "Unknown user"},
		{"a validation error beside them is reported, and the policy is not whole", `tls {
    mode        = "require"
    server_name = "db"
  }`, brokenTest, false, "Setting without effect"},
		{"an error in a role block beside them leaves no policy", "", brokenTest + `role "typo" { statements = ["selec"] }`, false, "Unknown user"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pgveil.hcl")
			writeFile(t, path, []byte(strings.Replace(base, "UPSTREAM", c.upstream, 1)+c.extra))
			l := NewLoader()
			cfg, diags := l.Load(path)
			if (cfg == nil) != diags.HasErrors() {
				t.Fatalf("configuration %v with diagnostics %v", cfg != nil, diags)
			}
			got := l.WithoutTests()
			if (got != nil) != c.whole {
				t.Fatalf("WithoutTests() = %v, want a configuration: %v\n%v", got != nil, c.whole, diags)
			}
			if got != nil && (len(got.Tests) != 0 || got.Roles["reader"] == nil) {
				t.Errorf("the policy without tests holds %d tests, roles %v", len(got.Tests), got.Roles)
			}
			found := c.want == ""
			for _, d := range diags {
				found = found || d.Summary == c.want
			}
			if !found {
				t.Errorf("diagnostics lack %q: %v", c.want, diags)
			}
		})
	}
}
