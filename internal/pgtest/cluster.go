package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// EnvDatabase names the environment variable that StartOrExternal reads: a
// postgres:// URL of an existing server and one of its superusers.
const EnvDatabase = "PGVEIL_TEST_DATABASE"

// ErrExternal is returned by the methods that control the server process
// (Restart, StopServer, StartServer) on a Cluster that wraps an external
// server.
var ErrExternal = errors.New("pgtest: not supported on an external server")

const (
	// localHost is the only address a local cluster listens on.
	localHost = "127.0.0.1"
	// superUser is the bootstrap superuser initdb creates.
	superUser = "postgres"
	// osUser is the OS account initdb and postgres run as when the current
	// process is root.
	osUser = "postgres"
	// readyTimeout bounds the wait for a starting server to accept
	// connections.
	readyTimeout = 30 * time.Second
	// stopTimeout bounds a fast shutdown before the server is killed.
	stopTimeout = 30 * time.Second
	// maxPortTries bounds the attempts at starting on a fresh port when the
	// chosen one was taken between picking it and postgres binding it.
	maxPortTries = 10
	// pollInterval is the pause between readiness probes.
	pollInterval = 50 * time.Millisecond
	// dirPrefix starts the name of every cluster directory.
	dirPrefix = "pgveil-pgtest-"
	// ownerFile, in a cluster directory, holds the id of the process that
	// created it, so that later runs can remove it if that process died
	// without calling Stop.
	ownerFile = "owner.pid"
)

// Options configures Start.
type Options struct {
	// Logf, when not nil, receives progress messages (initdb, start, stop,
	// timings). testing.T.Logf fits.
	Logf func(format string, args ...any)
	// Settings are extra server settings (as with postgres -c name=value).
	// They are written to postgresql.conf after pgtest's defaults, so they
	// override them; ALTER SYSTEM still overrides both. The port is always
	// the one pgtest picked: a "port" setting is ignored.
	Settings map[string]string
	// ServerEnv is extra environment for the postmaster ("NAME=value"),
	// after pgtest's: e.g. LANGUAGE, which gettext reads over a
	// non-C lc_messages.
	ServerEnv []string
}

// Cluster is a running (or stopped) PostgreSQL server for tests: either a
// throwaway cluster made by Start, or an existing server wrapped by
// StartOrExternal. Its methods are safe for concurrent use.
type Cluster struct {
	// NOTE: every field but mu, proc and removed is set before the Cluster is
	// returned and never changes afterwards.
	binDir   string
	host     string
	port     int
	user     string
	password string
	logf     func(format string, args ...any)

	external bool
	extURL   *url.URL // external only: the URL from the environment

	dir     string      // local only: the temp dir holding everything below
	dataDir string      // local only: the data directory
	sockDir string      // local only: unix_socket_directories
	logFile string      // local only: postgres's stderr, appended across starts
	cred    *serverUser // local only: who the server runs as; nil for the current user
	env     []string    // local only: Options.ServerEnv

	mu      sync.Mutex
	proc    *serverProc // NOTE: nil exactly when the server is not running.
	removed bool        // Stop ran: the data dir is gone.
}

// serverProc is one run of the postmaster.
type serverProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait has returned
	err  error         // cmd.Wait's result; NOTE: read only after done is closed
}

// errPortInUse reports that postgres could not bind its port.
var errPortInUse = errors.New("pgtest: port already in use")

// pickPort returns a TCP port of 127.0.0.1 that was free a moment ago.
// NOTE: a variable so that tests can exercise the retry on a taken port.
var pickPort = freePort

