package policy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/rewrite"
)

// datedRel is a relation with a column of each pinned type.
var datedRel = &rewrite.Relation{QName: rewrite.QName{Schema: "public", Name: "dated"}, Columns: []rewrite.Column{
	{Name: "id", Type: "integer"},
	{Name: "d", Type: "date"},
	{Name: "ts", Type: "timestamp(3) without time zone"},
	{Name: "tz", Type: "timestamp with time zone"},
	{Name: "t", Type: "text"},
}}

// datedPolicy returns users with marie's attributes attrs, a table block
// for public.dated and one rule with where.
func datedPolicy(attrs, where string) string {
	return strings.Replace(users, `attributes = { country = "France", regions = ["north", "south"] }`, "attributes = "+attrs, 1) + `
table "public.dated" {}
rule "r" {
  tables = ["public.dated"]
  roles  = ["analyst"]
  where  = "` + where + `"
}`
}

func TestDatetimeConstantsArePinned(t *testing.T) {
	cases := []struct{ name, attrs, where, want string }{
		{"an ISO date compared with a date column becomes a typed date", "{}", "d >= '2025-03-02'",
			"d OPERATOR(pg_catalog.>=) '2025-03-02'::pg_catalog.date"},
		{"a date compared with a timestamptz column is its midnight UTC", "{}", "tz >= '2025-03-02'",
			"tz OPERATOR(pg_catalog.>=) '2025-03-02 00:00:00+00'::timestamp with time zone"},
		{"a time without offset compared with a timestamptz column is UTC", "{}", "tz < '2025-03-02 10:30'",
			"tz OPERATOR(pg_catalog.<) '2025-03-02 10:30:00+00'::timestamp with time zone"},
		{"a time with an offset is converted to UTC", "{}", "tz < '2025-03-02T01:30:00.5+02:00'",
			"tz OPERATOR(pg_catalog.<) '2025-03-01 23:30:00.5+00'::timestamp with time zone"},
		{"a timestamp column keeps the wall time", "{}", "ts = '2025-03-02 10:30:01'",
			"ts OPERATOR(pg_catalog.=) '2025-03-02 10:30:01'::timestamp"},
		{"a typed date literal is rendered for the column's type", "{}", "tz >= DATE '2025-03-02'",
			"tz OPERATOR(pg_catalog.>=) '2025-03-02 00:00:00+00'::timestamp with time zone"},
		{"a constant on the left is pinned too", "{}", "'2025-03-02' <= d",
			"'2025-03-02'::pg_catalog.date OPERATOR(pg_catalog.<=) d"},
		{"an attribute bound as a string is pinned", `{ since = "2025-03-02" }`, "tz >= me.since",
			"tz OPERATOR(pg_catalog.>=) '2025-03-02 00:00:00+00'::timestamp with time zone"},
		{"a rule reading an attribute that is not ISO 8601 grants no row", `{ since = "03/02/2025" }`, "d >= me.since OR id = 1",
			"false"},
		{"NOT of a comparison with an unreadable date is still no row", `{ since = "today" }`, "NOT d < me.since",
			"false"},
		{"a CASE falling to its ELSE past an unreadable date grants no row", `{ since = "03/02/2025" }`,
			"CASE WHEN d < me.since THEN false ELSE true END", "false"},
		{"IN lists are pinned element by element", "{}", "d IN ('2025-03-01', '2025-03-03')",
			"d OPERATOR(pg_catalog.=) '2025-03-01'::pg_catalog.date OR d OPERATOR(pg_catalog.=) '2025-03-03'::pg_catalog.date"},
		{"= ANY of an array is pinned element by element", "{}", "d = ANY(ARRAY['2025-03-01', '2025-03-03'])",
			"d OPERATOR(pg_catalog.=) ANY(ARRAY['2025-03-01'::pg_catalog.date, '2025-03-03'::pg_catalog.date])"},
		{"infinity stays infinity", "{}", "tz < 'infinity'", "tz OPERATOR(pg_catalog.<) 'infinity'::timestamp with time zone"},
		{"a text column is left alone", "{}", "t = '2025-03-02'", "t OPERATOR(pg_catalog.=) '2025-03-02'"},
		{"a timestamptz constant elsewhere is pinned to UTC", "{}", "tz > '2025-03-02 10:00'::timestamptz - interval '1 hour'",
			"tz OPERATOR(pg_catalog.>) ('2025-03-02 10:00:00+00'::timestamp with time zone OPERATOR(pg_catalog.-) '1 hour'::interval)"},
		{"a cast attribute that is not ISO 8601 grants no row", `{ since = "now" }`, "tz > me.since::timestamptz - interval '1 hour'",
			"false"},
		{"a cast attribute that is not ISO 8601 does not fall back through COALESCE", `{ since = "now" }`,
			"tz > COALESCE(me.since::timestamptz, '-infinity')", "false"},
		{"a timestamp constant compared with a date column stays a timestamp", "{}", "d < '2025-03-02 10:00'::timestamp",
			"d OPERATOR(pg_catalog.<) '2025-03-02 10:00:00'::timestamp"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			policy := datedPolicy(tt.attrs, tt.where)
			if tt.attrs != "{}" {
				policy += "\nidentity \"x\" {\n  query = \"SELECT 'x' AS login\"\n}\n"
			}
			p := compile(t, policy, "marie")
			if got := whereOf(t, datedRel, p.Relation(datedRel)); got != tt.want {
				t.Errorf("filter\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

func TestDatetimeConstantsInMasksArePinned(t *testing.T) {
	policy := strings.Replace(datedPolicy("{}", "id > 0"), `table "public.dated" {}`, `table "public.dated" {
  column "t" {
    class      = "secret"
    mask       = "expression"
    expression = "CASE WHEN tz < '2025-01-01' THEN t END"
  }
}`, 1)
	p := compile(t, policy, "marie")
	got := accessSQL(t, datedRel, p.Relation(datedRel))
	if want := "CASE WHEN tz OPERATOR(pg_catalog.<) '2025-01-01 00:00:00+00'::timestamp with time zone THEN t END AS t"; !strings.Contains(got, want) {
		t.Errorf("mask not pinned:\n got: %s\nwant: …%s…", got, want)
	}
}

func TestMaskReadingAnUnreadableDateShowsNoValue(t *testing.T) {
	policy := strings.Replace(datedPolicy(`{ embargo = "03/02/2025" }`, "id > 0"), `table "public.dated" {}`, `table "public.dated" {
  column "t" {
    class      = "secret"
    mask       = "expression"
    expression = "CASE WHEN tz > me.embargo THEN NULL ELSE t END"
  }
}`, 1) + "\nidentity \"x\" {\n  query = \"SELECT 'x' AS login\"\n}\n"
	p := compile(t, policy, "marie")
	got := accessSQL(t, datedRel, p.Relation(datedRel))
	if want := "NULL AS t"; !strings.Contains(got, want) {
		t.Errorf("a mask falling to its ELSE past an unreadable date:\n got: %s\nwant: …%s…", got, want)
	}
}

func TestSettingDependentPolicyExpressionsAreRefused(t *testing.T) {
	for _, tt := range []struct{ name, where, want string }{
		{"a date that is not ISO 8601", "d >= '03/02/2025'", "not an ISO 8601 date"},
		{"a typed date that is not ISO 8601", "d >= DATE '2.3.2025'", "not an ISO 8601 date"},
		{"a negative interval", "tz > now() - '-1 day'::interval", "IntervalStyle"},
		{"CURRENT_DATE", "d = CURRENT_DATE", "client's TimeZone"},
		{"LOCALTIMESTAMP", "ts < LOCALTIMESTAMP", "client's TimeZone"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, failed := loadErrors(t, datedPolicy("{}", tt.where))
			if !failed || !strings.Contains(out, tt.want) {
				t.Errorf("diagnostics do not say %q:\n%s", tt.want, out)
			}
		})
	}
	t.Run("a string cast to text may look like a date", func(t *testing.T) {
		if out, failed := loadErrors(t, datedPolicy("{}", "t = '10.0.1'::text")); failed {
			t.Error(out)
		}
	})
}

// TestDatetimeRulesIgnoreSessionSettings runs compiled date, timestamp
// and timestamptz rules on a real PostgreSQL under every DateStyle, three
// time zones and each IntervalStyle: the rows must be the same.
func TestDatetimeRulesIgnoreSessionSettings(t *testing.T) {
	pgtest.Require(t, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const db = "pgveil_datetime"
	if err := cluster.CreateDatabase(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Exec(ctx, db, `
CREATE TABLE public.dated (id int, d date, ts timestamp(3), tz timestamptz, t text);
INSERT INTO public.dated
SELECT g, DATE '2025-02-28' + g / 8, TIMESTAMP '2025-03-01 18:00' + g * INTERVAL '1 hour',
       TIMESTAMPTZ '2025-03-01 18:00+00' + g * INTERVAL '1 hour', ''
FROM generate_series(0, 23) g`); err != nil {
		t.Fatal(err)
	}
	conn, err := cluster.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rules := []struct{ name, attrs, where string }{
		{"a date rule", "{}", "d >= '2025-03-02'"},
		{"a timestamp rule", "{}", "ts >= '2025-03-02 03:00'"},
		{"a timestamptz rule", "{}", "tz >= '2025-03-02 03:00'"},
		{"a timestamptz rule with an offset", "{}", "tz < '2025-03-02 03:00-05'"},
		{"a timestamptz rule on a date", "{}", "tz >= DATE '2025-03-02'"},
		{"an attribute date", `{ since = "2025-03-02" }`, "d >= me.since AND tz < me.since"},
		{"a timestamptz constant in arithmetic", "{}", "tz > '2025-03-02 10:00'::timestamptz - interval '2 hours'"},
		{"an attribute that is not ISO 8601", `{ since = "03/02/2025" }`, "d >= me.since OR id < 2"},
	}
	settings := []string{}
	for _, ds := range []string{"ISO, MDY", "SQL, DMY", "SQL, MDY", "Postgres, DMY", "Postgres, MDY", "German, DMY", "German, MDY", "ISO, YMD"} {
		for i, tz := range []string{"UTC", "Pacific/Kiritimati", "America/New_York"} {
			is := []string{"postgres", "sql_standard", "iso_8601"}[i]
			settings = append(settings, "SET DateStyle = '"+ds+"'; SET TimeZone = '"+tz+"'; SET IntervalStyle = '"+is+"'")
		}
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			policy := datedPolicy(r.attrs, r.where)
			if r.attrs != "{}" {
				policy += "\nidentity \"x\" {\n  query = \"SELECT 'x' AS login\"\n}\n"
			}
			p := compile(t, policy, "marie")
			sql := "SELECT string_agg(id::text, ',' ORDER BY id) FROM (" + accessSQL(t, datedRel, p.Relation(datedRel)) + ") s"
			var want string
			for i, set := range settings {
				res, err := conn.Exec(ctx, "RESET ALL; "+set+"; "+sql).ReadAll()
				if err != nil {
					t.Fatalf("%s: %v\n%s", set, err, sql)
				}
				last := res[len(res)-1]
				got := "<none>"
				if len(last.Rows) == 1 && last.Rows[0][0] != nil {
					got = string(last.Rows[0][0])
				}
				if i == 0 {
					want = got
					t.Logf("%s: rows %s", sql, got)
				} else if got != want {
					t.Errorf("%s: rows %s, under %s rows %s", set, got, settings[0], want)
				}
			}
		})
	}
}

// TestTransactionInstantsBecomeTheStatementStart: now() and its
// spellings are the start of the transaction, which a client holding a
// transaction open keeps in the past; a rule's window relative to now
// reads the start of each statement instead.
func TestTransactionInstantsBecomeTheStatementStart(t *testing.T) {
	for _, tt := range []struct{ name, where, want string }{
		{"now() is the statement's start", "tz > now() - interval '2160 hours'", "pg_catalog.statement_timestamp()"},
		{"pg_catalog.now() is the statement's start", "tz > pg_catalog.now()", "pg_catalog.statement_timestamp()"},
		{"transaction_timestamp() is the statement's start", "tz > transaction_timestamp()", "pg_catalog.statement_timestamp()"},
		{"CURRENT_TIMESTAMP is the statement's start", "tz > CURRENT_TIMESTAMP", "pg_catalog.statement_timestamp()"},
		{"CURRENT_TIMESTAMP(0) is the statement's start rounded", "tz > CURRENT_TIMESTAMP(0)", "pg_catalog.statement_timestamp()::timestamp (0) with time zone"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := compile(t, datedPolicy("{}", tt.where), "marie")
			got := accessSQL(t, datedRel, p.Relation(datedRel))
			if !strings.Contains(got, tt.want) || strings.Contains(got, "now()") || strings.Contains(got, "CURRENT_TIMESTAMP") {
				t.Errorf("got: %s\nwant: …%s…", got, tt.want)
			}
		})
	}
}
