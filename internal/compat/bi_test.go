package compat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// biStatement is one statement of a BI query set and what it must give.
type biStatement struct {
	line int
	sql  string
	// expect is "" (must succeed), "same" (must succeed with the same
	// result as upstream, for catalog reads), "null COLUMN…" (must
	// succeed with at least one row, every named column NULL in every
	// row: statistics pgveil hides) or "refused CODE RULE".
	expect string
}

// biSet is a query set of testdata/bi: the statements a BI tool sends,
// with the protocol it uses.
type biSet struct {
	tool       string
	extended   bool
	statements []biStatement
}

// parseBISet reads a query set. Header lines "-- Tool:", "-- Protocol:"
// describe it; "-- expect: …" applies to the next statement; a statement
// ends with a line ending in ";".
func parseBISet(path string) (*biSet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	set := &biSet{}
	var cur strings.Builder
	expect, start := "", 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && strings.HasPrefix(line, "--") {
			c := strings.TrimSpace(strings.TrimPrefix(line, "--"))
			switch {
			case strings.HasPrefix(c, "Tool:"):
				set.tool = strings.TrimSpace(strings.TrimPrefix(c, "Tool:"))
			case strings.HasPrefix(c, "Protocol:"):
				set.extended = strings.TrimSpace(strings.TrimPrefix(c, "Protocol:")) == "extended"
			case strings.HasPrefix(c, "expect:"):
				expect = strings.TrimSpace(strings.TrimPrefix(c, "expect:"))
			}
			continue
		}
		if line == "" && cur.Len() == 0 {
			continue
		}
		if cur.Len() == 0 {
			start = n
		} else {
			cur.WriteByte('\n')
		}
		cur.WriteString(line)
		if strings.HasSuffix(line, ";") {
			set.statements = append(set.statements, biStatement{line: start, sql: strings.TrimSuffix(cur.String(), ";"), expect: expect})
			cur.Reset()
			expect = ""
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("%s: the statement of line %d has no closing semicolon", path, start)
	}
	if set.tool == "" || len(set.statements) == 0 {
		return nil, fmt.Errorf("%s: no \"-- Tool:\" header or no statement", path)
	}
	return set, nil
}

// biResult is what a statement gave: its column names and rows as text,
// or an error.
type biResult struct {
	columns []string
	rows    [][]*string
	err     error
}

// exec runs sql on c with the set's protocol.
func (s *biSet) exec(ctx context.Context, c *pgconn.PgConn, sql string) biResult {
	var res []*pgconn.Result
	var err error
	if s.extended {
		r := c.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
		res, err = []*pgconn.Result{r}, r.Err
	} else {
		res, err = c.Exec(ctx, sql).ReadAll()
	}
	if err != nil {
		return biResult{err: err}
	}
	var out biResult
	for _, r := range res {
		if len(r.FieldDescriptions) == 0 {
			continue
		}
		out.columns = nil
		for _, f := range r.FieldDescriptions {
			out.columns = append(out.columns, f.Name+":"+fmt.Sprint(f.DataTypeOID))
		}
		out.rows = nil
		for _, row := range r.Rows {
			vals := make([]*string, len(row))
			for i, v := range row {
				if v != nil {
					s := string(v)
					vals[i] = &s
				}
			}
			out.rows = append(out.rows, vals)
		}
	}
	return out
}

func TestBITools(t *testing.T) {
	requireVeil(t)
	files, err := filepath.Glob(filepath.Join("testdata", "bi", "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no query sets in testdata/bi: %v", err)
	}
	for _, file := range files {
		set, err := parseBISet(file)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(set.tool, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// What the same statements give without pgveil, as its
			// service account, for the "same" expectations.
			plain, err := pgx.Connect(ctx, upstream().url("postgres"))
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close(ctx)
			for _, user := range []string{"marie", "hq"} {
				t.Run("as "+user+" works, within the user's scope, and refusals say what to do", func(t *testing.T) {
					c := connect(t, user).PgConn()
					for _, st := range set.statements {
						where := fmt.Sprintf("%s:%d", filepath.Base(file), st.line)
						got := set.exec(ctx, c, st.sql)
						checkBI(t, where, user, st, got, func() biResult { return set.exec(ctx, plain.PgConn(), st.sql) })
					}
				})
			}
		})
	}
}

// checkBI checks one statement's outcome for user.
func checkBI(t *testing.T, where, user string, st biStatement, got biResult, upstream func() biResult) {
	t.Helper()
	if rule, ok := strings.CutPrefix(st.expect, "refused "); ok {
		code, rule, _ := strings.Cut(rule, " ")
		var pe *pgconn.PgError
		if !errors.As(got.err, &pe) {
			t.Errorf("%s: got %v, want a refusal %s by %s\n%s", where, got.err, code, rule, st.sql)
			return
		}
		if pe.Code != code || !strings.Contains(pe.Message, "firewall rule "+rule) {
			t.Errorf("%s: refused with %s %q, want %s by rule %s", where, pe.Code, pe.Message, code, rule)
		}
		if pe.Hint == "" {
			t.Errorf("%s: the refusal (%s) has no hint saying what to do", where, pe.Message)
		}
		return
	}
	if got.err != nil {
		t.Errorf("%s: %v\n%s", where, got.err, st.sql)
		return
	}
	if cols, ok := strings.CutPrefix(st.expect, "null "); ok {
		if len(got.rows) == 0 {
			t.Errorf("%s: as %s no row, want rows with %s NULL\n%s", where, user, cols, st.sql)
		}
		for _, want := range strings.Fields(cols) {
			i := -1
			for j, col := range got.columns {
				if col[:strings.LastIndexByte(col, ':')] == want {
					i = j
				}
			}
			if i < 0 {
				t.Errorf("%s: no column %s in %v", where, want, got.columns)
				continue
			}
			for _, row := range got.rows {
				if row[i] != nil {
					t.Errorf("%s: as %s %s is %s, want NULL", where, user, want, *row[i])
				}
			}
		}
	}
	if st.expect == "same" {
		want := upstream()
		if want.err != nil {
			t.Fatalf("%s: upstream: %v", where, want.err)
		}
		if !reflect.DeepEqual(got.columns, want.columns) || !reflect.DeepEqual(got.rows, want.rows) {
			t.Errorf("%s: as %s the result differs from upstream's:\n%s\ngot:  %v %s\nwant: %v %s", where, user, st.sql,
				got.columns, render(got.rows), want.columns, render(want.rows))
		}
	}
	// Whatever the query, a column named like a governed column holds
	// only what the user may see.
	for i, col := range got.columns {
		name := col[:strings.LastIndexByte(col, ':')]
		for _, row := range got.rows {
			v := row[i]
			switch {
			case name == "country" && user == "marie" && v != nil && *v != "France":
				t.Fatalf("%s: marie sees a row of %s", where, *v)
			case (name == "contact" || name == "email") && v != nil:
				t.Fatalf("%s: %s sees %s %q", where, user, name, *v)
			case name == "score" && user == "marie" && v != nil:
				t.Fatalf("%s: marie sees a score", where)
			}
		}
	}
}

// render prints rows for a failure message, at most 10.
func render(rows [][]*string) string {
	var b strings.Builder
	for i, r := range rows {
		if i == 10 {
			fmt.Fprintf(&b, "\n  … %d rows", len(rows))
			break
		}
		b.WriteString("\n  ")
		for j, v := range r {
			if j > 0 {
				b.WriteString(" | ")
			}
			if v == nil {
				b.WriteString("NULL")
			} else {
				b.WriteString(*v)
			}
		}
	}
	return b.String()
}
