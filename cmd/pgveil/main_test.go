package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/internal/scram"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &cluster)) }

func runCLI(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI("", "version")
	if code != 0 || !strings.HasPrefix(out, "pgveil ") {
		t.Fatalf("%d %q", code, out)
	}
}

func TestUnknownCommandPrintsUsage(t *testing.T) {
	code, _, errOut := runCLI("", "serv")
	if code != 2 || !strings.Contains(errOut, `unknown command "serv"`) || !strings.Contains(errOut, "Usage:") {
		t.Fatalf("%d %q", code, errOut)
	}
}

func TestPasswd(t *testing.T) {
	t.Run("a password on stdin becomes a PostgreSQL SCRAM verifier", func(t *testing.T) {
		code, out, errOut := runCLI("s3cret pass\n", "passwd")
		if code != 0 {
			t.Fatalf("%d %s", code, errOut)
		}
		v, err := scram.ParseVerifier(strings.TrimSpace(out))
		if err != nil || v.Iterations != 4096 {
			t.Fatalf("%q: %v", out, err)
		}
	})
	t.Run("the iteration count can be raised", func(t *testing.T) {
		_, out, _ := runCLI("pw", "passwd", "--iterations", "10000")
		if !strings.HasPrefix(out, "SCRAM-SHA-256$10000:") {
			t.Fatalf("%q", out)
		}
	})
	t.Run("an empty password is refused", func(t *testing.T) {
		code, _, errOut := runCLI("\n", "passwd")
		if code != 1 || !strings.Contains(errOut, "empty password") {
			t.Fatalf("%d %q", code, errOut)
		}
	})
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pgveil.hcl")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// minimalConfig is the smallest valid configuration, its upstream
// password in PGVEIL_TEST_PW.
const minimalConfig = `
listen { address = "127.0.0.1:6432" }
upstream {
  address  = "127.0.0.1:5432"
  database = "db"
  user     = "svc"
  password = env("PGVEIL_TEST_PW")
}
`

func TestCheck(t *testing.T) {
	t.Setenv("PGVEIL_TEST_PW", "x")
	t.Run("a valid configuration exits 0", func(t *testing.T) {
		path := writeConfig(t, minimalConfig)
		code, out, errOut := runCLI("", "check", "--config", path)
		if code != 0 || !strings.Contains(out, "configuration is valid") {
			t.Fatalf("%d %q %q", code, out, errOut)
		}
	})
	t.Run("a configuration with no users or no table blocks is valid with warnings", func(t *testing.T) {
		for _, c := range []struct {
			name, body string
			want       []string
			wantNot    []string
		}{
			{name: "neither", body: minimalConfig,
				want: []string{"warning: no users: pgveil will accept no one", "warning: no table blocks: every table is denied to every user"}},
			{name: "no table blocks, a schema allowed", body: minimalConfig + `schema "public" { default = "allow" }` + "\n",
				want: []string{"warning: no table blocks: no column is masked"}},
			{name: "users from identity queries and a table block", body: minimalConfig + `
identity "staff" { query = "SELECT login, roles FROM staff" }
table "public.t" {}
`,
				wantNot: []string{"no users", "no table blocks"}},
		} {
			path := writeConfig(t, c.body)
			code, out, errOut := runCLI("", "check", "--config", path)
			if code != 0 || !strings.Contains(out, "configuration is valid") {
				t.Fatalf("%s: %d %q %q", c.name, code, out, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("%s: stderr lacks %q: %q", c.name, w, errOut)
				}
			}
			for _, w := range c.wantNot {
				if strings.Contains(errOut, w) {
					t.Errorf("%s: stderr holds %q: %q", c.name, w, errOut)
				}
			}
		}
	})
	t.Run("a typo exits 1 with file:line:col and a suggestion", func(t *testing.T) {
		path := writeConfig(t, "listen {\n  adress = \"127.0.0.1:6432\"\n}\n")
		code, _, errOut := runCLI("", "check", "--config", path)
		if code != 1 || !strings.Contains(errOut, path+":2:3: error: Unsupported argument") || !strings.Contains(errOut, `Did you mean "address"?`) {
			t.Fatalf("%d %q", code, errOut)
		}
	})
	t.Run("an audit file pgveil serve could not write is a warning", func(t *testing.T) {
		for _, c := range []struct{ file, want string }{
			{filepath.Join(t.TempDir(), "missing", "audit.log"), "pgveil serve will not start until it does"},
			{filepath.Join(t.TempDir(), "audit.log"), ""},
		} {
			path := writeConfig(t, minimalConfig+fmt.Sprintf(`
audit {
  file     = %q
  hmac_key = env("PGVEIL_TEST_PW")
}
`, c.file))
			code, _, errOut := runCLI("", "check", "--config", path)
			if code != 0 || c.want == "" && strings.Contains(errOut, "audit") || c.want != "" && !strings.Contains(errOut, c.want) {
				t.Fatalf("%s: %d %q", c.file, code, errOut)
			}
		}
	})
	t.Run("a plain secret is a warning, not an error", func(t *testing.T) {
		path := writeConfig(t, `
listen { address = "127.0.0.1:6432" }
upstream {
  address  = "127.0.0.1:5432"
  database = "db"
  user     = "svc"
  password = "plain"
}
`)
		code, out, errOut := runCLI("", "check", "--config", path)
		if code != 0 || !strings.Contains(errOut, "warning:") {
			t.Fatalf("%d %q", code, errOut)
		}
		// NOTE: the last line counts the warnings printed above it, as
		// the --upstream summary does.
		if !strings.Contains(out, "0 users, 1 warning\n") {
			t.Errorf("the summary does not count the warning: %q", out)
		}
	})
	t.Run("a stray argument is refused rather than ignored, with the usage", func(t *testing.T) {
		path := writeConfig(t, minimalConfig)
		code, out, errOut := runCLI("", "check", "--config", path, "other.hcl")
		if code != 2 || out != "" || !strings.Contains(errOut, `unexpected argument "other.hcl"`) || !strings.Contains(errOut, "usage: pgveil check --config FILE [--upstream]") {
			t.Errorf("%d %q %q", code, out, errOut)
		}
	})
	t.Run("a configuration with identity blocks says its users are read upstream", func(t *testing.T) {
		path := writeConfig(t, minimalConfig+`
identity "staff" {
  query = "SELECT login FROM public.staff"
}
`)
		code, out, errOut := runCLI("", "check", "--config", path)
		if code != 0 || !strings.HasSuffix(out, " 0 user blocks, and those of 1 identity block (read with --upstream)\n") {
			t.Errorf("%d %q %q", code, out, errOut)
		}
	})
	t.Run("a configuration without warnings does not count them", func(t *testing.T) {
		path := writeConfig(t, minimalConfig)
		if _, out, _ := runCLI("", "check", "--config", path); !strings.HasSuffix(out, " 0 users\n") {
			t.Errorf("the summary mentions warnings: %q", out)
		}
	})
}

// TestServe runs the real binary: it serves a client, then shuts down
// gracefully on SIGTERM, letting the running statement finish.
func TestServe(t *testing.T) {
	pgtest.Require(t, cluster)
	ctx := context.Background()
	bin := filepath.Join(t.TempDir(), "pgveil")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := aln.Addr().String()
	aln.Close()
	v, _ := scram.NewVerifier("pw", 4096)
	su, supw := cluster.SuperUser()
	path := writeConfig(t, fmt.Sprintf(`
listen {
  address  = %q
  database = "postgres"
}
upstream {
  address  = %q
  database = "postgres"
  user     = %q
  password = env("PGVEIL_TEST_UPSTREAM_PW")
}
role "reader" {
  statements = ["select"]
}
user "carol" {
  password = %q
  roles    = ["reader"]
}
audit {
  file     = "audit.log"
  hmac_key = env("PGVEIL_TEST_AUDIT_KEY")
}
admin {
  address = %q
}
`, addr, cluster.Addr(), su, v.String(), adminAddr))
	auditLog := filepath.Join(filepath.Dir(path), "audit.log")

	cmd := exec.Command(bin, "serve", "--config", path)
	cmd.Env = append(os.Environ(), "PGVEIL_TEST_UPSTREAM_PW="+supw, "PGVEIL_TEST_AUDIT_KEY=serve-test-key")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	// NOTE: pgveil logs "listening" once its listener is bound, after the
	// admin endpoint and the signal handlers are in place.
	if !stderr.waitFor(`"msg":"listening"`, 20*time.Second) {
		t.Fatalf("pgveil did not come up:\n%s", stderr.String())
	}
	conn, err := pgconn.Connect(ctx, "postgres://carol:pw@"+addr+"/postgres?sslmode=disable")
	if err != nil {
		t.Fatalf("connecting through pgveil: %v\n%s", err, stderr.String())
	}
	t.Run("the admin endpoint serves metrics and health", func(t *testing.T) {
		for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
			resp, err := http.Get("http://" + adminAddr + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: %s %s", path, resp.Status, body)
			}
			if path == "/metrics" && !strings.Contains(string(body), "pgveil_sessions 1") {
				t.Errorf("/metrics lacks the open session:\n%s", body)
			}
		}
	})
	t.Run("SIGHUP reloads the policies", func(t *testing.T) {
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if !stderr.waitFor("policies reloaded", 10*time.Second) {
			t.Fatalf("no reload in the log:\n%s", stderr.String())
		}
	})
	result := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "SELECT pg_sleep(1), 'serve-running'").ReadAll()
		result <- err
	}()
	waitSleeping(t, ctx)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	t.Run("the running statement finishes after SIGTERM", func(t *testing.T) {
		if err := <-result; err != nil {
			t.Fatalf("statement failed: %v", err)
		}
	})
	t.Run("pgveil exits 0", func(t *testing.T) {
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("exit: %v\n%s", err, stderr.String())
			}
		case <-time.After(15 * time.Second):
			t.Fatal("pgveil did not exit")
		}
	})
	t.Run("the log is JSON lines", func(t *testing.T) {
		var msgs []string
		for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("not JSON: %q", line)
			}
			msgs = append(msgs, fmt.Sprint(rec["msg"]))
		}
		joined := strings.Join(msgs, "|")
		for _, want := range []string{"listening", "session started", "shutting down", "stopped"} {
			if !strings.Contains(joined, want) {
				t.Errorf("log lacks %q: %v", want, msgs)
			}
		}
	})
	t.Run("what check warns about is logged at start and at each reload", func(t *testing.T) {
		// NOTE: this configuration's service account is the cluster's
		// superuser and it has no table blocks.
		for _, want := range []string{"Service account is a superuser", "no table blocks"} {
			if n := strings.Count(stderr.String(), want); n != 2 {
				t.Errorf("%q logged %d times, want 2 (start, reload):\n%s", want, n, stderr.String())
			}
		}
	})
	t.Run("the audit trail holds the session, the reload and the stop, and verifies", func(t *testing.T) {
		t.Setenv("PGVEIL_AUDIT_KEY", "serve-test-key")
		if code, out, errOut := runCLI("", "audit", "verify", auditLog); code != 0 {
			t.Fatalf("audit verify: %d %s %s", code, out, errOut)
		}
		code, out, errOut := runCLI("", "audit", "search", "--format", "json", auditLog)
		if code != 0 {
			t.Fatalf("audit search: %d %s", code, errOut)
		}
		var events []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("not JSON: %q", line)
			}
			events = append(events, fmt.Sprint(rec["event"]))
		}
		got := strings.Join(events, " ")
		if !strings.HasPrefix(got, "start connect reload statement") || !strings.HasSuffix(got, "stop") {
			t.Errorf("events: %s", got)
		}
	})
}

