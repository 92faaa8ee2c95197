package proxy_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestEndedSessionLeavesNoStatementRunning is, in session mode,
// TestTransactionPoolEndedSessionLeavesNoStatementRunning: a session
// pgveil ends while its statement runs (a protocol violation) has it
// cancelled; left running, its backend outlived the session, out of every
// per-user cap, for a loop of such sessions to fill max_connections.
func TestEndedSessionLeavesNoStatementRunning(t *testing.T) {
	p := proxytest.StartDemo(t)
	mark := fmt.Sprintf("orphan session %d", time.Now().UnixNano())
	running := func() int {
		var i int
		fmt.Sscan(proxytest.Direct(t, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%"+mark+"%' AND query NOT LIKE '%pg_stat_activity%'")[0][0], &i)
		return i
	}
	c := p.Connect(t, "hq")
	fe := c.PgConn().Frontend()
	fe.Send(&pgproto3.Query{String: "SELECT pg_sleep(60), '" + mark + "'"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	proxytest.Eventually(t, 5*time.Second, "the statement to run", func() bool { return running() == 1 })
	if _, err := c.PgConn().Conn().Write([]byte{'z', 0, 0, 0, 4}); err != nil {
		t.Fatal(err)
	}
	proxytest.Eventually(t, 5*time.Second, "the ended session's statement to stop upstream", func() bool { return running() == 0 })
}
