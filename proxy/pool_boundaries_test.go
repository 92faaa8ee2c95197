package proxy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPoolSettingsAcrossBoundaries runs, on a pool of one backend,
// SETs whose transaction ends in ways the proxy must read from the
// server's answers, and checks after each that another user's session
// on that backend has the startup DateStyle, and the session its own.
func TestPoolSettingsAcrossBoundaries(t *testing.T) {
	path := proxytest.PooledDemoWait(t, 1, "1s")
	p, _ := proxytest.StartDemoFrom(t, path)
	ctx := context.Background()
	const startup = "ISO, MDY"
	set := &pgproto3.Parse{Query: "SET DateStyle = 'German'"}
	cases := []struct {
		name string
		msgs []pgproto3.FrontendMessage
		// want is the session's DateStyle afterwards.
		want string
	}{
		{"a SET committed by a COMMIT in its batch, then an error", []pgproto3.FrontendMessage{
			set, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
		}, "German, DMY"},
		{"a SET made a block by a Query BEGIN, rolled back", []pgproto3.FrontendMessage{
			set, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{},
			&pgproto3.Query{String: "BEGIN"}, &pgproto3.Query{String: "ROLLBACK"},
		}, startup},
		{"a SET made a block by a Query BEGIN, committed", []pgproto3.FrontendMessage{
			set, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{},
			&pgproto3.Query{String: "BEGIN"}, &pgproto3.Query{String: "COMMIT"},
		}, "German, DMY"},
		{"a SET committed by a Query after it, no Sync", []pgproto3.FrontendMessage{
			set, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{},
			&pgproto3.Query{String: "SELECT 1"},
		}, "German, DMY"},
		{"a SET rolled back by a failing Query after it, no Sync", []pgproto3.FrontendMessage{
			set, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Query{String: "SELECT 1/0"}, &pgproto3.Sync{},
		}, startup},
		{"a SET in a block committed AND CHAIN, then rolled back", []pgproto3.FrontendMessage{
			&pgproto3.Query{String: "BEGIN"}, &pgproto3.Query{String: "SET DateStyle = 'German'"},
			&pgproto3.Query{String: "COMMIT AND CHAIN"}, &pgproto3.Query{String: "ROLLBACK"},
		}, "German, DMY"},
		{"a SET in a block rolled back AND CHAIN, then committed", []pgproto3.FrontendMessage{
			&pgproto3.Query{String: "BEGIN"}, &pgproto3.Query{String: "SET DateStyle = 'German'"},
			&pgproto3.Query{String: "ROLLBACK AND CHAIN"}, &pgproto3.Query{String: "COMMIT"},
		}, startup},
		{"a SET with a ROLLBACK in its batch, then a SELECT", []pgproto3.FrontendMessage{
			set, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "ROLLBACK"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
		}, startup},
		{"a SET, an implicit COMMIT of a BEGIN-less block and a ROLLBACK", []pgproto3.FrontendMessage{
			set, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "ROLLBACK"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
		}, "German, DMY"},
		{"a SET then a Sync inside the same implicit transaction as a refused statement", []pgproto3.FrontendMessage{
			set, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "SELECT * FROM pg_stat_activity"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
		}, startup},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := p.Connect(t, "hq"), p.Connect(t, "tom")
			_, _ = proxytest.RoundTrip(t, a, tc.msgs...)
			rows, err := proxytest.RoundTrip(t, b, &pgproto3.Query{String: "SHOW DateStyle"})
			if err != nil && strings.Contains(err.Error(), "53300") {
				t.Logf("the session kept its backend")
				return
			}
			if err != nil || len(rows) != 1 || rows[0] != startup {
				t.Errorf("another user's session: DateStyle %q, %v", rows, err)
			}
			rows, err = proxytest.RoundTrip(t, a, &pgproto3.Query{String: "SHOW DateStyle"})
			if err != nil || len(rows) != 1 || rows[0] != tc.want {
				t.Errorf("the session: DateStyle %q, %v; want %q", rows, err, tc.want)
			}
			rows, err = proxytest.RoundTrip(t, b, &pgproto3.Query{String: "SHOW DateStyle"})
			if err != nil || len(rows) != 1 || rows[0] != startup {
				t.Errorf("another user's session, after: DateStyle %q, %v", rows, err)
			}
			a.Close(ctx)
			b.Close(ctx)
		})
	}
}