// waitSleeping waits until carol's statement sleeps upstream, as
// pg_stat_activity of the cluster shows: SIGTERM then arrives while it
// runs.
func waitSleeping(t *testing.T, ctx context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := cluster.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		res := conn.ExecParams(ctx, `SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity
			WHERE application_name LIKE 'pgveil:carol:%' AND wait_event = 'PgSleep'`, nil, nil, nil, nil).Read()
		if res.Err != nil {
			t.Fatalf("reading pg_stat_activity: %v", res.Err)
		}
		if string(res.Rows[0][0]) != "0" {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("the statement does not run upstream")
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once,
// which a reader can wait on.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	// grew, when not nil, is closed at the next Write: waitFor waits on it.
	grew chan struct{}
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grew != nil {
		close(s.grew)
		s.grew = nil
	}
	return s.b.Write(p)
}

// waitFor waits until the buffer holds sub, woken by each write, or
// timeout passes: it reports whether it holds sub.
func (s *syncBuffer) waitFor(sub string, timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if strings.Contains(s.b.String(), sub) {
			s.mu.Unlock()
			return true
		}
		if s.grew == nil {
			s.grew = make(chan struct{})
		}
		grew := s.grew
		s.mu.Unlock()
		select {
		case <-grew:
		case <-timer.C:
			return false
		}
	}
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestExplain(t *testing.T) {
	pgtest.Require(t, cluster)
	ctx := context.Background()
	if err := cluster.Exec(ctx, "postgres", "DROP TABLE IF EXISTS notes, tags, labels; CREATE TABLE notes (id int, owner text, secret text); CREATE TABLE tags (id int, owner text); CREATE TABLE labels (id int); DROP TABLE IF EXISTS team_notes; CREATE TABLE team_notes (id int, team_id int); DROP TABLE IF EXISTS label_notes, team_note_tags, note_tags; CREATE TABLE label_notes (label_id int); CREATE TABLE team_note_tags (note_id int); CREATE TABLE note_tags (note_id int)"); err != nil {
		t.Fatal(err)
	}
	v, _ := scram.NewVerifier("pw", 4096)
	su, supw := cluster.SuperUser()
	t.Setenv("PGVEIL_TEST_UPSTREAM_PW", supw)
	path := writeConfig(t, fmt.Sprintf(`
listen {
  address  = "127.0.0.1:6432"
  database = "postgres"
}
upstream {
  address  = %q
  database = "postgres"
  user     = %q
  password = env("PGVEIL_TEST_UPSTREAM_PW")
}
role "reader" {
  statements = ["select"]
}
table "public.notes" {
  owner_column = "owner"
  column "secret" { class = "pii" }
}
table "public.tags" {
  owner_column = "owner"
}
table "public.labels" {}
table "public.team_notes" {
  team_column = "team_id"
}
table "public.label_notes" {
  follows = { table = "public.labels", column = "label_id", key = "id" }
}
table "public.team_note_tags" {
  follows = { table = "public.team_notes", column = "note_id", key = "id" }
}
table "public.note_tags" {
  follows = { table = "public.notes", column = "note_id", key = "id" }
}
rule "team_notes" {
  tables = ["public.team_notes"]
  roles  = ["reader"]
  scope  = "own_team"
}
rule "own_notes" {
  tables = ["public.notes", "public.tags"]
  roles  = ["reader"]
  scope  = "self"
}
user "dana" {
  password = %q
  roles    = ["reader"]
}
user "bi" {
  password = %q
  roles    = ["reader"]
  act_for  = ["dana"]
}
`, cluster.Addr(), su, v.String(), v.String()))

	t.Run("a governed statement shows its rewrite, rules and masks", func(t *testing.T) {
		code, out, errOut := runCLI("", "explain", "--config", path, "--user", "dana", "SELECT * FROM notes")
		for _, want := range []string{"rules applied: own_notes", "masked columns: public.notes.secret", "NULL::text AS secret", "owner OPERATOR(pg_catalog.=) 'dana'"} {
			if code != 0 || !strings.Contains(out, want) {
				t.Fatalf("%d, missing %q in:\n%s%s", code, want, out, errOut)
			}
		}
	})
	t.Run("a table no rule grants the user rows of is named", func(t *testing.T) {
		code, out, errOut := runCLI("", "explain", "--config", path, "--user", "dana", "SELECT n.id FROM notes n JOIN labels l ON l.id = n.id")
		if want := "no row of: public.labels (no rule grants dana rows of them"; code != 0 || !strings.Contains(out, want) {
			t.Fatalf("%d, missing %q in:\n%s%s", code, want, out, errOut)
		}
		code, out, errOut = runCLI("", "explain", "--config", path, "--user", "dana", "SELECT id FROM notes")
		if code != 0 || strings.Contains(out, "no row of") {
			t.Fatalf("%d, a table a rule grants is not named:\n%s%s", code, out, errOut)
		}
	})
	t.Run("a table a rule grants but the user's missing attribute empties is not said to have no rule", func(t *testing.T) {
		code, out, errOut := runCLI("", "explain", "--config", path, "--user", "dana", "SELECT id FROM team_notes")
		if code != 0 || !strings.Contains(out, "no row of: public.team_notes") {
			t.Fatalf("%d, the table is not named:\n%s%s", code, out, errOut)
		}
		if strings.Contains(out, "no rule grants") {
			t.Fatalf("rule team_notes grants dana rows, but explain says no rule does:\n%s", out)
		}
		for _, want := range []string{"rule team_notes applies, but grants dana no row", "an attribute dana lacks"} {
			if !strings.Contains(out, want) {
				t.Fatalf("missing %q in:\n%s", want, out)
			}
		}
	})
	t.Run("a follower of a parent the user reads no row of is named, through its parent", func(t *testing.T) {
		for _, c := range []struct{ sql, want string }{
			{"SELECT count(*) FROM label_notes", "no row of: public.label_notes through public.labels (no rule grants dana rows of them"},
			{"SELECT count(*) FROM team_note_tags", "no row of: public.team_note_tags through public.team_notes (rule team_notes applies, but grants dana no row"},
		} {
			code, out, errOut := runCLI("", "explain", "--config", path, "--user", "dana", c.sql)
			if code != 0 || !strings.Contains(out, c.want) {
				t.Fatalf("%d, missing %q in:\n%s%s", code, c.want, out, errOut)
			}
		}
		code, out, errOut := runCLI("", "explain", "--config", path, "--user", "dana", "SELECT count(*) FROM note_tags")
		if code != 0 || strings.Contains(out, "no row of") || !strings.Contains(out, "follows.public.notes") {
			t.Fatalf("%d, a follower of a parent the user reads is not named:\n%s%s", code, out, errOut)
		}
	})
	t.Run("a statement of a shape seen before shows the form its template gives", func(t *testing.T) {
		code, out, errOut := runCLI("", "explain", "--config", path, "--user", "dana", "SELECT id FROM tags WHERE id = 5")
		for _, want := range []string{
			"rewritten SQL:\n  SELECT id FROM (SELECT",
			"rewritten SQL, once a statement of this shape was seen before (reads directly):\n  SELECT id FROM public.tags tags WHERE tags.owner OPERATOR(pg_catalog.=) 'dana' AND tags.id OPERATOR(pg_catalog.=) 5\n",
		} {
			if code != 0 || !strings.Contains(out, want) {
				t.Fatalf("%d, missing %q in:\n%s%s", code, want, out, errOut)
			}
		}
		code, out, errOut = runCLI("", "explain", "--config", path, "--user", "dana", "SELECT * FROM notes WHERE id = 5")
		if code != 0 || strings.Contains(out, "seen before") {
			t.Fatalf("%d, a masked table is never read directly:\n%s%s", code, out, errOut)
		}
	})
	t.Run("a login without access says so once", func(t *testing.T) {
		code, out, errOut := runCLI("", "explain", "--config", path, "--user", "nobody", "SELECT 1")
		if code != 1 || !strings.HasPrefix(out, `user nobody: no access: login "nobody"`) || strings.Count(out, "no access") != 1 {
			t.Fatalf("%d %q %q", code, out, errOut)
		}
	})
	t.Run("a misspelt login is answered with the login meant", func(t *testing.T) {
		code, out, errOut := runCLI("", "explain", "--config", path, "--user", "dann", "SELECT 1")
		if code != 1 || !strings.HasPrefix(out, `user dann: no access: login "dann"`) || !strings.HasSuffix(out, ` (did you mean "dana"?)`+"\n") {
			t.Fatalf("%d %q %q", code, out, errOut)
		}
	})
	t.Run("a statement copied from the trail shows its control characters as escapes", func(t *testing.T) {
		// NOTE: the operator explains what a governed user sent: its
		// comments and literals must not act on the operator's terminal.
		for _, tt := range []struct {
			sql   string
			shown bool
		}{
			{"SELECT 1 /* \x1b[2J\u009b1;1H\u202e */", true},
			{"SELECT id FROM tags WHERE id = 5 AND '\x1b]52;c;Y3VybA==\x07\u2066' <> ''", true},
			{"SELECT * FROM notes WHERE secret = '\x1b[2J\u202e'", true},
			{"DROP TABLE notes /* \x1b[2J\u202e */", false},
			{"SELECT 'unterminated \x1b[2J\u202e", false},
		} {
			code, out, errOut := runCLI("", "explain", "--config", path, "--user", "dana", tt.sql)
			if code != 0 || strings.ContainsAny(out, "\x1b\x07\u009b\u202e\u2066") || tt.shown != strings.Contains(out, `\u001b`) {
				t.Errorf("%q: %d %q %q", tt.sql, code, out, errOut)
			}
		}
	})
	t.Run("a refused statement names the firewall rule", func(t *testing.T) {
		code, out, _ := runCLI("", "explain", "--config", path, "--user", "dana", "DROP TABLE notes")
		if code != 0 || !strings.Contains(out, "REFUSED 42501 by firewall rule statement_kind") {
			t.Fatalf("%d %s", code, out)
		}
	})
	// NOTE: the rewriter accepts any SET ROLE, the proxy checks act_for:
	// explain showed as forwarded a switch serve refuses.
	t.Run("a switch serve refuses is refused by act_for", func(t *testing.T) {
		for _, c := range []struct{ user, sql, why string }{
			{"dana", "SET ROLE bi", "dana is not a BI service"},
			{"dana", "RESET ROLE", "dana is not a BI service"},
			{"bi", "SET ROLE postgres", `bi may not act for "postgres"`},
			{"bi", "SET pgveil.act_for = 'nobody'", `bi may not act for "nobody"`},
		} {
			code, out, _ := runCLI("", "explain", "--config", path, "--user", c.user, c.sql)
			if code != 0 || !strings.Contains(out, "REFUSED 42501 by firewall rule act_for") || !strings.Contains(out, c.why) {
				t.Errorf("%s %q: %d %s", c.user, c.sql, code, out)
			}
		}
		for _, sql := range []string{"SET ROLE dana", "RESET ROLE", "SET ROLE bi"} {
			code, out, _ := runCLI("", "explain", "--config", path, "--user", "bi", sql)
			if code != 0 || strings.Contains(out, "REFUSED") || !strings.Contains(out, "pgveil.act_for") {
				t.Errorf("bi %q: %d %s", sql, code, out)
			}
		}
	})
}
