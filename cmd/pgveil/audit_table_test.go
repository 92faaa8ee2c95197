package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/internal/audit"
)

func TestAuditSearchTableSaysWhatWentWrong(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(audit.Options{File: path, Key: []byte(auditKey)})
	if err != nil {
		t.Fatal(err)
	}
	l.Write(&audit.Record{Event: audit.EventStatement, User: "marie", Kind: "select", SQL: "SELECT 1/0",
		Decision: audit.DecisionAllowed, SQLState: "22012", UpstreamError: "22012: division by zero"})
	l.Write(&audit.Record{Event: audit.EventStatement, User: "marie", Kind: "select", SQL: "SELECT 2",
		Decision: audit.DecisionAllowed, Message: "not executed: an earlier message of its batch failed"})
	l.Write(&audit.Record{Event: audit.EventStatement, User: "marie", Kind: "select", SQL: "SELECT 3", Decision: audit.DecisionAllowed, Rows: 1})
	l.Write(&audit.Record{Event: "pool_refused", User: "marie", SQL: "SELECT 4", Reason: "pgveil found no free upstream connection within 1s"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCLI("", "audit", "search", "--user", "marie", path)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 5 {
		t.Fatalf("%d %q", code, out)
	}
	col := strings.Index(lines[0], "WHY DENIED / ERROR")
	for i, want := range []string{"error 22012: division by zero", "not executed: an earlier message", "", "pgveil found no free upstream connection"} {
		row := lines[i+1]
		if want == "" {
			if len(row) > col {
				t.Errorf("row %q has a note", row)
			}
			continue
		}
		if strings.Index(row, want) != col {
			t.Errorf("row %q: want %q at column %d", row, want, col)
		}
	}
}

// TestAuditSearchTableLinesUpActingUsers: a BI service's row shows the
// service and the end user it acted for ("metabase as marie"), and its
// later columns start where the header's do, as a plain login's.
func TestAuditSearchTableLinesUpActingUsers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(audit.Options{File: path, Key: []byte(auditKey)})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []audit.Record{
		{Event: audit.EventStatement, User: "marie", Kind: "select", SQL: "SELECT 1", Decision: audit.DecisionAllowed, Rows: 1},
		{Event: audit.EventStatement, User: "metabase", ActingFor: "marie", Kind: "select", SQL: "SELECT 2", Decision: audit.DecisionAllowed, Rows: 1},
		{Event: audit.EventStatement, User: "superset_svc", ActingFor: "hq_reports", Kind: "select", SQL: "SELECT 1/0",
			Decision: audit.DecisionAllowed, SQLState: "22012", UpstreamError: "22012: division by zero"},
	} {
		l.Write(&r)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCLI("", "audit", "search", path)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 {
		t.Fatalf("%d %q", code, out)
	}
	for _, tt := range []struct {
		row  int
		user string
	}{{1, "marie"}, {2, "metabase as marie"}, {3, "superset_svc as hq_reports"}} {
		row := lines[tt.row]
		if !strings.Contains(row, "  "+tt.user+" ") {
			t.Errorf("row %q: want the user %q", row, tt.user)
		}
		for _, h := range []string{"DECISION", "KIND", "SQL"} {
			if strings.Index(lines[0], h) != strings.Index(row, map[string]string{"DECISION": "allowed", "KIND": "select", "SQL": "SELECT"}[h]) {
				t.Errorf("row %q: %s not under the header's\n%s", row, h, lines[0])
			}
		}
		if tt.row == 3 && strings.Index(row, "error 22012") != strings.Index(lines[0], "WHY DENIED / ERROR") {
			t.Errorf("row %q: the error not under its header", row)
		}
	}
}

// TestAuditSearchTableUserCannotFakeColumns: a login name a failed
// startup gave is the client's choice, and cannot pose as the columns
// after it or push the real decision off the auditor's screen.
func TestAuditSearchTableUserCannotFakeColumns(t *testing.T) {
	fake := "mallory" + strings.Repeat(" ", 300) + "allowed  0  select  SELECT 1"
	for _, tt := range []struct {
		name    string
		rec     audit.Entry
		want    string
		notWant string
	}{
		{"a login padded with spaces shows its decision next to it",
			audit.Entry{Record: audit.Record{Event: audit.EventAuthFailure, User: fake, Reason: "password authentication failed"}},
			"auth_failure", strings.Repeat(" ", userColumnWidth+2)},
		{"an acting user padded with spaces shows its decision next to it",
			audit.Entry{Record: audit.Record{Event: audit.EventStatement, User: "bi", ActingFor: fake, Decision: audit.DecisionDenied, Kind: "select"}},
			"denied", strings.Repeat(" ", userColumnWidth+2)},
		{"a login of 256 characters, pgveil's longest, is shown whole",
			audit.Entry{Record: audit.Record{Event: audit.EventStatement, User: strings.Repeat("m", 256), Decision: audit.DecisionAllowed}},
			strings.Repeat("m", 256) + "  allowed", "…"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			row := tableRow(&tt.rec)
			i := strings.Index(row, tt.want)
			if i < 0 || i > 20+2+256+2 {
				t.Errorf("%q at %d in %q", tt.want, i, row)
			}
			if strings.Contains(row[:max(i, 0)], tt.notWant) {
				t.Errorf("%q before the decision in %q", tt.notWant, row)
			}
		})
	}
}

// TestAuditSearchJSONShowsOldLinesInert: lines written before the trail
// escaped C1, format and filler characters hold them raw; audit search
// --format json prints them escaped, decoding to the same values.
func TestAuditSearchJSONShowsOldLinesInert(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(audit.Options{File: path, Key: []byte(auditKey)})
	if err != nil {
		t.Fatal(err)
	}
	hostile := "mallory\u009b2J\u202e\u3164"
	l.Write(&audit.Record{Event: audit.EventStatement, User: hostile, Kind: "select", SQL: "SELECT 1", Decision: audit.DecisionAllowed})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old := strings.NewReplacer(`\u009b`, "\u009b", `\u202e`, "\u202e", `\u3164`, "\u3164").Replace(string(data))
	if old == string(data) {
		t.Fatalf("no escape to undo in %s", data)
	}
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI("", "audit", "search", "--format", "json", path)
	if code != 0 || errOut != "" {
		t.Fatalf("%d %q %q", code, out, errOut)
	}
	for _, r := range strings.TrimSuffix(out, "\n") {
		if unprintable(r) {
			t.Fatalf("raw %U in %q", r, out)
		}
	}
	var rec struct{ User string }
	if err := json.Unmarshal([]byte(out), &rec); err != nil || rec.User != hostile {
		t.Fatalf("%v: user %+q in %s", err, rec.User, out)
	}
}
