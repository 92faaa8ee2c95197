package proxy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPoolIsolation18Settings holds transaction pooling, on a pool of
// one backend, to giving each session the settings its own statements
// gave it, whatever another user's session left on the backend: each
// case runs its steps, alternately as hq and tom, each step a Query the
// other user's next step waits for the backend after, then reads a
// setting as each user, which must read what the user's own steps give
// on a connection of its own upstream (or wait in vain for the backend
// the other keeps: 53300).
func TestPoolIsolation18Settings(t *testing.T) {
	path := proxytest.PooledDemoWait(t, 1, "1s")
	p, _ := proxytest.StartDemoFrom(t, path)
	ctx := context.Background()
	type step struct{ user, sql string }
	// alone reads show after the steps of user, run on a connection of
	// its own upstream.
	alone := func(t *testing.T, user, show string, steps []step) string {
		c, err := proxytest.Cluster.Connect(ctx, proxytest.DemoDB)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		for _, s := range steps {
			if s.user == user {
				if err := c.Exec(ctx, s.sql).Close(); err != nil {
					t.Fatalf("%s alone: %s: %v", user, s.sql, err)
				}
			}
		}
		res, err := c.Exec(ctx, "SHOW "+show).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return string(res[0].Rows[0][0])
	}
	cases := []struct {
		name  string
		steps []step
		show  string
	}{
		{"a SET DateStyle after a SET LOCAL DateStyle TO DEFAULT in its block leaves its field order to no user who sent the same texts", []step{
			{"tom", "SET DateStyle = 'German'"},
			{"tom", "SET DateStyle = 'ISO'"},
			{"hq", "SET DateStyle = 'German'"},
			{"hq", "BEGIN"},
			{"hq", "SET LOCAL DateStyle TO DEFAULT"},
			{"hq", "SET DateStyle = 'ISO'"},
			{"hq", "COMMIT"},
		}, "DateStyle"},
		{"a SET TIME ZONE INTERVAL after a SET LOCAL IntervalStyle TO DEFAULT in its block leaves its time zone to no user who sent the same texts", []step{
			{"tom", "SET IntervalStyle = 'sql_standard'"},
			{"tom", "SET TIME ZONE INTERVAL '-2 hours 30 minutes' HOUR TO MINUTE"},
			{"hq", "SET IntervalStyle = 'sql_standard'"},
			{"hq", "BEGIN"},
			{"hq", "SET LOCAL IntervalStyle TO DEFAULT"},
			{"hq", "SET TIME ZONE INTERVAL '-2 hours 30 minutes' HOUR TO MINUTE"},
			{"hq", "COMMIT"},
		}, "TimeZone"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := map[string]string{"hq": alone(t, "hq", tc.show, tc.steps), "tom": alone(t, "tom", tc.show, tc.steps)}
			if want["hq"] == want["tom"] {
				t.Fatalf("both users' steps give %q: the case shows nothing", want["hq"])
			}
			conns := map[string]*pgx.Conn{"hq": p.Connect(t, "hq"), "tom": p.Connect(t, "tom")}
			defer conns["hq"].Close(ctx)
			defer conns["tom"].Close(ctx)
			for _, s := range tc.steps {
				if _, err := proxytest.RoundTrip(t, conns[s.user], &pgproto3.Query{String: s.sql}); err != nil {
					t.Logf("%s: %s: %v", s.user, s.sql, err)
				}
			}
			for _, u := range []string{"tom", "hq"} {
				rows, err := proxytest.RoundTrip(t, conns[u], &pgproto3.Query{String: "SHOW " + tc.show})
				if err != nil && strings.Contains(err.Error(), "53300") {
					t.Logf("%s waited in vain for the backend the other keeps: %v", u, err)
				} else if err != nil || len(rows) != 1 || rows[0] != want[u] {
					t.Errorf("%s's session: %s %q, %v; want %q", u, tc.show, rows, err, want[u])
				}
			}
		})
	}
}

// TestPoolIsolation18UnrunSettings holds transaction pooling, on a pool
// of one backend, to counting a SET or RESET among a session's settings
// when, and where, it runs: a Parse of one that is never executed
// changes nothing upstream, one executed in a later batch of its block
// changes the setting after what the session sent in between, and a
// Query after a ROLLBACK of its batch runs outside the block. Each case
// runs hq's batches, then reads TimeZone as tom, who set nothing, and
// as hq.
func TestPoolIsolation18UnrunSettings(t *testing.T) {
	proxytest.OnEveryRelay(t, testPoolIsolation18UnrunSettings)
}

