package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// pgbouncerConfig is PgBouncer's configuration: session or transaction
// pooling, SCRAM for clients, and a forced server user with its password,
// so that server sessions log in as the same role as pgveil's.
//
// NOTE: the userlist holds the client's password in plain text, not a SCRAM
// verifier: with a verifier, PgBouncer (at least up to 1.20) reuses the
// client's SCRAM keys to log in as the forced user, and the server refuses
// them (pgbouncer/pgbouncer issues 944 and 1461). Clients still
// authenticate with SCRAM-SHA-256.
const pgbouncerConfig = `[databases]
{{db}} = host={{pghost}} port={{pgport}} dbname={{db}} user={{pguser}} password={{pgpassword}}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {{port}}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {{userlist}}
pool_mode = {{poolmode}}
max_client_conn = {{maxclients}}
default_pool_size = {{poolsize}}
server_tls_sslmode = disable
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
stats_period = 3600
`

// findPgbouncer returns the pgbouncer binary: explicit when given, else
// from PATH, else Debian's /usr/sbin/pgbouncer.
func findPgbouncer(explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	const debian = "/usr/sbin/pgbouncer"
	if _, err := os.Stat(debian); err == nil {
		return debian, nil
	}
	return "", fmt.Errorf("pgbouncer not found on PATH nor at %s (Debian: apt-get install pgbouncer)", debian)
}

// pgbouncerInstance describes one PgBouncer process of the benchmark.
type pgbouncerInstance struct {
	// name is the target's name, and that of its directory in the work
	// directory.
	name string
	// mode is pool_mode: "session" or "transaction".
	mode string
	// poolSize is default_pool_size: the most server connections it
	// opens.
	poolSize int
	// maxClients is max_client_conn.
	maxClients int
}

// sessionPgbouncer returns the "pgbouncer" target's instance: session
// pooling for up to clients clients, each with a server connection.
func sessionPgbouncer(clients int) pgbouncerInstance {
	// NOTE: headroom above the pgbench clients for the readiness probe and
	// the streaming client.
	size := clients + 8
	return pgbouncerInstance{name: targetPgBouncer, mode: "session", poolSize: size, maxClients: size}
}

// transactionPgbouncer returns the "pgbouncer-tx" target's instance:
// transaction pooling on poolSize server connections for up to clients
// clients at once.
func transactionPgbouncer(poolSize, clients int) pgbouncerInstance {
	// NOTE: headroom for the readiness probe and for clients whose close
	// PgBouncer has not seen yet.
	return pgbouncerInstance{name: targetPgBouncerTx, mode: "transaction", poolSize: poolSize, maxClients: clients + 16}
}

// pgbouncerConfigText returns the configuration of inst, listening on
// port, in front of upstream, with the users of the file userlist.
func pgbouncerConfigText(inst pgbouncerInstance, port int, upstream *target, userlist string) string {
	return strings.NewReplacer(
		"{{db}}", benchDatabase,
		"{{pghost}}", upstream.host,
		"{{pgport}}", fmt.Sprint(upstream.port),
		"{{pguser}}", upstream.user,
		"{{pgpassword}}", upstream.password,
		"{{port}}", fmt.Sprint(port),
		"{{userlist}}", userlist,
		"{{poolmode}}", inst.mode,
		"{{maxclients}}", fmt.Sprint(inst.maxClients),
		"{{poolsize}}", fmt.Sprint(inst.poolSize),
	).Replace(pgbouncerConfig)
}

// startPgbouncer writes the configuration of inst into a new directory of
// workDir and starts it in the foreground in front of upstream, for
// clients logging in as user with password. When this process is root,
// PgBouncer (which refuses to run as root) runs as the postgres OS user.
func startPgbouncer(ctx context.Context, bin, workDir string, inst pgbouncerInstance, upstream *target, user, password string) (*target, error) {
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(workDir, inst.name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%s directory: %w", inst.name, err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	userlist := filepath.Join(dir, "userlist.txt")
	ini := filepath.Join(dir, "pgbouncer.ini")
	logPath := filepath.Join(dir, "pgbouncer.log")
	conf := pgbouncerConfigText(inst, port, upstream, userlist)
	files := map[string]string{
		userlist: fmt.Sprintf("%q %q\n", user, password),
		ini:      conf,
	}
	for path, content := range files {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := chownTo(cred, dir, userlist, ini); err != nil {
		return nil, fmt.Errorf("give the %s files to the postgres OS user: %w", inst.name, err)
	}

	cmd := exec.Command(bin, ini)
	cmd.Dir = dir
	cmd.Env = childEnv()
	proc, err := startChild(inst.name, cmd, logPath, cred)
	if err != nil {
		return nil, err
	}
	t := &target{name: inst.name, host: "127.0.0.1", port: port, user: user, password: password, proc: proc}
	if err := t.waitReady(ctx, 15*time.Second); err != nil {
		_ = stopPgbouncer(t)
		return nil, fmt.Errorf("start %s: %w", inst.name, err)
	}
	return t, nil
}

// stopPgbouncer shuts PgBouncer down at once (SIGTERM: immediate shutdown),
// killing it when it lingers.
func stopPgbouncer(t *target) error {
	if err := t.proc.stop(syscall.SIGTERM, 10*time.Second); err != nil {
		return fmt.Errorf("stop %s: %w", t.name, err)
	}
	return nil
}
