package compat

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// endpoint is where a client connects and as whom.
type endpoint struct {
	host, port, user, password string
}

// through is pgveil, as a demo user.
func through(t *testing.T, user string) endpoint {
	t.Helper()
	h, p := veilHostPort(t)
	return endpoint{h, p, user, password(user)}
}

// upstream is the demo database itself, as pgveil's service account:
// what a client sees without pgveil, for comparing metadata.
func upstream() endpoint {
	return endpoint{cluster.Host(), strconv.Itoa(cluster.Port()), "pgveil_svc", servicePassword}
}

// dsn is a libpq keyword/value connection string.
func (e endpoint) dsn() string {
	return fmt.Sprintf("host=%s port=%s dbname=%s user=%s password=%s sslmode=disable application_name=pgveil-compat",
		e.host, e.port, demoDB, e.user, e.password)
}

// url is a postgres:// URL with scheme.
func (e endpoint) url(scheme string) string {
	u := url.URL{Scheme: scheme, User: url.UserPassword(e.user, e.password), Host: net.JoinHostPort(e.host, e.port),
		Path: "/" + demoDB, RawQuery: "sslmode=disable"}
	return u.String()
}

// libpqEnv is the PG* environment of libpq-based and node-postgres
// clients.
func (e endpoint) libpqEnv() []string {
	return []string{"PGHOST=" + e.host, "PGPORT=" + e.port, "PGUSER=" + e.user, "PGPASSWORD=" + e.password,
		"PGDATABASE=" + demoDB, "PGSSLMODE=disable", "PGAPPNAME=pgveil-compat"}
}

// scriptClient is a client program that prints JSON lines (see records).
type scriptClient struct {
	name string
	// prepare checks the client is installed and returns what run needs
	// (a compiled class directory, an interpreter path…).
	prepare func(t *testing.T) string
	// run returns the command for endpoint e.
	run func(prep string, e endpoint) (env []string, name string, args []string)
	// checks names the records the client must print.
	checks []string
	// metadata names the records that must be the same through pgveil as
	// directly upstream: masking keeps columns, types and catalog answers.
	metadata []string
}

// driverChecks are the records of the driver scripts (psycopg2, psycopg 3,
// PgJDBC, node-postgres).
var driverChecks = []string{"countries", "masked", "param", "columns", "named_cursor", "refused", "usable_after_error"}

// debianPython is the interpreter Debian's python3-* packages install for.
const debianPython = "/usr/bin/python3"

// pythonModules checks Debian's python3 imports modules.
func pythonModules(modules ...string) func(t *testing.T) string {
	return func(t *testing.T) string {
		t.Helper()
		if !isExecutable(debianPython) {
			missing(t, debianPython, os.ErrNotExist)
		}
		for _, m := range modules {
			if out, err := exec.Command(debianPython, "-c", "import "+m).CombinedOutput(); err != nil {
				missing(t, "the Python module "+m+" (Debian package python3-"+m+")", fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out))))
			}
		}
		return debianPython
	}
}

// jdbcJar is where Debian's libpostgresql-jdbc-java installs PgJDBC.
const jdbcJar = "/usr/share/java/postgresql.jar"

// compileJava compiles testdata/java/CompatClient.java once per test.
func compileJava(t *testing.T) string {
	t.Helper()
	javac := lookPath(t, "javac")
	lookPath(t, "java")
	if _, err := os.Stat(jdbcJar); err != nil {
		missing(t, "PgJDBC (Debian package libpostgresql-jdbc-java)", err)
	}
	dir := t.TempDir()
	runClient(t, nil, javac, "-cp", jdbcJar, "-d", dir, filepath.Join("testdata", "java", "CompatClient.java"))
	return dir
}

// nodeModules checks node and testdata/node/node_modules (npm ci).
func nodeModules(t *testing.T) string {
	t.Helper()
	node := lookPath(t, "node")
	for _, m := range []string{"pg", "pg-cursor"} {
		if _, err := os.Stat(filepath.Join("testdata", "node", "node_modules", m, "package.json")); err != nil {
			missing(t, "the npm package "+m+" (npm ci in internal/compat/testdata/node)", err)
		}
	}
	return node
}