// Start initdb's a cluster into a fresh temporary directory, starts postgres
// on a free port of 127.0.0.1 and waits until it accepts connections.
//
// The superuser is "postgres" with a random password; TCP connections
// authenticate with scram-sha-256 and local (unix socket) ones are trusted.
// When the current process is root, the cluster belongs to and runs as the
// "postgres" OS user. The server is a child process that receives SIGKILL
// if this process dies, so it never outlives it; Stop shuts it down and
// removes the directory.
func Start(opts Options) (_ *Cluster, err error) {
	begin := time.Now()
	binDir, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	password, err := randomPassword()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := makeBaseDir(cred != nil)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()

	c := &Cluster{
		binDir:   binDir,
		host:     localHost,
		user:     superUser,
		password: password,
		logf:     opts.Logf,
		dir:      dir,
		dataDir:  filepath.Join(dir, "data"),
		sockDir:  filepath.Join(dir, "sock"),
		logFile:  filepath.Join(dir, "postgres.log"),
		cred:     cred,
		env:      opts.ServerEnv,
	}
	if err := c.initdb(); err != nil {
		return nil, err
	}
	if err := c.writeSettings(opts.Settings); err != nil {
		return nil, err
	}
	initDone := time.Now()

	c.mu.Lock()
	defer c.mu.Unlock()
	for try := 1; ; try++ {
		port, err := pickPort()
		if err != nil {
			return nil, err
		}
		c.port = port
		err = c.startLocked()
		if err == nil {
			break
		}
		if !errors.Is(err, errPortInUse) || try == maxPortTries {
			return nil, err
		}
		c.log("pgtest: port %d was taken, trying another", port)
	}
	c.log("pgtest: cluster %s ready on %s in %v (initdb %v, start %v)",
		dir, c.Addr(), time.Since(begin).Round(time.Millisecond),
		initDone.Sub(begin).Round(time.Millisecond), time.Since(initDone).Round(time.Millisecond))
	return c, nil
}

// StartOrExternal returns a Cluster wrapping the existing server named by
// the PGVEIL_TEST_DATABASE environment variable when it is set (a
// postgres:// URL with a superuser), after checking that it answers and that
// the user is a superuser; otherwise it calls Start(opts).
func StartOrExternal(opts Options) (*Cluster, error) {
	raw := os.Getenv(EnvDatabase)
	if raw == "" {
		return Start(opts)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("pgtest: %s must be a postgres:// URL", EnvDatabase)
	}
	cfg, err := pgconn.ParseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("pgtest: parse %s: %w", EnvDatabase, err)
	}
	binDir, _ := FindBinDir() // NOTE: optional for an external server.
	c := &Cluster{
		binDir:   binDir,
		host:     cfg.Host,
		port:     int(cfg.Port),
		user:     cfg.User,
		password: cfg.Password,
		logf:     opts.Logf,
		external: true,
		extURL:   u,
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, c.ConnString(strings.TrimPrefix(u.Path, "/")))
	if err != nil {
		return nil, fmt.Errorf("pgtest: connect to the %s server: %w", EnvDatabase, err)
	}
	defer conn.Close(ctx)
	if conn.ParameterStatus("is_superuser") != "on" {
		return nil, fmt.Errorf("pgtest: %s user %q is not a superuser", EnvDatabase, c.user)
	}
	c.log("pgtest: using external server %s as %s", c.Addr(), c.user)
	return c, nil
}

// Host returns the host the server listens on: "127.0.0.1" for a local
// cluster.
func (c *Cluster) Host() string { return c.host }

// Port returns the server's TCP port.
func (c *Cluster) Port() int { return c.port }

// Addr returns host:port, e.g. "127.0.0.1:54321".
func (c *Cluster) Addr() string { return net.JoinHostPort(c.host, strconv.Itoa(c.port)) }

// SuperUser returns the superuser's name and password.
func (c *Cluster) SuperUser() (user, password string) { return c.user, c.password }

// BinDir returns the directory of the PostgreSQL binaries; for an external
// server it is the local installation's, or "" when there is none.
func (c *Cluster) BinDir() string { return c.binDir }

// External reports whether c wraps an existing server rather than one that
// pgtest started.
func (c *Cluster) External() bool { return c.external }

// LogFile returns the path of the server's log (its stderr, appended across
// restarts); "" for an external server.
func (c *Cluster) LogFile() string { return c.logFile }

