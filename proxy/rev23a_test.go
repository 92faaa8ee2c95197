package proxy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/proxy"
)

// TestRev23aUnnamedSet holds, in a transaction-mode session whose
// backend's unnamed statement is a SET the session rolled back, each way
// the unnamed statement can change or stay upstream before a Bind of it
// in a later batch: a Query that runs or is skipped, a Parse that fails
// upstream, is refused or is skipped, a Close, a Describe. Whatever the
// server does, no other session reads the SET, and the session reads
// its own settings the same way twice.
func TestRev23aUnnamedSet(t *testing.T) {
	proxytest.OnEveryRelay(t, rev23aUnnamedSet)
}

func rev23aUnnamedSet(t *testing.T, relay string) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	p := startPooled(t, relay, 2, 5*time.Second)
	tz := func(t *testing.T, c *pgx.Conn) string {
		t.Helper()
		var s string
		if err := c.QueryRow(ctx, "SHOW TimeZone").Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	// fails upstream at its Parse (the input function of int runs in
	// parse analysis), not refused by pgveil.
	const bad = "SELECT 'x'::int"
	bindAgain := []pgproto3.FrontendMessage{&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}
	for _, tc := range []struct {
		name string
		// between runs after the ROLLBACK, ahead of a Bind of the
		// unnamed statement in a batch of its own; syncs counts its
		// ReadyForQuery messages.
		between []pgproto3.FrontendMessage
		syncs   int
		// ran reports whether the server runs the SET again (its
		// CommandComplete); kept whether the session then keeps its
		// backend: -1 for either.
		ran  bool
		kept int
	}{
		{"a Query that runs drops it", []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT 1"}}, 1, false, -1},
		{"a Query skipped after an error keeps it", []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "bad", Query: bad}, &pgproto3.Query{String: "SELECT 1"}, &pgproto3.Sync{}}, 1, true, 1},
		{"a Parse of the unnamed statement that fails upstream drops it", []pgproto3.FrontendMessage{&pgproto3.Parse{Query: bad}, &pgproto3.Sync{}}, 1, false, -1},
		// NOTE: PostgreSQL would bind the SET; pgveil binds the
		// client's last Parse (tracker: closed first, prepared again).
		{"a Parse of the unnamed statement skipped after an error keeps it", []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "bad", Query: bad}, &pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Sync{}}, 1, false, -1},
		{"a Parse of the unnamed statement refused after an error keeps it", []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "bad", Query: bad}, &pgproto3.Parse{Query: "SELECT set_config('pgveil.act_for', 'hq', false)"}, &pgproto3.Sync{}}, 1, false, -1},
		{"a Parse of the unnamed statement refused drops it", []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SELECT set_config('pgveil.act_for', 'hq', false)"}, &pgproto3.Sync{}}, 1, false, 0},
		{"a Close of the unnamed statement drops it", []pgproto3.FrontendMessage{&pgproto3.Close{ObjectType: 'S'}, &pgproto3.Sync{}}, 1, false, -1},
		// NOTE: PostgreSQL would run the SET again; pgveil's Bind fails
		// (26000) and the session keeps its backend all the same.
		{"a Close of the unnamed statement skipped after an error keeps it", []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "bad", Query: bad}, &pgproto3.Close{ObjectType: 'S'}, &pgproto3.Sync{}}, 1, false, -1},
		{"a Describe keeps it", []pgproto3.FrontendMessage{&pgproto3.Describe{ObjectType: 'S'}, &pgproto3.Sync{}}, 1, true, 1},
		{"a Query that runs, then one skipped after an error, drop it", []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT 1"}, &pgproto3.Parse{Name: "bad", Query: bad}, &pgproto3.Query{String: "SELECT 2"}, &pgproto3.Sync{}}, 2, false, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := p.Connect(t, "metabase"), p.Connect(t, "metabase")
			defer a.Close(ctx)
			defer b.Close(ctx)
			was := tz(t, b)
			// A SET in a block the client rolls back: the session keeps
			// no TimeZone, the backend's unnamed statement is the SET.
			for _, batch := range [][]pgproto3.FrontendMessage{
				{&pgproto3.Query{String: "BEGIN"}},
				{&pgproto3.Parse{Query: "SET TimeZone = 'Asia/Tokyo'"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
			} {
				if _, err := proxytest.RoundTrip(t, a, batch...); err != nil {
					t.Fatal(err)
				}
			}
			msgs := []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "rb", Query: "ROLLBACK"}, &pgproto3.Bind{PreparedStatement: "rb"}, &pgproto3.Execute{}, &pgproto3.Sync{}}
			msgs = append(append(msgs, tc.between...), bindAgain...)
			answers := rev23aPipeline(t, a, 2+tc.syncs, msgs...)
			n, why := proxy.KeptBackends(p.Server)
			t.Logf("answers %s; kept %d %q", answers, n, why)
			if ran := strings.HasSuffix(answers, "SET Z"); ran != tc.ran {
				t.Errorf("the SET ran again: %v, want %v (%s)", ran, tc.ran, answers)
			}
			if tc.kept >= 0 && n != tc.kept {
				t.Errorf("%d sessions keep their backend (%q), want %d", n, why, tc.kept)
			}
			for range 3 {
				if got := tz(t, b); got != was {
					t.Fatalf("another session reads TimeZone %s, want %s", got, was)
				}
			}
			if first, again := tz(t, a), tz(t, a); first != again {
				t.Fatalf("the session reads TimeZone %s, then %s", first, again)
			}
		})
	}

	t.Run("a Bind of the unnamed statement with none parsed never runs another session's SET left on the backend", func(t *testing.T) {
		p := startPooled(t, relay, 1, 5*time.Second)
		for _, between := range [][]pgproto3.FrontendMessage{
			nil,
			{&pgproto3.Parse{Name: "bad", Query: bad}, &pgproto3.Parse{Query: "SELECT set_config('pgveil.act_for', 'hq', false)"}, &pgproto3.Sync{}},
		} {
			a, b := p.Connect(t, "metabase"), p.Connect(t, "metabase")
			was := tz(t, b)
			for _, batch := range [][]pgproto3.FrontendMessage{
				{&pgproto3.Query{String: "BEGIN"}},
				{&pgproto3.Parse{Query: "SET TimeZone = 'Asia/Tokyo'"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
				{&pgproto3.Parse{Name: "rb", Query: "ROLLBACK"}, &pgproto3.Bind{PreparedStatement: "rb"}, &pgproto3.Execute{}, &pgproto3.Sync{}},
				between,
			} {
				if batch != nil {
					_, _ = proxytest.RoundTrip(t, a, batch...)
				}
			}
			// The one backend, which a's unnamed SET may still be on.
			if _, err := proxytest.RoundTrip(t, b, bindAgain...); err == nil {
				t.Fatal("a Bind of an unnamed statement the session never parsed passed")
			}
			for _, c := range []*pgx.Conn{a, b, b} {
				if got := tz(t, c); got != was {
					t.Fatalf("a session reads TimeZone %s, want %s", got, was)
				}
			}
			if n, why := proxy.KeptBackends(p.Server); n != 0 {
				t.Errorf("%d sessions keep their backend: %q", n, why)
			}
			a.Close(ctx)
			b.Close(ctx)
		}
	})
	t.Run("an unnamed switch, then a Query that runs or is skipped, then a Bind of it: the session acts for whom PostgreSQL says", func(t *testing.T) {
		p := startPooled(t, relay, 2, 5*time.Second)
		for _, tc := range []struct {
			name   string
			before []pgproto3.FrontendMessage
			want   string
			tags   string
		}{
			{"run", []pgproto3.FrontendMessage{&pgproto3.Query{String: "RESET ROLE"}}, "", "RESET Z 26000 Z"},
			{"skipped", []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "bad", Query: bad}, &pgproto3.Query{String: "RESET ROLE"}, &pgproto3.Sync{}}, "marie", "22P02 Z SET Z"},
		} {
			a, b := p.Connect(t, "metabase"), p.Connect(t, "metabase")
			if err := actExec(ctx, a, "SET ROLE marie", true); err != nil {
				t.Fatal(err)
			}
			// NOTE: the Bind waits for the answers: a switch pipelined
			// after other statements is refused (actfor.go).
			if got := rev23aPipeline(t, a, 1, tc.before...) + " " + rev23aPipeline(t, a, 1, bindAgain...); got != tc.tags {
				t.Errorf("%s: answers %s, want %s", tc.name, got, tc.tags)
			}
			for _, c := range []struct {
				c    *pgx.Conn
				want string
			}{{a, tc.want}, {b, ""}, {a, tc.want}, {b, ""}} {
				if act, err := actShow(ctx, c.c); err != nil || act != c.want {
					t.Fatalf("%s: pgveil.act_for upstream is %q (%v), want %q", tc.name, act, err, c.want)
				}
			}
			a.Close(ctx)
			b.Close(ctx)
		}
	})
}

// rev23aPipeline sends msgs to c in one flush and returns the tags, error
// codes and ReadyForQuery messages (Z) of the answers, up to the ready-th
// ReadyForQuery: a Query the server skips after an error has none.
func rev23aPipeline(t *testing.T, c *pgx.Conn, ready int, msgs ...pgproto3.FrontendMessage) string {
	t.Helper()
	fe := c.PgConn().Frontend()
	for _, m := range msgs {
		fe.Send(m)
	}
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = c.PgConn().Conn().SetReadDeadline(time.Now().Add(10 * time.Second))
	defer func() { _ = c.PgConn().Conn().SetReadDeadline(time.Time{}) }()
	var got []string
	for ready > 0 {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *pgproto3.ReadyForQuery:
			ready--
			got = append(got, "Z")
		case *pgproto3.CommandComplete:
			got = append(got, string(m.CommandTag))
		case *pgproto3.ErrorResponse:
			got = append(got, m.Code)
		}
	}
	return strings.Join(got, " ")
}
