package proxy_test

import (
	"context"
	"strings"
	"testing"

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
	path := pooledDemo(t, 1)
	p, _ := startDemoFrom(t, path)
	ctx := context.Background()
	type step struct{ user, sql string }
	// alone reads show after the steps of user, run on a connection of
	// its own upstream.
	alone := func(t *testing.T, user, show string, steps []step) string {
		c, err := cluster.Connect(ctx, demoDB)
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
			conns := map[string]*pgx.Conn{"hq": p.connect(t, "hq"), "tom": p.connect(t, "tom")}
			defer conns["hq"].Close(ctx)
			defer conns["tom"].Close(ctx)
			for _, s := range tc.steps {
				if _, err := roundTrip(t, conns[s.user], &pgproto3.Query{String: s.sql}); err != nil {
					t.Logf("%s: %s: %v", s.user, s.sql, err)
				}
			}
			for _, u := range []string{"tom", "hq"} {
				rows, err := roundTrip(t, conns[u], &pgproto3.Query{String: "SHOW " + tc.show})
				if err != nil && strings.Contains(err.Error(), "53300") {
					t.Logf("%s waited in vain for the backend the other keeps: %v", u, err)
				} else if err != nil || len(rows) != 1 || rows[0] != want[u] {
					t.Errorf("%s's session: %s %q, %v; want %q", u, tc.show, rows, err, want[u])
				}
			}
		})
	}
}
