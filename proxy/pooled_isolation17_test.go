package proxy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPooledIsolation17Settings holds transaction pooling, on a pool of
// one backend, to leaving no session's settings to another user's: each
// case runs its steps, alternately as hq and tom, each step a batch the
// other user's next step waits for the backend after (so that every
// setting is settled before the next step), then reads a setting as tom,
// which must read its startup value, or wait in vain for the backend hq
// keeps (53300).
func TestPooledIsolation17Settings(t *testing.T) {
	// psqlODBCSets is what psqlODBC sends on connecting.
	const psqlODBCSets = "SET DateStyle = 'ISO';SET extra_float_digits = 2;show transaction_isolation"
	path := proxytest.PooledDemoWait(t, 1, "1s")
	p, _ := proxytest.StartDemoFrom(t, path)
	ctx := context.Background()
	type step struct {
		user string
		sql  string
	}
	cases := []struct {
		name  string
		steps []step
		show  string
		// own is what hq reads of it afterwards, on the backend tom
		// left: its own settings replayed there.
		own string
	}{
		{"a RESET of one default_transaction_ setting after SET SESSION CHARACTERISTICS leaves another user no READ ONLY", []step{
			{"hq", "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"},
			{"tom", "SELECT 1"},
			{"hq", "RESET default_transaction_isolation"},
		}, "default_transaction_read_only", "on"},
		{"a SET SESSION CHARACTERISTICS made over another leaves its isolation level to no user who sent the later one", []step{
			{"tom", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"},
			{"hq", "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE"},
			{"tom", "SELECT 1"},
			{"hq", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"},
		}, "default_transaction_isolation", "serializable"},
		{"a SET DateStyle of the output format alone leaves the field order of an earlier one to no user who sent the same text", []step{
			{"tom", "SET DateStyle = 'ISO'"},
			{"hq", "SET DateStyle = 'German'"},
			{"tom", "SELECT 1"},
			{"hq", "SET DateStyle = 'ISO'"},
		}, "DateStyle", "ISO, DMY"},
		{"psqlODBC's connect-time SETs after a SET DateStyle = 'DMY' leave the field order to no other psqlODBC user", []step{
			{"tom", psqlODBCSets},
			{"hq", "SET DateStyle = 'DMY'"},
			{"tom", "SELECT 1"},
			{"hq", psqlODBCSets},
		}, "DateStyle", "ISO, DMY"},
		{"a RESET of the isolation level after SET SESSION CHARACTERISTICS leaves another user no READ ONLY, in a transaction block", []step{
			{"hq", "BEGIN"},
			{"hq", "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"},
			{"hq", "SET default_transaction_isolation TO DEFAULT"},
			{"hq", "COMMIT"},
		}, "default_transaction_read_only", "on"},
		{"a SET DateStyle after a SET LOCAL DateStyle in its block leaves the field order to no user who sent the same text", []step{
			{"tom", "SET DateStyle = 'ISO'"},
			{"hq", "BEGIN"},
			{"hq", "SET LOCAL DateStyle = 'German'"},
			{"hq", "SET DateStyle = 'ISO'"},
			{"hq", "COMMIT"},
		}, "DateStyle", "ISO, DMY"},
		{"a SET TIME ZONE INTERVAL after a SET LOCAL IntervalStyle in its block keeps its time zone on the backend another user's session took", []step{
			{"hq", "BEGIN"},
			{"hq", "SET LOCAL IntervalStyle = 'sql_standard'"},
			{"hq", "SET TIME ZONE INTERVAL '-2 hours 30 minutes' HOUR TO MINUTE"},
			{"hq", "COMMIT"},
		}, "TimeZone", "<-02:30>+02:30"},
		{"a SET FROM CURRENT leaves its value to no user who sent the same text", []step{
			{"tom", "SET TimeZone FROM CURRENT"},
			{"hq", "SET TimeZone = 'Asia/Tokyo'"},
			{"tom", "SELECT 1"},
			{"hq", "SET TimeZone FROM CURRENT"},
		}, "TimeZone", "Asia/Tokyo"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := proxytest.Direct(t, "SHOW "+tc.show)[0][0]
			conns := map[string]*pgx.Conn{"hq": p.Connect(t, "hq"), "tom": p.Connect(t, "tom")}
			defer conns["hq"].Close(ctx)
			defer conns["tom"].Close(ctx)
			for _, s := range tc.steps {
				if _, err := proxytest.RoundTrip(t, conns[s.user], &pgproto3.Query{String: s.sql}); err != nil {
					// Refused (the fix may refuse the text): nothing left.
					t.Logf("%s: %s: %v", s.user, s.sql, err)
				}
			}
			rows, err := proxytest.RoundTrip(t, conns["tom"], &pgproto3.Query{String: "SHOW " + tc.show})
			if err != nil && strings.Contains(err.Error(), "53300") {
				t.Logf("hq kept the backend: %v", err)
			} else if err != nil || len(rows) != 1 || rows[0] != want {
				t.Errorf("another user's session: %s %q, %v; want %q", tc.show, rows, err, want)
			}
			rows, err = proxytest.RoundTrip(t, conns["hq"], &pgproto3.Query{String: "SHOW " + tc.show})
			if err != nil || len(rows) != 1 || rows[0] != tc.own {
				t.Errorf("the session itself: %s %q, %v; want %q", tc.show, rows, err, tc.own)
			}
		})
	}
}

// TestPooledIsolation17IntervalTimeZone: SET TIME ZONE INTERVAL reads
// its interval as IntervalStyle says (sql_standard carries a leading
// sign to every field), so its text gives a value only after the
// IntervalStyle that came before it: a later SET IntervalStyle, moved
// behind it in the replay, would leave the time zone of an earlier
// IntervalStyle to the session on another backend, and to another user
// who sent the same texts.
func TestPooledIsolation17IntervalTimeZone(t *testing.T) {
	const (
		zone     = "SET TIME ZONE INTERVAL '-2 hours 30 minutes' HOUR TO MINUTE"
		standard = "SET IntervalStyle = 'sql_standard'"
		postgres = "SET IntervalStyle = 'postgres'"
	)
	path := proxytest.PooledDemoWait(t, 1, "1s")
	p, _ := proxytest.StartDemoFrom(t, path)
	ctx := context.Background()
	// as reads TimeZone after steps, on a connection of its own upstream.
	as := func(steps ...string) string {
		c, err := proxytest.Cluster.Connect(ctx, proxytest.DemoDB)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		res, err := c.Exec(ctx, strings.Join(append(steps, "SHOW TimeZone"), ";")).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return string(res[len(res)-1].Rows[0][0])
	}
	tomWants, hqWants := as(zone, postgres), as(standard, zone, postgres)
	if tomWants == hqWants {
		t.Fatalf("the two orders give one time zone, %q: the test shows nothing", tomWants)
	}
	conns := map[string]*pgx.Conn{"hq": p.Connect(t, "hq"), "tom": p.Connect(t, "tom")}
	defer conns["hq"].Close(ctx)
	defer conns["tom"].Close(ctx)
	for _, s := range []struct{ user, sql string }{
		{"tom", zone}, {"tom", postgres},
		{"hq", standard}, {"hq", zone}, {"hq", postgres},
	} {
		if _, err := proxytest.RoundTrip(t, conns[s.user], &pgproto3.Query{String: s.sql}); err != nil {
			t.Fatalf("%s: %s: %v", s.user, s.sql, err)
		}
	}
	for _, s := range []struct{ user, want string }{{"tom", tomWants}, {"hq", hqWants}} {
		rows, err := proxytest.RoundTrip(t, conns[s.user], &pgproto3.Query{String: "SHOW TimeZone"})
		if err != nil && strings.Contains(err.Error(), "53300") {
			t.Logf("%s waited in vain for the backend the other keeps: %v", s.user, err)
		} else if err != nil || len(rows) != 1 || rows[0] != s.want {
			t.Errorf("%s's session: TimeZone %q, %v; want %q", s.user, rows, err, s.want)
		}
	}
}