// ConnString returns a postgres:// URL that connects to database as the
// superuser, with sslmode=disable. For an external server it keeps the
// query parameters of PGVEIL_TEST_DATABASE, adding sslmode=disable only when
// they have no sslmode.
func (c *Cluster) ConnString(database string) string {
	if c.external {
		u := *c.extURL
		u.Path, u.RawPath = "/"+database, ""
		q := u.Query()
		if q.Get("sslmode") == "" {
			q.Set("sslmode", "disable")
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(c.user, c.password),
		Host:     c.Addr(),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Connect opens a connection to database as the superuser.
func (c *Cluster) Connect(ctx context.Context, database string) (*pgconn.PgConn, error) {
	conn, err := pgconn.Connect(ctx, c.ConnString(database))
	if err != nil {
		return nil, fmt.Errorf("pgtest: connect to database %q on %s: %w", database, c.Addr(), err)
	}
	return conn, nil
}

// Exec runs sql, which may hold several statements, in database as the
// superuser with the simple query protocol, and returns the first error.
// A server error wraps a *pgconn.PgError, whose message carries the
// SQLSTATE.
// NOTE: several statements in one simple query run in one implicit
// transaction unless sql has its own BEGIN/COMMIT.
func (c *Cluster) Exec(ctx context.Context, database, sql string) error {
	conn, err := c.Connect(ctx, database)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("pgtest: exec in database %q: %w", database, err)
	}
	return nil
}

// CreateDatabase creates the database name, dropping it first (and ending
// its sessions) when it exists.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	conn, err := c.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	// NOTE: DROP/CREATE DATABASE refuse to run inside a transaction block,
	// which a multi-statement simple query is: one statement per query.
	for _, sql := range []string{
		"DROP DATABASE IF EXISTS " + quoteIdent(name) + " WITH (FORCE)",
		"CREATE DATABASE " + quoteIdent(name),
	} {
		if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
			return fmt.Errorf("pgtest: create database %q: %w", name, err)
		}
	}
	return nil
}

