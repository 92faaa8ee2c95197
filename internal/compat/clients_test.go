package compat

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// endpoint is where a client connects and as whom.
type endpoint struct {
	host, port, user, password string
	// role, when set, is the user the session acts for: the client runs
	// SET ROLE role first, as a BI service with connection
	// impersonation does (scriptClient.actFor).
	role string
}

// through is pgveil, as a demo user.
func through(t *testing.T, user string) endpoint {
	t.Helper()
	h, p := veilHostPort(t)
	return endpoint{host: h, port: p, user: user, password: password(user)}
}

// upstream is the demo database itself, as pgveil's service account:
// what a client sees without pgveil, for comparing metadata.
func upstream() endpoint {
	return endpoint{host: cluster.Host(), port: strconv.Itoa(cluster.Port()), user: "pgveil_svc", password: servicePassword}
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
	// actFor: the client also runs as the demo's BI service login
	// (metabase) acting for marie (endpoint.role), and must see what
	// marie sees.
	actFor bool
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

// psqlODBCLibrary is where Debian's odbc-postgresql installs psqlODBC's
// Unicode driver (one directory per architecture).
const psqlODBCLibrary = "/usr/lib/*/odbc/psqlodbcw.so"

// psqlODBC checks pyodbc and psqlODBC (unixODBC's driver manager comes
// with pyodbc).
func psqlODBC(t *testing.T) string {
	t.Helper()
	py := pythonModules("pyodbc")(t)
	if libs, _ := filepath.Glob(psqlODBCLibrary); len(libs) == 0 {
		missing(t, "psqlODBC (Debian package odbc-postgresql)", os.ErrNotExist)
	}
	return py
}

// odbcClient is psqlODBC through pyodbc with connection-string options.
func odbcClient(name, options string) scriptClient {
	return scriptClient{
		name:    name,
		prepare: psqlODBC,
		run: func(py string, e endpoint) ([]string, string, []string) {
			args := []string{filepath.Join("testdata", "python", "pyodbc_client.py"), e.host, e.port, demoDB, e.user, e.password, options}
			if e.role != "" {
				args = append(args, e.role)
			}
			return nil, py, args
		},
		checks: append([]string{"prepared", "typed_params", "tx_recovery", "write_refused", "tx_setting", "tables", "meta_columns",
			"primary_key", "statistics", "type_info", "foreign_keys", "autocommit"}, driverChecks...),
		metadata: []string{"columns", "tables", "meta_columns", "primary_key", "statistics", "type_info", "foreign_keys"},
		actFor:   true,
	}
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
		metadata: []string{"table_names", "reflected_columns", "primary_key", "foreign_keys", "indexes", "reflection"},
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
	{
		name:    "asyncpg",
		prepare: pythonModules("asyncpg"),
		run: func(py string, e endpoint) ([]string, string, []string) {
			args := []string{filepath.Join("testdata", "python", "asyncpg_client.py"), e.url("postgresql")}
			if e.role != "" {
				args = append(args, e.role)
			}
			return nil, py, args
		},
		checks: append([]string{"prepared", "typed_params", "parameters", "introspection", "type_codec", "executemany", "copy_out",
			"copy_in_refused", "copy_in_usable_after", "tx_recovery", "reset", "pool"}, driverChecks...),
		metadata: []string{"columns", "parameters", "introspection", "reset"},
		actFor:   true,
	},
	// psqlODBC's defaults: statements prepared server-side, results read
	// whole, a transaction rolled back on error.
	odbcClient("psqlODBC", ""),
	// As Tableau and Excel configure it for large results: DECLARE …
	// CURSOR and FETCH 100, statement-level rollback (a savepoint around
	// each statement).
	odbcClient("psqlODBC with UseDeclareFetch", "UseDeclareFetch=1;Fetch=100;UseServerSidePrepare=1;Protocol=7.4-2"),
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
			type as struct{ login, role, sees string }
			runs := []as{{"marie", "", "marie"}, {"hq", "", "hq"}}
			if c.actFor {
				runs = append(runs, as{"metabase", "marie", "marie"})
			}
			for _, run := range runs {
				name := "as " + run.login
				if run.role != "" {
					name += " acting for " + run.role + " (SET ROLE)"
				}
				t.Run(name+" sees only what the policy allows, in the shape of the table", func(t *testing.T) {
					e := through(t, run.login)
					e.role = run.role
					env, prog, args := c.run(prep, e)
					outp := runClient(t, env, prog, args...)
					if os.Getenv("COMPAT_SHOW") != "" {
						t.Log(outp)
					}
					recs := records(t, outp)
					for _, name := range c.checks {
						get(t, recs, name)
					}
					checkRecords(t, run.sees, recs)
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
	// typed is what the typed parameters of typed_params select;
	// scorePositive the rows whose score is at least 0, if the score is
	// visible.
	typed, scorePositive int
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
	// Parameters of several types select rows (typed_params.count) and
	// compare masked columns (typed_params.masked_predicate, which must
	// see only NULL in a masked column).
	e.typed = atoi("SELECT count(*) FROM responses WHERE country IN ('France', 'USA') AND nps >= 5" +
		" AND submitted_at >= '2025-07-01 00:00:00+00' AND " + scope)
	if user == "hq" {
		e.scorePositive = atoi("SELECT count(*) FROM responses WHERE score >= 0")
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
	eq("typed_params", "echoed", true)
	eq("typed_params", "count", e.typed)
	eq("typed_params", "masked_predicate", e.scorePositive)
	eq("copy_out", "rows", e.rows)
	eq("copy_out", "countries", e.countries)
	eq("copy_out", "emails", 0)
	eq("copy_in_usable_after", "value", 1)
	eq("executemany", "ok", true)
	eq("type_info", "count", true)
	eq("type_codec", "value", map[string]any{"countries": float64(len(e.countries))})
	eq("autocommit", "totals", []any{float64(e.rows)}) // JSON numbers
	// asyncpg: a savepoint's error, the transaction going on, a refusal
	// aborting it; psqlODBC: a division by zero and a refusal, each
	// rolled back by the driver, then the transaction going on.
	if r, ok := recs["tx_recovery"]; ok {
		if _, odbc := r["errors"]; odbc {
			eq("tx_recovery", "errors", []any{"22012", "42501"})
			eq("tx_recovery", "first", e.rows)
			eq("tx_recovery", "after", e.rows)
		} else {
			eq("tx_recovery", "savepoint_error", "22012")
			eq("tx_recovery", "count_after_savepoint", e.rows)
			eq("tx_recovery", "refused", "42501")
			eq("tx_recovery", "aborted", "25P02")
		}
		eq("tx_recovery", "value", 1)
	}
	if r, ok := recs["pool"]; ok {
		if counts, _ := r["counts"].([]any); !slices.Contains(counts, any(float64(e.rows))) {
			t.Errorf("pool.counts: %v, want %d among them", counts, e.rows)
		}
		if r["timezone"] == "Asia/Tokyo" {
			t.Errorf("pool.timezone: a connection's SET outlived its reset on release")
		}
	}
	for _, check := range []string{"refused", "copy_in_refused", "write_refused"} {
		r, ok := recs[check]
		if !ok {
			continue
		}
		if r["sqlstate"] != "42501" {
			t.Errorf("%s: SQLSTATE %v, want 42501 (%v)", check, r["sqlstate"], r["message"])
		}
		if msg, _ := r["message"].(string); check == "refused" && !strings.Contains(msg, "ungoverned_table") {
			t.Errorf("reading employees: the message does not name the firewall rule: %q", msg)
		}
	}
}