func testPoolIsolation18UnrunSettings(t *testing.T, relay string) {
	p := startPooled(t, relay, 1, 500*time.Millisecond)
	ctx := context.Background()
	const tokyo = "Asia/Tokyo"
	startup := proxytest.Direct(t, "SHOW TimeZone")[0][0]
	if startup == tokyo {
		t.Fatalf("the startup time zone is %s: the cases show nothing", tokyo)
	}
	q := func(sql string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{&pgproto3.Query{String: sql}}
	}
	cases := []struct {
		name    string
		batches [][]pgproto3.FrontendMessage
		// own is hq's time zone afterwards.
		own string
	}{
		{"a RESET parsed in a committed block and never run leaves the session's time zone to no other user", [][]pgproto3.FrontendMessage{
			q("SET TimeZone = 'Asia/Tokyo'"),
			q("BEGIN"),
			{&pgproto3.Parse{Query: "RESET TimeZone"}, &pgproto3.Sync{}},
			q("COMMIT"),
		}, tokyo},
		{"a RESET parsed, then passed over for another statement's SET tag, leaves the session's time zone to no other user", [][]pgproto3.FrontendMessage{
			q("SET TimeZone = 'Asia/Tokyo'"),
			{
				&pgproto3.Parse{Query: "RESET TimeZone"},
				&pgproto3.Parse{Name: "local18", Query: "SET LOCAL work_mem = '8MB'"},
				&pgproto3.Bind{PreparedStatement: "local18"}, &pgproto3.Execute{}, &pgproto3.Sync{},
			},
		}, tokyo},
		{"a SET Query after a ROLLBACK executed in its batch runs outside the block, and leaves its time zone to no other user", [][]pgproto3.FrontendMessage{
			q("BEGIN"),
			{&pgproto3.Parse{Query: "ROLLBACK"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Query{String: "SET TimeZone = 'Asia/Tokyo'"}},
		}, tokyo},
		{"a RESET whose portal is executed only after its implicit transaction ended leaves the session's time zone to no other user", [][]pgproto3.FrontendMessage{
			q("SET TimeZone = 'Asia/Tokyo'"),
			{
				&pgproto3.Parse{Query: "RESET TimeZone"}, &pgproto3.Bind{DestinationPortal: "late18"},
				&pgproto3.Parse{Name: "local18b", Query: "SET LOCAL work_mem = '8MB'"},
				&pgproto3.Bind{PreparedStatement: "local18b"}, &pgproto3.Execute{}, &pgproto3.Sync{},
				&pgproto3.Execute{Portal: "late18"}, &pgproto3.Sync{},
			},
		}, tokyo},
		{"a RESET whose portal is executed only after a COMMIT in its batch leaves the session's time zone to no other user", [][]pgproto3.FrontendMessage{
			q("SET TimeZone = 'Asia/Tokyo'"),
			q("BEGIN"),
			{
				&pgproto3.Parse{Query: "RESET TimeZone"}, &pgproto3.Bind{DestinationPortal: "late18"},
				&pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Bind{}, &pgproto3.Execute{},
				&pgproto3.Execute{Portal: "late18"}, &pgproto3.Sync{},
			},
		}, tokyo},
		{"a SET whose portal runs in a later batch of its block, after a RESET, leaves its time zone to no other user", [][]pgproto3.FrontendMessage{
			q("BEGIN"),
			{&pgproto3.Parse{Query: "SET TimeZone = 'Asia/Tokyo'"}, &pgproto3.Bind{DestinationPortal: "later18"}, &pgproto3.Sync{}},
			q("RESET TimeZone"),
			{&pgproto3.Execute{Portal: "later18"}, &pgproto3.Sync{}},
			q("COMMIT"),
		}, tokyo},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hq, tom := p.Connect(t, "hq"), p.Connect(t, "tom")
			defer hq.Close(ctx)
			defer tom.Close(ctx)
			for _, b := range tc.batches {
				if _, err := proxytest.RoundTrip(t, hq, b...); err != nil {
					t.Logf("hq: %v", err)
				}
			}
			rows, err := proxytest.RoundTrip(t, tom, &pgproto3.Query{String: "SHOW TimeZone"})
			if err != nil && strings.Contains(err.Error(), "53300") {
				t.Logf("hq kept the backend: %v", err)
			} else if err != nil || len(rows) != 1 || rows[0] != startup {
				t.Errorf("another user's session: TimeZone %q, %v; want %q", rows, err, startup)
			}
			rows, err = proxytest.RoundTrip(t, hq, &pgproto3.Query{String: "SHOW TimeZone"})
			if err != nil || len(rows) != 1 || rows[0] != tc.own {
				t.Errorf("the session itself: TimeZone %q, %v; want %q", rows, err, tc.own)
			}
		})
	}
}
