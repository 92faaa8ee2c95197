package proxy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/policy"
)

// serviceReadback reads back, on a new service connection, what
// ConnectService checks: lc_messages, the backend's own process id and
// the settings pinned in the startup packet. The check interval comes
// from pg_settings, in milliseconds, NULL before PostgreSQL 14.
const serviceReadback = `SELECT pg_catalog.current_setting('lc_messages'), pg_catalog.pg_backend_pid()::pg_catalog.text, ` +
	`pg_catalog.current_setting('search_path'), pg_catalog.current_setting('client_min_messages'), ` +
	`pg_catalog.current_setting('lock_timeout'), ` +
	`(SELECT setting FROM pg_catalog.pg_settings WHERE name OPERATOR(pg_catalog.=) 'client_connection_check_interval')`

// checkIntervalValue is upstream.client_connection_check_interval as
// the startup parameter and pg_settings say it: milliseconds.
// NOTE: within PostgreSQL's range, which the decoder checks; a Config
// built in Go is clamped, as a refused value would refuse every
// connection.
func checkIntervalValue(iv time.Duration) string {
	return strconv.FormatInt(min(max(iv.Milliseconds(), 1), math.MaxInt32), 10)
}

// poolerAdvice is what a DBA configures to run pgveil behind PgBouncer.
const poolerAdvice = "behind PgBouncer, use pool_mode = session, list search_path, client_min_messages, " +
	"lock_timeout and client_connection_check_interval in ignore_startup_parameters, and pin them " +
	"on the service account, lock_timeout excepted (configs/README.md, \"Behind PgBouncer\")"

// serviceLockTimeout sets lock_timeout on a service connection where a
// pooler dropped the startup parameter.
// NOTE: not asked of the service account's role settings, as the others
// are: the sessions log in as that role too, and their statements would
// give up a lock wait after 5 s behind a pooler only. Run once the
// pooler was found not to share backends; in session mode, its
// server_reset_query (DISCARD ALL) resets it when pgveil lets go.
const serviceLockTimeout = "SET lock_timeout = '5s'"

// checkServicePins refuses a service connection on which a setting
// pinned in its startup packet does not hold (row is serviceReadback's
// answer, startupPID the process id the server announced). PostgreSQL
// applies a startup parameter over any role or database default, so a
// mismatch means a pooler in between refused to pass it on: PgBouncer
// drops the parameters listed in ignore_startup_parameters silently.
// Running on would let an object of the service account's own schema
// shadow a catalog function the rewriter resolves in the pinned path.
// NOTE: lock_timeout, ConnectService's own pin, is not checked here:
// ConnectService sets it itself where it does not hold (serviceLockTimeout).
func checkServicePins(cfg *policy.Config, row [][]byte) error {
	u := &cfg.Upstream
	role := quoteIdent(u.User)
	db := quoteIdent(u.Database)
	if got, want := SearchPath(string(row[2]), u.User), SearchPath(u.SearchPath, u.User); !slices.Equal(got, want) {
		return fmt.Errorf("the upstream connection's search_path is %q, not %q as pgveil pinned it: the startup parameter did not reach PostgreSQL "+
			"(PgBouncer drops the ones ignore_startup_parameters lists); as a superuser, run ALTER ROLE %s IN DATABASE %s SET search_path = %s; %s",
			row[2], u.SearchPath, role, db, u.SearchPath, poolerAdvice)
	}
	if got := string(row[3]); got != "notice" {
		return fmt.Errorf("the upstream connection's client_min_messages is %q, not \"notice\" as pgveil pinned it: the startup parameter did not reach PostgreSQL; "+
			"run ALTER ROLE %s IN DATABASE %s SET client_min_messages = notice; %s", got, role, db, poolerAdvice)
	}
	if iv := u.ClientConnectionCheckInterval; iv > 0 && row[5] != nil {
		if got, want := string(row[5]), checkIntervalValue(iv); got != want {
			return fmt.Errorf("the upstream connection's client_connection_check_interval is %sms, not %sms as pgveil pinned it: the startup parameter did not reach PostgreSQL; "+
				"run ALTER ROLE %s IN DATABASE %s SET client_connection_check_interval = %s, or set upstream.client_connection_check_interval = \"0\"; %s",
				got, want, role, db, want, poolerAdvice)
		}
	}
	return nil
}

