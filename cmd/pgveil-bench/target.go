package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Names of the paths to the database, in report order. pgveil runs three
// times in session mode: "pgveil" governs no table (the proxy and the
// firewall's parse and check), "pgveil-governed" governs pgbench_accounts
// with a row rule (the rewrite too), and "pgveil-audited" is
// pgveil-governed writing the audit trail, as a deployment runs it. The transaction-pool phase has a PgBouncer and a
// pgveil of its own, both pooling by transaction: "pgveil-pool" has the
// policy of "pgveil".
const (
	targetDirect         = "direct"
	targetPgBouncer      = "pgbouncer"
	targetPgveil         = "pgveil"
	targetPgveilGoverned = "pgveil-governed"
	targetPgveilAudited  = "pgveil-audited"
	targetPgBouncerTx    = "pgbouncer-tx"
	targetPgveilPool     = "pgveil-pool"
)

// benchDatabase is the database every target serves.
const benchDatabase = "bench"

// target is one way for a client to reach the bench database.
type target struct {
	name     string
	host     string
	port     int
	user     string
	password string
	// proc is the proxy process; nil for direct connections.
	proc *child
	// auditFile is the audit trail pgveil writes, keyed by auditKey; ""
	// when it writes none.
	auditFile, auditKey string
	// appName is the application_name pgbench's clients give (PGAPPNAME);
	// "" leaves pgbench's own.
	appName string
	// backendApps are the application_names of the upstream backends
	// the proxy holds while pgbench runs through it, by which they are
	// counted in pg_stat_activity; "" when they are not counted.
	backendApps [2]string
}

// connString returns a libpq keyword/value connection string for the
// target, without TLS.
func (t *target) connString() string {
	return fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable connect_timeout=10",
		t.host, t.port, t.user, t.password, benchDatabase)
}

// connect opens a connection to the target.
func (t *target) connect(ctx context.Context) (*pgconn.PgConn, error) {
	conn, err := pgconn.Connect(ctx, t.connString())
	if err != nil {
		return nil, fmt.Errorf("connect to %s (%s:%d as %s): %w", t.name, t.host, t.port, t.user, err)
	}
	return conn, nil
}

// alive returns an error when the target's proxy process has exited.
func (t *target) alive() error {
	if t.proc != nil && t.proc.exited() {
		return fmt.Errorf("%s: %w (%v); its log ends with:\n%s", t.name, errExited, t.proc.err, t.proc.logTail(2048))
	}
	return nil
}

// waitReady polls until a client can connect to the target and run a
// query, the proxy process exits, or timeout passes.
func (t *target) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := t.alive(); err != nil {
			return err
		}
		err := t.ping(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("%s not ready after %v: %v", t.name, timeout, err)
			if t.proc != nil {
				msg += "; its log ends with:\n" + t.proc.logTail(2048)
			}
			return fmt.Errorf("%s", msg)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ping connects and runs a trivial query.
func (t *target) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := t.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		return fmt.Errorf("query through %s: %w", t.name, err)
	}
	return nil
}
