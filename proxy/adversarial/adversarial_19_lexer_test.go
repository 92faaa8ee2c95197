package adversarial_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestAdversarial19Lexer holds the angles of the nineteenth red team on
// the literal-shape cache and its templates (rewrite/shape.go,
// rewrite/template.go): a statement of a shape pgveil has seen (learnt
// from the first statement of each pair, sent twice so that the shape
// gets its template) must be answered exactly as the same statement of a
// shape never seen (a comment of its own before it), on PostgreSQL 15, whose lexer is not pg_query's
// (PostgreSQL 17's). Each second statement differs from the first only
// in its literal tokens, with values chosen to end a string, open or
// close a comment, or change a number's kind if a splice or PostgreSQL
// 15 read them otherwise than the scanner; each runs on both protocols
// as marie (France rows only; email, contact and score masked).
func TestAdversarial19Lexer(t *testing.T) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	proxytest.SeedMarkers(t)
	conn := proxytest.StartDemo(t).Connect(t, "marie").PgConn()
	// cold makes sql a statement of a shape never seen: a comment of its
	// own is part of its shape.
	n := 0
	cold := func(sql string) string {
		n++
		return fmt.Sprintf("/* cold %d */ %s", n, sql)
	}

	// answer runs sql on c in the simple (extended false) or extended
	// protocol and returns its rows as text, or its SQLSTATE.
	answer := func(c *pgconn.PgConn, sql string, extended bool) string {
		var b strings.Builder
		var err error
		if extended {
			res := c.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
			for _, r := range res.Rows {
				fmt.Fprintf(&b, "%q\n", r)
			}
			err = res.Err
		} else {
			rs, e := c.Exec(ctx, sql).ReadAll()
			for _, res := range rs {
				for _, r := range res.Rows {
					fmt.Fprintf(&b, "%q\n", r)
				}
				if res.Err != nil && e == nil {
					e = res.Err
				}
			}
			err = e
		}
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return "error " + pe.Code
		}
		if err != nil {
			return "error " + err.Error()
		}
		return b.String()
	}

	const sel = "SELECT id, email, contact, score, comment FROM responses WHERE "
	cases := []struct {
		name   string
		learnt string
		// sent are statements of learnt's literal shape.
		sent []string
	}{
		{
			name:   "a string ending in a backslash does not run on into the next condition",
			learnt: sel + "comment = 'x' OR id = 990011 AND country = 'USA'",
			sent: []string{
				sel + `comment = 'x\' OR id = 990001 AND country = 'USA'`,
				sel + `comment = '\' OR id = 990001 AND country = '\'`,
				sel + `comment = '\\''' OR id = 990002 AND country = ''''`,
			},
		},
		{
			name:   "a string holding comment openers and dollar quotes stays a string",
			learnt: sel + "comment = 'a' OR id = 990011 -- tail\n",
			sent: []string{
				sel + "comment = '/*' OR id = 990001 -- tail\n",
				sel + "comment = '--' OR id = 990001 -- tail\n",
				sel + "comment = '$$' OR id = 990001 -- tail\n",
				sel + "comment = '*/ OR true /*' OR id = 990001 -- tail\n",
				sel + "comment = '\n' OR id = 990001 -- tail\n",
				sel + "comment = 'Livraison lente.' OR id = 990002 -- tail\n",
			},
		},
		{
			name:   "a number's spelling does not change its kind or the tokens after it",
			learnt: sel + "id = 990011 OR nps > 100 OR score < 1.5",
			sent: []string{
				sel + "id = 00990001 OR nps > 0000000000000000000000000000000000000100 OR score < 1e400",
				sel + "id = 990001 OR nps > 2147483647 OR score < .5",
				sel + "id = 990001 OR nps > 0 OR score < 5.",
				sel + "id = 990001 OR nps > 0 OR score < 1.e3",
			},
		},
		{
			name:   "a number after a minus sign folds into the same kind or is not spliced",
			learnt: sel + "id = 990011 AND nps > -1 AND sentiment <> '' AND id > - 2",
			sent: []string{
				sel + "id = 990001 AND nps > -0 AND sentiment <> '' AND id > - 0",
				sel + "id = 990001 AND nps > -2147483647 AND sentiment <> '' AND id > - 2147483647",
				sel + "id = 990012 AND nps > -00 AND sentiment <> 'x' AND id > - 000",
			},
		},
		{
			name:   "a bigint stays a bigint at its int4 and int8 edges",
			learnt: sel + "id = 990011 AND team_id < 5000000000 AND nps > -5000000000",
			sent: []string{
				sel + "id = 990001 AND team_id < 2147483648 AND nps > -2147483648",
				sel + "id = 990001 AND team_id < 9223372036854775807 AND nps > -9223372036854775807",
				sel + "id = 990012 AND team_id < 0000000002147483648 AND nps > -0000000002147483648",
			},
		},
		{
			name:   "operators that end in a sign read the same numbers",
			learnt: sel + "id = 990011 OR nps+-1 = 3 OR nps != -1 AND nps <>-1 AND nps*-1 < -3 AND nps-1 > 2 AND nps::int-1 > 2",
			sent: []string{
				sel + "id = 990001 OR nps+-0 = 2 OR nps != -0 AND nps <>-0 AND nps*-0 < -0 AND nps-0 > 0 AND nps::int-0 > 0",
				sel + "id = 990001 OR nps+-9 = 9 OR nps != -9 AND nps <>-9 AND nps*-9 < -9 AND nps-9 > 9 AND nps::int-9 > 9",
			},
		},
		{
			// ^- and !=- are operators of their own (a multi-character
			// operator keeps its trailing minus after one of ~!@#^&|`?%),
			// which do not exist: both forms are refused alike.
			name:   "operators that keep their trailing minus are refused alike",
			learnt: sel + "id = 990011 OR id = 2^-1 OR nps!=-1 OR nps @- 1 = 3",
			sent: []string{
				sel + "id = 990001 OR id = 2^-0 OR nps!=-0 OR nps @- 0 = 3",
			},
		},
		{
			name:   "comments inside operators and nested comments hold on to the same text",
			learnt: sel + "id = 990011 +--1\n 0 OR id = 990011 */* 2 /* 3 */ */ 1",
			sent: []string{
				sel + "id = 990001 +--1\n 0 OR id = 990001 */* 2 /* 3 */ */ 1",
				sel + "id = 990012 +--1\n 0 OR id = 0 */* 2 /* 3 */ */ 990012",
			},
		},
		{
			name:   "a vertical tab that PostgreSQL 17 skips and PostgreSQL 15 refuses",
			learnt: sel + "id = 990011 AND nps > -\v1",
			sent: []string{
				sel + "id = 990001 AND nps > -\v1",
				sel + "id = 990001 AND nps > -\v0",
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, extended := range []bool{false, true} {
				for range 2 {
					answer(conn, c.learnt, extended)
				}
				for _, sql := range c.sent {
					got, want := answer(conn, sql, extended), answer(conn, cold(sql), extended)
					if got != want {
						t.Errorf("extended %v: %q\nwarm: %s\ncold: %s", extended, sql, got, want)
					}
					for _, s := range []string{"MARKER", "987.65", "876.54"} {
						if strings.Contains(got, s) {
							t.Errorf("extended %v: %q: the answer holds %q:\n%s", extended, sql, s, got)
						}
					}
				}
			}
		})
	}

	// The lexer pgveil reads statements with assumes the settings it pins;
	// a SET that repeats a pinned value passes, and must not make another
	// value of the same shape pass.
	t.Run("a SET of a pinned setting seen with the pinned value does not pass with another", func(t *testing.T) {
		for _, c := range []struct{ learnt, sent string }{
			{"SET standard_conforming_strings = on", "SET standard_conforming_strings = off"},
			{"SET standard_conforming_strings TO 'on'", "SET standard_conforming_strings TO 'off'"},
			{"SET standard_conforming_strings = 1", "SET standard_conforming_strings = 0"},
			{"SET client_encoding = 'UTF8'", "SET client_encoding = 'SJIS'"},
			{"SET NAMES 'UTF8'", "SET NAMES 'BIG5'"},
			{"SET client_encoding = UTF8", "SET client_encoding = GBK"},
			{"SET search_path = public", "SET search_path = pg_temp"},
		} {
			for _, extended := range []bool{false, true} {
				for range 2 {
					answer(conn, c.learnt, extended)
				}
				if got := answer(conn, c.sent, extended); got != "error 42501" {
					t.Errorf("extended %v: %q after %q: %s", extended, c.sent, c.learnt, got)
				}
			}
		}
		for _, show := range []string{"SHOW standard_conforming_strings", "SHOW client_encoding"} {
			if got := answer(conn, show, false); got != "[\"on\"]\n" && got != "[\"UTF8\"]\n" {
				t.Errorf("%s: %s", show, got)
			}
		}
	})
}