// Restart shuts the server down (fast shutdown) and starts it again on the
// same port and data directory, waiting until it accepts connections.
func (c *Cluster) Restart() error {
	if c.external {
		return ErrExternal
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.stopLocked(); err != nil {
		return err
	}
	return c.startLocked()
}

// StopServer shuts the server down (fast shutdown) but keeps its data
// directory, so that StartServer can bring it back; it is for tests that
// need the upstream down. Stopping a stopped server does nothing.
func (c *Cluster) StopServer() error {
	if c.external {
		return ErrExternal
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopLocked()
}

// StartServer starts a server stopped by StopServer again, on the same port,
// and waits until it accepts connections. Starting a running server does
// nothing.
func (c *Cluster) StartServer() error {
	if c.external {
		return ErrExternal
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		return nil
	}
	return c.startLocked()
}

// Stop shuts the server down, waits for it to exit and removes its
// temporary directory. It may be called more than once. For an external
// server it does nothing.
func (c *Cluster) Stop() error {
	if c.external {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed {
		return nil
	}
	err := c.stopLocked()
	c.removed = true
	if rmErr := os.RemoveAll(c.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("pgtest: remove cluster dir: %w", rmErr))
	}
	c.log("pgtest: cluster %s removed", c.dir)
	return err
}

// startLocked starts the postmaster on c.port and waits until it accepts
// connections. It returns an error wrapping errPortInUse when the port was
// taken. NOTE: c.mu must be held.
func (c *Cluster) startLocked() error {
	if c.removed {
		return errors.New("pgtest: cluster already stopped and removed")
	}
	var logOffset int64
	if fi, err := os.Stat(c.logFile); err == nil {
		logOffset = fi.Size()
	}
	logf, err := os.OpenFile(c.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: open server log: %w", err)
	}
	// NOTE: the child keeps its own copy of the descriptor.
	defer logf.Close()

	cmd := exec.Command(filepath.Join(c.binDir, "postgres"), "-D", c.dataDir, "-p", strconv.Itoa(c.port))
	cmd.Dir = c.dir
	cmd.Env = append(childEnv(), c.env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = childAttr(c.cred)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	p := &serverProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	begin := time.Now()
	if err := c.waitReady(p, logOffset); err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		return err
	}
	c.proc = p
	c.log("pgtest: postgres (pid %d) accepts connections on %s after %v",
		cmd.Process.Pid, c.Addr(), time.Since(begin).Round(time.Millisecond))
	return nil
}

// waitReady polls until the server started as p accepts a connection, p
// exits, or readyTimeout passes.
func (c *Cluster) waitReady(p *serverProc, logOffset int64) error {
	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for {
		select {
		case <-p.done:
			tail := c.logTail(logOffset)
			if strings.Contains(tail, "Address already in use") {
				return fmt.Errorf("%w: %d", errPortInUse, c.port)
			}
			return fmt.Errorf("pgtest: postgres exited during startup (%v); %s ends with:\n%s", p.err, c.logFile, tail)
		default:
		}
		// NOTE: the probe is abandoned as soon as the server exits, so that
		// another program answering on a port postgres failed to bind does
		// not hold the retry up.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		go func() {
			select {
			case <-p.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		conn, err := pgconn.Connect(ctx, c.ConnString("postgres"))
		if err == nil {
			_ = conn.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		lastErr = err
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: postgres not ready after %v: %w; %s ends with:\n%s",
				readyTimeout, lastErr, c.logFile, c.logTail(logOffset))
		}
		select {
		case <-p.done:
		case <-time.After(pollInterval):
		}
	}
}

// stopLocked shuts the running server down with a fast shutdown (SIGINT),
// killing it if that takes longer than stopTimeout, and waits for it to
// exit. NOTE: c.mu must be held.
func (c *Cluster) stopLocked() error {
	p := c.proc
	if p == nil {
		return nil
	}
	c.proc = nil
	select {
	case <-p.done:
		return fmt.Errorf("pgtest: postgres had exited unexpectedly (%v); see %s", p.err, c.logFile)
	default:
	}
	begin := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		_ = p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("pgtest: postgres did not shut down within %v and was killed; see %s", stopTimeout, c.logFile)
	}
	if p.err != nil {
		return fmt.Errorf("pgtest: postgres shutdown: %w; see %s", p.err, c.logFile)
	}
	c.log("pgtest: postgres stopped in %v", time.Since(begin).Round(time.Millisecond))
	return nil
}

// initdb creates the data directory, the socket directory and the cluster.
func (c *Cluster) initdb() error {
	for _, d := range []string{c.dataDir, c.sockDir} {
		perm := os.FileMode(0o700) // NOTE: postgres refuses a data dir readable by others.
		if d == c.sockDir {
			perm = 0o755
		}
		if err := os.Mkdir(d, perm); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		if err := c.chown(d); err != nil {
			return err
		}
	}
	pwfile := filepath.Join(c.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.password+"\n"), 0o600); err != nil {
		return fmt.Errorf("pgtest: write password file: %w", err)
	}
	defer os.Remove(pwfile)
	if err := c.chown(pwfile); err != nil {
		return err
	}

	begin := time.Now()
	cmd := exec.Command(filepath.Join(c.binDir, "initdb"),
		"--pgdata="+c.dataDir,
		"--username="+c.user,
		"--pwfile="+pwfile,
		"--auth-host=scram-sha-256",
		"--auth-local=trust",
		"--encoding=UTF8",
		"--no-locale",
		"--no-sync",
	)
	cmd.Dir = c.dir
	cmd.Env = childEnv()
	cmd.SysProcAttr = childAttr(c.cred)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: initdb: %w:\n%s", err, out)
	}
	c.log("pgtest: initdb %s in %v", c.dataDir, time.Since(begin).Round(time.Millisecond))
	return nil
}

