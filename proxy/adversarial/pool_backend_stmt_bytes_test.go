package adversarial_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"
)

// A pooled backend keeps the statements of the sessions it served when
// they end, for the next to reuse: bounded in number
// (maxBackendStatements) and, since a red team's loop of sessions each
// preparing the 32 MiB of statements a session may hold left them all on
// the one backend (783 MiB of PostgreSQL's memory after eight sessions,
// up to 2000 statements of up to 1 MiB each), in bytes too
// (maxBackendStatementBytes), however many sessions came and went. A
// direct connection's statements die with it.
func TestPooledBackendStatementBytesBounded(t *testing.T) {
	p, _ := proxytest.StartDemoFrom(t, proxytest.PooledDemo(t, 1))
	ctx := context.Background()
	const perSession, size = 30, 900 << 10
	sessions := 8
	if proxytest.RaceEnabled {
		// NOTE: each Parse of 900 KiB is parsed by the proxy, slowly
		// under the race detector: the run without it holds the bound
		// with the eight sessions that broke it (783 MiB).
		sessions = 4
	}
	for s := 0; s < sessions; s++ {
		c := p.Connect(t, "marie")
		fe := c.PgConn().Frontend()
		for i := 0; i < perSession; i++ {
			sql := fmt.Sprintf("SELECT id FROM surveys WHERE name = '%d.%d%s'", s, i, strings.Repeat("x", size))
			_, codes := proxytest.SendBatch(t, fe, &pgproto3.Parse{Name: fmt.Sprintf("S_%d", i), Query: sql}, &pgproto3.Sync{})
			if len(codes) == 1 && codes[0] == "54000" && i > 0 {
				// The session's own cap (maxSessionStatementBytes).
				break
			}
			if len(codes) != 0 {
				t.Fatalf("session %d, Parse %d: %v", s, i, codes)
			}
		}
		c.Close(ctx)
	}
	c := p.Connect(t, "marie")
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	// The pool's one backend, upstream.
	rows := proxytest.Direct(t, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
	if len(rows) != 1 {
		t.Fatalf("backends of the pool of 1: %v", rows)
	}
	pid, err := strconv.Atoi(rows[0][0])
	if err != nil {
		t.Fatal(err)
	}
	rss := upstreamRSSMiB(t, pid)
	t.Logf("after %d sessions of statements of %d KiB: the pooled backend's RSS is %d MiB", sessions, size>>10, rss)
	if rss > 512 {
		t.Errorf("the pooled backend holds %d MiB (want at most 512 MiB): the statements of the sessions it served", rss)
	}
}

// upstreamRSSMiB returns the resident memory of the process pid, in MiB.
func upstreamRSSMiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmRSS:" {
			kb, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return kb >> 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}
