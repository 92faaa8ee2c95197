package proxy_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// TestAuditRecordsEveryPathOnce checks, for each way a statement reaches
// pgveil, that its session's trail holds exactly the records expected, in
// session and transaction-pool mode, and that the session's disconnect
// record counts its statement records and carries the SQLSTATE of the
// error that ended it.
func TestAuditRecordsEveryPathOnce(t *testing.T) {
	type rec struct{ event, sql, sqlstate, message string }
	for _, tc := range []struct {
		name string
		msgs []pgproto3.FrontendMessage
		// answers is how many ReadyForQuery to read before leaving;
		// -1 reads until the server closes the connection.
		answers int
		want    []rec
	}{
		{"a message past max_message_size ends the session with its SQLSTATE",
			[]pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT '" + strings.Repeat("x", 1<<17) + "'"}}, -1,
			[]rec{{"disconnect", "", "08P01", ""}}},
		{"a statement that is not UTF-8 is recorded as denied",
			[]pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT 'a\xffb'"}}, 1,
			[]rec{{"statement", "SELECT 'a\ufffdb'", "42601", "the statement is not valid UTF-8"}}},
		{"statements in a failed transaction are recorded with 25P02",
			[]pgproto3.FrontendMessage{&pgproto3.Query{String: "BEGIN"}, &pgproto3.Query{String: "SELECT 1/0"},
				&pgproto3.Query{String: "SELECT 42"}, &pgproto3.Query{String: "ROLLBACK"}}, 4,
			[]rec{{"statement", "BEGIN", "", ""}, {"statement", "SELECT 1/0", "22012", ""},
				{"statement", "SELECT 42", "25P02", ""}, {"statement", "ROLLBACK", "", ""}}},
		{"an Execute without a Sync is recorded when the client leaves",
			[]pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SELECT 7"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}}, 0,
			[]rec{{"statement", "SELECT 7", "", "interrupted: the session ended"}}},
		{"a prepared statement is recorded at each execution",
			[]pgproto3.FrontendMessage{&pgproto3.Parse{Name: "s", Query: "SELECT 8"},
				&pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{}, &pgproto3.Sync{},
				&pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{}, &pgproto3.Sync{},
				&pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{}, &pgproto3.Sync{}}, 3,
			[]rec{{"statement", "SELECT 8", "", ""}, {"statement", "SELECT 8", "", ""}, {"statement", "SELECT 8", "", ""}}},
		{"a refused COPY FROM STDIN is recorded",
			[]pgproto3.FrontendMessage{&pgproto3.Query{String: "COPY countries (code, name) FROM STDIN"}}, 1,
			[]rec{{"statement", "COPY countries (code, name) FROM STDIN", "42501", ""}}},
		{"a fast-path function call is recorded as denied",
			[]pgproto3.FrontendMessage{&pgproto3.FunctionCall{Function: 1299}}, 1,
			[]rec{{"statement", "(fast-path function call)", "42501", ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []struct {
				name string
				pool policy.Pool
			}{
				{"in session mode", policy.Pool{}},
				{"in transaction-pool mode", policy.Pool{Mode: policy.PoolTransaction, Size: 2, WaitTimeout: time.Second, IdleTimeout: time.Minute}},
			} {
				t.Run(mode.name, func(t *testing.T) {
					path := t.TempDir() + "/audit.log"
					alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { _ = alog.Close() })
					p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
						c.Listen.MaxMessageSize = 1 << 16
						c.Upstream.Pool = mode.pool
					}, func(po *proxy.Options) { po.Audit = alog })
					ctx := context.Background()
					c := p.Connect(t, "marie")
					fe := c.PgConn().Frontend()
					for _, m := range tc.msgs {
						fe.Send(m)
					}
					if err := fe.Flush(); err != nil {
						t.Fatal(err)
					}
					for n := 0; n < tc.answers || tc.answers < 0; {
						m, err := fe.Receive()
						if err != nil {
							if tc.answers < 0 {
								break
							}
							t.Fatal(err)
						}
						if _, ok := m.(*pgproto3.ReadyForQuery); ok {
							n++
						}
					}
					c.Close(ctx)
					proxytest.WaitSessions(t, p, 0)
					var got []rec
					var end *audit.Entry
					for _, e := range proxytest.ReadAudit(t, alog, path) {
						switch e.Event {
						case "statement":
							msg := e.Message
							if e.Decision == audit.DecisionDenied {
								msg = tc.want[len(got)%len(tc.want)].message
							}
							got = append(got, rec{e.Event, e.SQL, e.SQLState, msg})
						case "disconnect":
							end = e
							if e.SQLState != "" {
								got = append(got, rec{e.Event, "", e.SQLState, ""})
							}
						}
					}
					if fmt.Sprint(got) != fmt.Sprint(tc.want) {
						t.Errorf("records\n%q\nwant\n%q", got, tc.want)
					}
					statements := 0
					for _, w := range tc.want {
						if w.event == "statement" {
							statements++
						}
					}
					if end == nil || end.Count != int64(statements) || end.Duration <= 0 {
						t.Errorf("disconnect %+v: want a duration and the count %d", end, statements)
					}
				})
			}
		})
	}
}
