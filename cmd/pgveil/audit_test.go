package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/internal/audit"
)

// auditKey is the key of the test chains.
const auditKey = "test-audit-key-0123456789abcdef"

// writeAuditChain writes 30 records through the audit log, one every 12
// hours up to now (seq 30 is now, seq 1 is 14½ days old), rotating every
// few records, and returns the files oldest first. Records 0, 3, 6… let marie read email unmasked;
// the others mask it for paul.
func writeAuditChain(t *testing.T) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(audit.Options{File: path, Key: []byte(auditKey), MaxSize: 2000})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 30 {
		r := &audit.Record{
			Time:     now.Add(-time.Duration(29-i) * 12 * time.Hour),
			Event:    audit.EventStatement,
			Session:  fmt.Sprintf("s%d", i%4),
			User:     "paul",
			Kind:     "select",
			SQL:      fmt.Sprintf("SELECT email\n  FROM responses WHERE id = %d", i),
			Tables:   []string{"public.responses"},
			Masked:   []string{"public.responses.email"},
			Rules:    []string{"france_only"},
			Decision: audit.DecisionRewritten,
			Rows:     int64(i),
		}
		if i%3 == 0 {
			r.User, r.Masked, r.Columns = "marie", nil, []string{"public.responses.email"}
		}
		l.Write(r)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rotated, _ := filepath.Glob(path + ".*")
	slices.Sort(rotated)
	files := append(rotated, path)
	if len(files) < 4 {
		t.Fatalf("%d files: the tests need at least 4", len(files))
	}
	return files
}

