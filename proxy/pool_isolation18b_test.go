package proxy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPoolIsolation18bPortalNames holds transaction pooling, on a pool
// of one backend, to following a portal of a SET or RESET by the name
// PostgreSQL keys it by (its first 63 bytes): two spellings of a longer
// name are one portal upstream, and a session that counted a RESET run
// that never ran, or missed a SET that ran, left its time zone to the
// next user on the backend. Each case runs hq's batches, then reads
// TimeZone as tom, who set nothing, and as hq.
func TestPoolIsolation18bPortalNames(t *testing.T) {
	proxytest.OnEveryRelay(t, testPoolIsolation18bPortalNames)
}

func testPoolIsolation18bPortalNames(t *testing.T, relay string) {
	p := startPooled(t, relay, 1, 500*time.Millisecond)
	ctx := context.Background()
	const tokyo = "Asia/Tokyo"
	startup := proxytest.Direct(t, "SHOW TimeZone")[0][0]
	if startup == tokyo {
		t.Fatalf("the startup time zone is %s: the cases show nothing", tokyo)
	}
	// long and other are two spellings of one portal upstream.
	long, other := strings.Repeat("p", 63)+"1", strings.Repeat("p", 63)+"2"
	q := func(sql string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{&pgproto3.Query{String: sql}}
	}
	cases := []struct {
		name    string
		batches [][]pgproto3.FrontendMessage
		// own is hq's time zone afterwards.
		own string
	}{
		{"a RESET portal closed under another spelling of its name, and the name bound to a SET LOCAL, is not counted as run", [][]pgproto3.FrontendMessage{
			q("SET TimeZone = 'Asia/Tokyo'"),
			{
				&pgproto3.Parse{Query: "RESET TimeZone"}, &pgproto3.Bind{DestinationPortal: long},
				&pgproto3.Close{ObjectType: 'P', Name: other},
				&pgproto3.Parse{Name: "local18b", Query: "SET LOCAL work_mem = '8MB'"},
				&pgproto3.Bind{DestinationPortal: other, PreparedStatement: "local18b"},
				&pgproto3.Execute{Portal: long}, &pgproto3.Sync{},
			},
		}, tokyo},
		{"a SET portal executed under another spelling of its name, then closed and the name bound again, is counted as run", [][]pgproto3.FrontendMessage{
			{
				&pgproto3.Parse{Query: "SET TimeZone = 'Asia/Tokyo'"}, &pgproto3.Bind{DestinationPortal: long},
				&pgproto3.Execute{Portal: other},
				&pgproto3.Close{ObjectType: 'P', Name: long},
				&pgproto3.Parse{Name: "one18b", Query: "SELECT 1"},
				&pgproto3.Bind{DestinationPortal: long, PreparedStatement: "one18b"},
				&pgproto3.Execute{Portal: long}, &pgproto3.Sync{},
			},
		}, tokyo},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hq, tom := p.Connect(t, "hq"), p.Connect(t, "tom")
			defer hq.Close(ctx)
			defer tom.Close(ctx)
			for _, b := range tc.batches {
				if _, err := proxytest.RoundTrip(t, hq, b...); err != nil {
					t.Fatalf("hq: %v", err)
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

// TestPoolIsolation18bResetAllAfterOthers holds transaction pooling, on
// a pool of one backend, to following a RESET ALL of the extended
// protocol that runs after another statement of its batch: its Parse is
// not counted among the batch's statements (it may end acting for a
// user), and a ROLLBACK run before it left it outside the block, run and
// committed, while the session dropped it with the block. The backend,
// recorded as holding hq's time zone, then went without it to tom, who
// sent the same SET.
func TestPoolIsolation18bResetAllAfterOthers(t *testing.T) {
	proxytest.OnEveryRelay(t, testPoolIsolation18bResetAllAfterOthers)
}

func testPoolIsolation18bResetAllAfterOthers(t *testing.T, relay string) {
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
		name string
		hq   [][]pgproto3.FrontendMessage
	}{
		{"a RESET ALL parsed after a ROLLBACK's Parse, executed after it, is the session's", [][]pgproto3.FrontendMessage{
			q("SET TimeZone = 'Asia/Tokyo'"),
			q("BEGIN"),
			{
				&pgproto3.Parse{Name: "rb18b", Query: "ROLLBACK"}, &pgproto3.Parse{Query: "RESET ALL"},
				&pgproto3.Bind{PreparedStatement: "rb18b"}, &pgproto3.Execute{},
				&pgproto3.Bind{DestinationPortal: "all18b"}, &pgproto3.Execute{Portal: "all18b"}, &pgproto3.Sync{},
			},
		}},
		{"a RESET ALL parsed after a ROLLBACK executed in its batch is the session's", [][]pgproto3.FrontendMessage{
			q("SET TimeZone = 'Asia/Tokyo'"),
			{&pgproto3.Parse{Name: "rb18c", Query: "ROLLBACK"}, &pgproto3.Sync{}},
			q("BEGIN"),
			{
				&pgproto3.Bind{PreparedStatement: "rb18c"}, &pgproto3.Execute{},
				&pgproto3.Parse{Query: "RESET ALL"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
			},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hq, tom := p.Connect(t, "hq"), p.Connect(t, "tom")
			defer hq.Close(ctx)
			defer tom.Close(ctx)
			if _, err := proxytest.RoundTrip(t, tom, q("SET TimeZone = 'Asia/Tokyo'")...); err != nil {
				t.Fatalf("tom: %v", err)
			}
			for _, b := range tc.hq {
				if _, err := proxytest.RoundTrip(t, hq, b...); err != nil {
					t.Fatalf("hq: %v", err)
				}
			}
			rows, err := proxytest.RoundTrip(t, tom, &pgproto3.Query{String: "SHOW TimeZone"})
			if err != nil && strings.Contains(err.Error(), "53300") {
				t.Logf("hq kept the backend: %v", err)
			} else if err != nil || len(rows) != 1 || rows[0] != tokyo {
				t.Errorf("tom's session: TimeZone %q, %v; want %q", rows, err, tokyo)
			}
			rows, err = proxytest.RoundTrip(t, hq, &pgproto3.Query{String: "SHOW TimeZone"})
			if err != nil || len(rows) != 1 || rows[0] != startup {
				t.Errorf("the session itself: TimeZone %q, %v; want %q", rows, err, startup)
			}
		})
	}
}