// poolerHint adds poolerAdvice to a pooler's refusal of a startup
// parameter: PgBouncer answers one it does not know with 08P01
// "unsupported startup parameter", which says nothing of what to do.
func poolerHint(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "08P01" && strings.Contains(pe.Message, "unsupported startup parameter") {
		return fmt.Errorf("%w; the upstream is a connection pooler: %s", err, poolerAdvice)
	}
	return err
}

// poolers maps an upstream address to whether the last service
// connection found a pooler there (ConnectService, at each start and
// reload): its sessions' connections are then read back too.
var poolers sync.Map

// behindPooler reports whether the upstream at address is a pooler.
func behindPooler(address string) bool {
	v, ok := poolers.Load(address)
	return ok && v.(bool)
}

// backendPID reads a process id as serviceReadback and checkPinned
// answer it: text.
func backendPID(v []byte) (uint32, error) {
	pid, err := strconv.ParseUint(string(v), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("reading the upstream backend's process id: %w", err)
	}
	return uint32(pid), nil
}

// checkSharedBackends refuses a pooler that runs the statements of
// different connections on one backend (PgBouncer's transaction or
// statement mode): a setting one pgveil session changes with SET, or a
// statement it prepares, would reach another's, and the cancel keys and
// the audit trail's process ids name no backend. pc is a service
// connection whose backend pid, idle, it leaves to the pooler; a second
// connection then asks for its own backend, and pc for its again.
// NOTE: a heuristic: a pooler handing the idle backend to the second
// connection (PgBouncer does by default, server_round_robin = 0), or
// moving pc to another, is caught; one that happens to do neither is
// not. configs/README.md requires pool_mode = session.
func checkSharedBackends(ctx context.Context, base *pgconn.Config, pc *pgconn.PgConn, pid uint32) error {
	other, err := pgconn.ConnectConfig(ctx, base)
	if err != nil {
		return fmt.Errorf("opening a second connection to check how the pooler upstream shares backends: %w", poolerHint(err))
	}
	defer other.Close(context.Background())
	for _, c := range []*pgconn.PgConn{other, pc} {
		res, err := c.Exec(ctx, "SELECT pg_catalog.pg_backend_pid()::pg_catalog.text").ReadAll()
		if err == nil && (len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 1) {
			err = errors.New("unexpected answer")
		}
		if err != nil && c == other && errors.Is(err, context.DeadlineExceeded) {
			// NOTE: pc holds its backend: in session mode the pooler has
			// to give the second connection another.
			return fmt.Errorf("checking how the pooler upstream shares backends: it gave a second connection no backend within connect_timeout; "+
				"pgveil's start, reloads, catalog reads and /readyz need two at once: is its pool (PgBouncer's default_pool_size, "+
				"max_db_connections) full? %w", err)
		}
		if err != nil {
			return fmt.Errorf("checking how the pooler upstream shares backends: %w", err)
		}
		got, err := strconv.ParseUint(string(res[0].Rows[0][0]), 10, 32)
		if err != nil {
			return fmt.Errorf("checking how the pooler upstream shares backends: %w", err)
		}
		if shared := c == other && uint32(got) == pid || c == pc && uint32(got) != pid; shared {
			return errors.New("the upstream is a connection pooler that shares a backend between connections " +
				"(PgBouncer in pool_mode = transaction or statement): a setting or prepared statement of one pgveil session would reach another's; " +
				"use pool_mode = session for pgveil's database and pgveil's own pool (upstream.pool) to share backends; " + poolerAdvice)
		}
	}
	return nil
}

// quoteIdent quotes an identifier for a statement pgveil prints.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