// writeDeniedChain writes an audit file of a rewritten statement, then
// one the firewall rule ungoverned_table denied, and returns its path.
func writeDeniedChain(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(audit.Options{File: path, Key: []byte(auditKey)})
	if err != nil {
		t.Fatal(err)
	}
	l.Write(&audit.Record{Event: audit.EventStatement, User: "paul", Kind: "select", SQL: "SELECT 1",
		Rules: []string{"france_only"}, Decision: audit.DecisionRewritten, Rows: 1})
	l.Write(&audit.Record{Event: audit.EventStatement, User: "paul", SQL: "SELECT * FROM salaries",
		Tables: []string{"public.salaries"}, Decision: audit.DecisionDenied, Reason: "ungoverned_table", SQLState: "42501",
		Message: "table public.salaries is not governed by any table block and schema public denies ungoverned tables"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAuditVerify(t *testing.T) {
	t.Setenv("PGVEIL_AUDIT_KEY", auditKey)
	t.Run("the chains of two instances are checked together, a line each", func(t *testing.T) {
		a, b := writeAuditChain(t), writeAuditChain(t)
		code, out, errOut := runCLI("", append(append([]string{"audit", "verify"}, b...), a...)...)
		// NOTE: each chain's OK line is followed by the note that it
		// ends without a stop record.
		lines := slices.DeleteFunc(strings.Split(strings.TrimSpace(out), "\n"), func(l string) bool { return strings.Contains(l, ": note: ") })
		if code != 0 || len(lines) != 2 || errOut != "" {
			t.Fatalf("%d %q %q", code, out, errOut)
		}
		for _, l := range lines {
			if !strings.HasPrefix(l, "chain ") || !strings.Contains(l, ": OK: 30 records in ") {
				t.Errorf("line %q", l)
			}
		}
		ls, err := os.ReadFile(b[1])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(b[1], []byte(strings.Replace(string(ls), "SELECT email", "SELECT emall", 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, _ = runCLI("", append(append([]string{"audit", "verify"}, a...), b...)...)
		if code != 1 || strings.Count(out, ": OK: 30 records") != 1 || !strings.Contains(out, ": FAILED: "+b[1]+":1: record altered") {
			t.Fatalf("after damage to one chain: %d %q", code, out)
		}
	})
	t.Run("an intact chain is OK, whatever the order of the files", func(t *testing.T) {
		files := writeAuditChain(t)
		slices.Reverse(files)
		code, out, errOut := runCLI("", append([]string{"audit", "verify"}, files...)...)
		want := fmt.Sprintf("OK: 30 records in %d files, seq 1..30, ", len(files))
		if code != 0 || !strings.HasPrefix(out, want) || errOut != "" {
			t.Fatalf("%d %q %q", code, out, errOut)
		}
	})
	t.Run("a changed line fails with its file and line", func(t *testing.T) {
		files := writeAuditChain(t)
		data, err := os.ReadFile(files[1])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(files[1], []byte(strings.Replace(string(data), `"user":"paul"`, `"user":"pau1"`, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, _ := runCLI("", append([]string{"audit", "verify"}, files...)...)
		if code != 1 || !strings.HasPrefix(out, "FAILED: "+files[1]+":") || !strings.Contains(out, "record altered (mac mismatch)") {
			t.Fatalf("%d %q", code, out)
		}
	})
	t.Run("a deleted rotated file fails", func(t *testing.T) {
		files := writeAuditChain(t)
		if err := os.Remove(files[1]); err != nil {
			t.Fatal(err)
		}
		code, out, _ := runCLI("", append([]string{"audit", "verify"}, slices.Delete(files, 1, 2)...)...)
		if code != 1 || !strings.Contains(out, "file truncated or missing: chain breaks between "+files[0]) {
			t.Fatalf("%d %q", code, out)
		}
	})
	t.Run("the key comes from the variable --key-env names", func(t *testing.T) {
		files := writeAuditChain(t)
		t.Setenv("OTHER_KEY", auditKey)
		t.Setenv("PGVEIL_AUDIT_KEY", "wrong")
		if code, out, _ := runCLI("", append([]string{"audit", "verify", "--key-env", "OTHER_KEY"}, files...)...); code != 0 {
			t.Fatalf("%d %q", code, out)
		}
		if code, out, _ := runCLI("", append([]string{"audit", "verify"}, files...)...); code != 1 || !strings.Contains(out, ":1: record altered") {
			t.Fatalf("%d %q", code, out)
		}
	})
	t.Run("without a key it fails, a rewritten trail would verify", func(t *testing.T) {
		files := writeAuditChain(t)
		t.Setenv("PGVEIL_AUDIT_KEY", "")
		code, out, errOut := runCLI("", append([]string{"audit", "verify"}, files...)...)
		if code != 1 || out != "" || !strings.Contains(errOut, "PGVEIL_AUDIT_KEY is not set: without the key a rewritten trail would verify") {
			t.Fatalf("%d %q %q", code, out, errOut)
		}
		// --unkeyed checks a plain chain, and says what it proves: the
		// keyed one fails it.
		code, out, errOut = runCLI("", append([]string{"audit", "verify", "--unkeyed"}, files...)...)
		if code != 1 || !strings.Contains(errOut, "verifying a plain SHA-256 chain") || !strings.Contains(out, "record altered") {
			t.Fatalf("--unkeyed: %d %q %q", code, out, errOut)
		}
	})
	t.Run("--from-start fails a chain whose oldest files are gone", func(t *testing.T) {
		files := writeAuditChain(t)
		if code, out, _ := runCLI("", append([]string{"audit", "verify", "--from-start"}, files...)...); code != 0 {
			t.Fatalf("whole chain: %d %q", code, out)
		}
		code, out, _ := runCLI("", append([]string{"audit", "verify", "--from-start"}, files[1:]...)...)
		if code != 1 || !strings.HasPrefix(out, "FAILED: --from-start: the chain begins at seq ") || strings.Contains(out, "OK:") {
			t.Fatalf("%d %q", code, out)
		}
		if code, out, _ := runCLI("", append([]string{"audit", "verify"}, files[1:]...)...); code != 0 {
			t.Fatalf("without --from-start: %d %q", code, out)
		}
	})
	t.Run("every problem is printed on a FAILED line of its own", func(t *testing.T) {
		files := writeAuditChain(t)
		for _, f := range []string{files[1], files[2]} {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f, []byte(strings.Replace(string(data), `"user":"paul"`, `"user":"pau1"`, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		code, out, _ := runCLI("", append([]string{"audit", "verify"}, files...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 1 || len(lines) != 3 || !strings.HasPrefix(lines[0], "FAILED: "+files[1]+":") ||
			!strings.HasPrefix(lines[1], "FAILED: "+files[2]+":") || !strings.Contains(lines[2], "records verified around the problems, seq 1..30") {
			t.Fatalf("%d %q", code, out)
		}
	})
	t.Run("an emptied trail fails --from-start", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, _ := runCLI("", "audit", "verify", "--from-start", path)
		if code != 1 || out != "FAILED: --from-start: no record in 1 files: the trail is empty\n" {
			t.Fatalf("%d %q", code, out)
		}
		if code, out, _ := runCLI("", "audit", "verify", path); code != 0 || out != "OK: 0 records in 1 files\n" {
			t.Fatalf("without --from-start: %d %q", code, out)
		}
	})
	t.Run("--key-env repeated verifies across a key change and says where", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		for _, key := range []string{auditKey, "the-new-key-0123456789abcdef"} {
			l, err := audit.Open(audit.Options{File: path, Key: []byte(key)})
			if err != nil {
				t.Fatal(err)
			}
			l.Write(&audit.Record{Event: audit.EventStart})
			l.Write(&audit.Record{Event: audit.EventStop})
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}
		t.Setenv("PGVEIL_AUDIT_KEY", "the-new-key-0123456789abcdef")
		t.Setenv("OLD_KEY", auditKey)
		code, out, _ := runCLI("", "audit", "verify", "--key-env", "PGVEIL_AUDIT_KEY", "--key-env", "OLD_KEY", path)
		want := "note: " + path + ":1: key 2 from here (seq 1 on)\nnote: " + path + ":3: key 1 from here (seq 3 on)\n"
		if code != 0 || !strings.HasPrefix(out, "OK: 4 records in 1 files, seq 1..4, ") || !strings.HasSuffix(out, want) {
			t.Fatalf("%d %q", code, out)
		}
		code, out, _ = runCLI("", "audit", "verify", path)
		if code != 1 || !strings.Contains(out, "FAILED: "+path+":1: record altered (mac mismatch): no record verified before it: the key may be wrong") {
			t.Fatalf("with the new key only: %d %q", code, out)
		}
		code, _, errOut := runCLI("", "audit", "verify", "--key-env", "PGVEIL_AUDIT_KEY", "--key-env", "UNSET_KEY", path)
		if code != 1 || !strings.Contains(errOut, "UNSET_KEY is not set") {
			t.Fatalf("an unset variable: %d %q", code, errOut)
		}
	})
	t.Run("a start without a stop before it is a note, not a failure", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		for _, stop := range []bool{false, true} {
			l, err := audit.Open(audit.Options{File: path, Key: []byte(auditKey)})
			if err != nil {
				t.Fatal(err)
			}
			l.Write(&audit.Record{Event: audit.EventStart})
			if stop {
				l.Write(&audit.Record{Event: audit.EventStop})
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}
		code, out, _ := runCLI("", "audit", "verify", "--from-start", path)
		if code != 0 || !strings.HasPrefix(out, "OK: 3 records") ||
			!strings.Contains(out, "\nnote: "+path+":2: pgveil started again (seq 2) without a stop record after the run seen from "+path+":1: ") {
			t.Fatalf("%d %q", code, out)
		}
	})
	t.Run("no file is a usage error and a missing file an error", func(t *testing.T) {
		if code, _, errOut := runCLI("", "audit", "verify"); code != 2 || !strings.Contains(errOut, "usage: pgveil audit verify") {
			t.Fatalf("%d %q", code, errOut)
		}
		if code, _, errOut := runCLI("", "audit", "verify", "/nonexistent/audit.log"); code != 1 || !strings.Contains(errOut, "no such file") {
			t.Fatalf("%d %q", code, errOut)
		}
		if code, _, errOut := runCLI("", "audit", "check"); code != 2 || !strings.Contains(errOut, `unknown command "check"`) {
			t.Fatalf("%d %q", code, errOut)
		}
	})
}

func TestAuditSearch(t *testing.T) {
	files := writeAuditChain(t)
	shuffled := slices.Clone(files)
	slices.Reverse(shuffled)
	// search runs pgveil audit search with args and the files, and returns
	// the seqs of the records printed as JSON.
	search := func(t *testing.T, args ...string) (int, []uint64) {
		t.Helper()
		args = append(append([]string{"audit", "search", "--format", "json"}, args...), shuffled...)
		code, out, errOut := runCLI("", args...)
		if errOut != "" {
			t.Fatalf("stderr %q", errOut)
		}
		var seqs []uint64
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line == "" {
				continue
			}
			var rec struct{ Seq uint64 }
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("%v: %s", err, line)
			}
			seqs = append(seqs, rec.Seq)
		}
		return code, seqs
	}
	tests := []struct {
		name string
		args []string
		want []uint64
	}{
		{"every record comes out, in chain order", nil, seqRange(1, 30, 1)},
		{"a policy rule matches the statements it rewrote", []string{"--rule", "france_only", "--since", "20h"}, []uint64{29, 30}},
		{"a column read unmasked", []string{"--column", "public.responses.email"}, seqRange(1, 30, 3)},
		{"a masked column", []string{"--masked-column", "public.responses.email", "--session", "s1"}, []uint64{2, 6, 14, 18, 26, 30}},
		{"a user", []string{"--user", "marie"}, seqRange(1, 30, 3)},
		{"the email returned unmasked last week", []string{"--column", "public.responses.email", "--since", "7d"}, []uint64{19, 22, 25, 28}},
		{"a window of hours", []string{"--since", "36h", "--until", "12h"}, []uint64{28, 29}},
		{"filters are ANDed", []string{"--user", "marie", "--decision", "rewritten", "--table", "public.responses", "--rule", "france_only", "--event", "statement", "--since", "2d"}, []uint64{28}},
		{"nothing matches", []string{"--user", "nobody"}, nil},
		{"a table without its schema matches it in any schema", []string{"--table", "responses"}, seqRange(1, 30, 1)},
		{"a column without its schema and table matches it in any table", []string{"--column", "email"}, seqRange(1, 30, 3)},
		{"a column without its schema matches it in any schema", []string{"--masked-column", "responses.email", "--session", "s1"}, []uint64{2, 6, 14, 18, 26, 30}},
		{"a name only ending like the table's does not match", []string{"--table", "sponses"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, got := search(t, tt.args...)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("seqs %v, want %v", got, tt.want)
			}
			if wantCode := map[bool]int{true: 0, false: 1}[len(tt.want) > 0]; code != wantCode {
				t.Fatalf("exit %d, want %d", code, wantCode)
			}
		})
	}
	t.Run("the table format shows time, user, decision, rows, kind and shortened SQL", func(t *testing.T) {
		code, out, errOut := runCLI("", append([]string{"audit", "search", "--user", "marie", "--since", "25h"}, files...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "TIME") {
			t.Fatalf("%d %q %q", code, out, errOut)
		}
		if fields := strings.Fields(lines[1]); len(fields) < 5 || fields[1] != "marie" || fields[2] != "rewritten" || fields[3] != "27" ||
			fields[4] != "select" || !strings.HasSuffix(lines[1], "SELECT email FROM responses WHERE id = 27") {
			t.Fatalf("row %q", lines[1])
		}
	})
	t.Run("the table format says why a statement was denied", func(t *testing.T) {
		code, out, errOut := runCLI("", "audit", "search", "--decision", "denied", writeDeniedChain(t))
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || len(lines) != 2 || !strings.HasSuffix(lines[0], "SQL"+strings.Repeat(" ", 79)+"WHY DENIED / ERROR") {
			t.Fatalf("%d %q %q", code, out, errOut)
		}
		sql := strings.Index(lines[1], "SELECT * FROM salaries")
		why := strings.Index(lines[1], "ungoverned_table (42501): table public.salaries is not governed")
		if sql != strings.Index(lines[0], "SQL") || why != strings.Index(lines[0], "WHY DENIED") {
			t.Fatalf("columns not aligned:\n%s\n%s", lines[0], lines[1])
		}
	})
	t.Run("--rule matches the firewall rule that denied a statement too", func(t *testing.T) {
		code, out, errOut := runCLI("", "audit", "search", "--rule", "ungoverned_table", writeDeniedChain(t))
		if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 2 || !strings.Contains(lines[1], "SELECT * FROM salaries") {
			t.Fatalf("%d %q %q", code, out, errOut)
		}
	})
	t.Run("dates are whole UTC days", func(t *testing.T) {
		day := time.Now().UTC().Format(time.DateOnly)
		_, got := search(t, "--since", day, "--until", day)
		for _, seq := range got {
			if seq < 28 {
				t.Fatalf("seq %d is not from today", seq)
			}
		}
		if len(got) == 0 {
			t.Fatal("nothing from today")
		}
	})
	t.Run("bad arguments are usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"audit", "search", "--since", "last week", files[0]},
			{"audit", "search", "--until", "-3d", files[0]},
			{"audit", "search", "--format", "xml", files[0]},
			{"audit", "search", "--user", "marie"},
			{"audit", "search", "--table", "public.", files[0]},
		} {
			if code, _, _ := runCLI("", args...); code != 2 {
				t.Errorf("%q: exit %d", args, code)
			}
		}
	})
	t.Run("an invalid decision is an error naming the valid ones", func(t *testing.T) {
		code, out, errOut := runCLI("", "audit", "search", "--decision", "deny", files[0])
		if code != 2 || out != "" || errOut != "pgveil audit search: --decision \"deny\": want one of allowed, rewritten, denied\n" {
			t.Fatalf("%d %q %q", code, out, errOut)
		}
	})
	t.Run("unreadable lines are skipped with a warning", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "audit.log")
		data, err := os.ReadFile(files[len(files)-1])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append([]byte("garbage\n"), data...), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errOut := runCLI("", "audit", "search", path)
		if code != 0 || !strings.Contains(errOut, path+":1: skipped: ") || !strings.Contains(errOut, "run pgveil audit verify") {
			t.Fatalf("%d %q", code, errOut)
		}
	})
}

// TestPrintable: what clients put in records reaches the auditor's
// terminal as text, never as a control sequence.
func TestPrintable(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"marie", "marie"},
		{"SELECT 'é' -- ok", "SELECT 'é' -- ok"},
		{"mallory\n2026-12-06T08:00:00Z  marie", `mallory\u000a2026-12-06T08:00:00Z  marie`},
		{"x\x1b[2K\x1b[1Gy", `x\u001b[2K\u001b[1Gy`},
		{"a\u202eb", `a\u202eb`},
		{"bad \xff byte", `bad \xff byte`},
		{"line\u2028separator", `line\u2028separator`},
		{"tag\U000e0041", `tag\U000e0041`},
		{"marie\u3164", `marie\u3164`},
	} {
		if got := printableText(tt.in); got != tt.want {
			t.Errorf("printableText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := shorten("SELECT 1 -- \x1b[2K", 80); got != `SELECT 1 -- \u001b[2K` {
		t.Errorf("shorten: %q", got)
	}
}

// seqRange returns from, from+step, … up to to.
func seqRange(from, to, step uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s += step {
		out = append(out, s)
	}
	return out
}