var scriptClients = []scriptClient{
	{
		name:    "psycopg2",
		prepare: pythonModules("psycopg2"),
		run: func(py string, e endpoint) ([]string, string, []string) {
			return nil, py, []string{filepath.Join("testdata", "python", "psycopg2_client.py"), e.dsn()}
		},
		checks:   append([]string{"tx_setting"}, driverChecks...),
		metadata: []string{"columns"},
	},
	{
		name:    "psycopg 3",
		prepare: pythonModules("psycopg"),
		run: func(py string, e endpoint) ([]string, string, []string) {
			return nil, py, []string{filepath.Join("testdata", "python", "psycopg3_client.py"), e.dsn()}
		},
		checks:   append([]string{"prepared"}, driverChecks...),
		metadata: []string{"columns"},
	},
	{
		name:    "SQLAlchemy and pandas",
		prepare: pythonModules("psycopg2", "sqlalchemy", "pandas"),
		run: func(py string, e endpoint) ([]string, string, []string) {
			return nil, py, []string{filepath.Join("testdata", "python", "sqlalchemy_pandas.py"), e.url("postgresql+psycopg2")}
		},
		checks:   []string{"core_query", "param", "read_sql", "read_sql_table"},
		metadata: []string{"table_names", "reflected_columns", "primary_key", "foreign_keys", "indexes"},
	},
	{
		name:    "PgJDBC",
		prepare: compileJava,
		run: func(dir string, e endpoint) ([]string, string, []string) {
			url := "jdbc:postgresql://" + net.JoinHostPort(e.host, e.port) + "/" + demoDB + "?sslmode=disable&ApplicationName=pgveil-compat"
			return nil, "java", []string{"-cp", dir + string(os.PathListSeparator) + jdbcJar, "CompatClient", url, e.user, e.password}
		},
		checks:   append([]string{"prepared", "tx_setting"}, driverChecks...),
		metadata: []string{"columns", "tables", "meta_columns", "primary_key"},
	},
	{
		name:    "node-postgres",
		prepare: nodeModules,
		run: func(node string, e endpoint) ([]string, string, []string) {
			return e.libpqEnv(), node, []string{filepath.Join("testdata", "node", "client.js")}
		},
		checks:   append([]string{"prepared"}, driverChecks...),
		metadata: []string{"columns"},
	},
}

func TestClients(t *testing.T) {
	requireVeil(t)
	for _, c := range scriptClients {
		t.Run(c.name, func(t *testing.T) {
			prep := c.prepare(t)
			env, prog, args := c.run(prep, upstream())
			plain := records(t, runClient(t, env, prog, args...))
			if v, ok := plain["version"]; ok {
				t.Logf("%s: %v", c.name, v)
			}
			for _, user := range []string{"marie", "hq"} {
				t.Run("as "+user+" sees only what the policy allows, in the shape of the table", func(t *testing.T) {
					env, prog, args := c.run(prep, through(t, user))
					recs := records(t, runClient(t, env, prog, args...))
					for _, name := range c.checks {
						get(t, recs, name)
					}
					checkRecords(t, user, recs)
					for _, name := range c.metadata {
						got, want := get(t, recs, name), get(t, plain, name)
						if !reflect.DeepEqual(got, want) {
							t.Errorf("%s through pgveil:\n  %v\nupstream:\n  %v", name, got, want)
						}
					}
				})
			}
		})
	}
}

// expected is what a demo user must see of public.responses.
type expected struct {
	countries []any
	rows      int
	usa       int
	score     int
}

// expect computes what user sees, from the demo database directly.
func expect(t *testing.T, user string) expected {
	t.Helper()
	scope := map[string]string{"marie": "country = 'France'", "hq": "true"}[user]
	if scope == "" {
		t.Fatalf("no expectations for %s", user)
	}
	var e expected
	for _, c := range direct(t, "SELECT DISTINCT country FROM responses WHERE "+scope+" ORDER BY 1") {
		e.countries = append(e.countries, c)
	}
	atoi := func(sql string) int {
		n, err := strconv.Atoi(direct(t, sql)[0])
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	e.rows = atoi("SELECT count(*) FROM responses WHERE " + scope)
	e.usa = atoi("SELECT count(*) FROM responses WHERE country = 'USA' AND " + scope)
	if user == "hq" {
		e.score = atoi("SELECT count(score) FROM responses")
	}
	if e.rows == 0 || user == "hq" && e.score == 0 {
		t.Fatalf("the demo data gives %s nothing to see: the test would prove nothing", user)
	}
	return e
}

// checkRecords compares the common records of every client script with
// what user must see; records a client does not print are not checked.
func checkRecords(t *testing.T, user string, recs map[string]record) {
	t.Helper()
	e := expect(t, user)
	eq := func(check, field string, want any) {
		t.Helper()
		r, ok := recs[check]
		if !ok {
			return
		}
		got := r[field]
		if f, ok := got.(float64); ok {
			got = int(f)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s.%s: got %v, want %v", check, field, got, want)
		}
	}
	eq("countries", "values", e.countries)
	eq("masked", "contact", 0)
	eq("masked", "email", 0)
	eq("masked", "score", e.score)
	eq("param", "count", e.usa)
	eq("prepared", "total", e.rows)
	eq("named_cursor", "rows", e.rows)
	eq("named_cursor", "countries", e.countries)
	eq("named_cursor", "emails", 0)
	eq("core_query", "countries", e.countries)
	eq("read_sql", "rows", e.rows)
	eq("read_sql", "countries", e.countries)
	eq("read_sql", "contact", 0)
	eq("read_sql", "email", 0)
	eq("read_sql", "score", e.score)
	eq("read_sql_table", "rows", e.rows)
	eq("read_sql_table", "countries", e.countries)
	eq("usable_after_error", "value", 1)
	eq("tx_setting", "timezones", []any{"Asia/Tokyo"})
	if r, ok := recs["refused"]; ok {
		if r["sqlstate"] != "42501" {
			t.Errorf("reading employees: SQLSTATE %v, want 42501", r["sqlstate"])
		}
		if msg, _ := r["message"].(string); !strings.Contains(msg, "ungoverned_table") {
			t.Errorf("reading employees: the message does not name the firewall rule: %q", msg)
		}
	}
}