// writeSettings appends pgtest's defaults, then extra, to postgresql.conf.
func (c *Cluster) writeSettings(extra map[string]string) error {
	settings := map[string]string{
		"listen_addresses":        localHost,
		"unix_socket_directories": c.sockDir,
		"fsync":                   "off",
		"max_connections":         "200",
		"timezone":                "UTC",
		"log_timezone":            "UTC",
	}
	for k, v := range extra {
		settings[strings.ToLower(k)] = v
	}
	delete(settings, "port") // NOTE: the port is always given with -p.
	names := make([]string, 0, len(settings))
	for k := range settings {
		names = append(names, k)
	}
	sort.Strings(names)

	var b strings.Builder
	b.WriteString("\n# Added by pgtest.\n")
	for _, name := range names {
		value := settings[name]
		if !validSettingName(name) {
			return fmt.Errorf("pgtest: invalid setting name %q", name)
		}
		if strings.ContainsAny(value, "\r\n\x00") {
			return fmt.Errorf("pgtest: setting %s: value has a line break or NUL", name)
		}
		value = strings.ReplaceAll(value, `\`, `\\`)
		value = strings.ReplaceAll(value, `'`, `''`)
		fmt.Fprintf(&b, "%s = '%s'\n", name, value)
	}
	conf := filepath.Join(c.dataDir, "postgresql.conf")
	f, err := os.OpenFile(conf, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgtest: open postgresql.conf: %w", err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return fmt.Errorf("pgtest: write postgresql.conf: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pgtest: write postgresql.conf: %w", err)
	}
	return nil
}

// logTail returns the end (at most 4 KiB, whole lines) of what the server
// logged from offset on.
func (c *Cluster) logTail(offset int64) string {
	const max = 4 << 10
	data, err := os.ReadFile(c.logFile)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	if offset > int64(len(data)) {
		offset = 0
	}
	data = data[offset:]
	if len(data) > max {
		data = data[len(data)-max:]
		if i := strings.IndexByte(string(data), '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	return strings.TrimRight(string(data), "\n")
}

// log calls the Logf option when there is one.
func (c *Cluster) log(format string, args ...any) {
	if c.logf != nil {
		c.logf(format, args...)
	}
}

// makeBaseDir creates the cluster's temporary directory. When the server
// runs as another OS user (forOtherUser), the directory and all its
// ancestors must be traversable by others: it is made 0755, under
// os.TempDir() if that is reachable, else under /tmp.
func makeBaseDir(forOtherUser bool) (string, error) {
	parent := os.TempDir()
	if forOtherUser && !traversableByOthers(parent) {
		parent = "/tmp"
		if !traversableByOthers(parent) {
			return "", fmt.Errorf("pgtest: neither %s nor /tmp can be reached by the %q OS user", os.TempDir(), osUser)
		}
	}
	sweepStale(parent)
	dir, err := os.MkdirTemp(parent, dirPrefix)
	if err != nil {
		return "", fmt.Errorf("pgtest: create cluster dir: %w", err)
	}
	if forOtherUser {
		if err := os.Chmod(dir, 0o755); err != nil {
			_ = os.RemoveAll(dir)
			return "", fmt.Errorf("pgtest: %w", err)
		}
	}
	owner := strconv.Itoa(os.Getpid()) + "\n"
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("pgtest: write owner file: %w", err)
	}
	return dir, nil
}

// sweepStale removes the cluster directories under parent left behind by
// processes that died without calling Stop (killed, timed out, os.Exit):
// those whose owner file names a process that no longer exists and whose
// postmaster.pid, if any, does too. Errors are ignored: it is best effort.
// NOTE: a directory without an owner file, or whose processes may be alive
// (zombies, reused pids), is kept.
func sweepStale(parent string) {
	dirs, _ := filepath.Glob(filepath.Join(parent, dirPrefix+"*"))
	for _, dir := range dirs {
		owner, ok := pidFromFile(filepath.Join(dir, ownerFile))
		if !ok || processExists(owner) {
			continue
		}
		if server, ok := pidFromFile(filepath.Join(dir, "data", "postmaster.pid")); ok && processExists(server) {
			continue
		}
		_ = os.RemoveAll(dir)
	}
}

// pidFromFile returns the process id on the first line of path.
func pidFromFile(path string) (int, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	return pid, err == nil && pid > 0
}

// traversableByOthers reports whether dir and every ancestor of it have the
// execute bit for others.
func traversableByOthers(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

// childEnv returns the environment for initdb and postgres: this process's,
// less the libpq and server variables (PGDATA, PGPORT, ...) that could
// redirect them, with messages in the C locale.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// freePort returns a TCP port of 127.0.0.1 that was free when it looked.
func freePort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(localHost, "0"))
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	return port, nil
}

// validSettingName reports whether name looks like a server setting name
// (letters, digits, underscores, and dots for extension settings).
func validSettingName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// quoteIdent quotes name as an SQL identifier.
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
