package audit

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// writeOne writes r through a Log on a buffer with o and returns the
// line.
func writeOne(t *testing.T, o Options, r *Record) string {
	t.Helper()
	var out bytes.Buffer
	o.File, o.Stdout, o.Key = "-", &out, testKey
	l, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	l.Write(r)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestParams(t *testing.T) {
	rec := func(sql, params string) *Record {
		return &Record{Time: time.Unix(0, 0), Event: EventStatement, User: "survey_admin", SQL: sql, Params: params}
	}
	t.Run("params follow sql and parse back; without them a line is as before", func(t *testing.T) {
		line := writeOne(t, Options{}, rec("SELECT email FROM responses WHERE id = $1", "$1 = '42'"))
		if !strings.Contains(line, `"sql":"SELECT email FROM responses WHERE id = $1","params":"$1 = '42'","fingerprint"`) {
			t.Fatalf("line %s", line)
		}
		e, err := ParseLine([]byte(line))
		if err != nil || e.Params != "$1 = '42'" {
			t.Fatalf("parsed %+v, %v", e, err)
		}
		if line := writeOne(t, Options{}, rec("SELECT 1", "")); strings.Contains(line, `"params"`) {
			t.Fatalf("line %s", line)
		}
	})
	t.Run("redact_literals keeps no value", func(t *testing.T) {
		line := writeOne(t, Options{RedactLiterals: true}, rec("SELECT email FROM responses WHERE id = $1", "$1 = '42'"))
		if strings.Contains(line, "params") || strings.Contains(line, "'42'") {
			t.Fatalf("line %s", line)
		}
	})
	t.Run("the values of a text that may hold a secret are withheld", func(t *testing.T) {
		line := writeOne(t, Options{}, rec("SELECT dblink_connect($1)", "$1 = 'password=hunter2'"))
		if strings.Contains(line, "hunter2") || !strings.Contains(line, ParamsWithheld) {
			t.Fatalf("line %s", line)
		}
	})
	t.Run("long values are cut to max_text", func(t *testing.T) {
		long := "$1 = '" + strings.Repeat("x", 3<<10) + "'"
		e, err := ParseLine([]byte(writeOne(t, Options{MaxText: MinMaxText}, rec("SELECT $1", long))))
		if err != nil || len(e.Params) > MinMaxText+200 || !strings.Contains(e.Params, "truncated") {
			t.Fatalf("params %q, %v", e.Params, err)
		}
	})
}
