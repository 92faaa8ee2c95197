package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgveil/pgveil/internal/scram"
)

// pgveilConfig is the configuration of the "pgveil" target: one user, the
// upstream account read from the environment, and no governed table:
// pgbench's tables are open (schema default allow), so this measures the
// proxy with every statement still checked by the firewall (the rewrite
// cache makes repeated statements, and statements differing from one
// already checked only in their constants, nearly free).
const pgveilConfig = `listen {
  address  = "127.0.0.1:{{port}}"
  database = "{{db}}"
}

upstream {
  address  = "{{pgaddr}}"
  database = "{{db}}"
  user     = "{{pguser}}"
  password = env("{{pwenv}}")
{{upstreamextra}}}

schema "public" {
  default = "allow"
}

role "bench" {
  statements = ["select", "insert", "update", "delete"]
}

user "{{user}}" {
  password = "{{verifier}}"
  roles    = ["bench"]
}
`

// pgveilGovernedPolicy is added to pgveilConfig for the "pgveil-governed"
// target: pgbench_accounts, the table pgbench -S reads, is governed, and a
// row rule grants the bench role the rows of branches 1 to 5. Every
// statement naming it is rewritten, the table becoming
// (SELECT ... FROM public.pgbench_accounts WHERE bid <= 5), so that this
// target measures the firewall's real work: rewrite, rewrite cache, and the
// scoped subquery upstream. The other pgbench tables stay open (schema
// default allow).
const pgveilGovernedPolicy = `
table "public.pgbench_accounts" {}

rule "some_branches" {
  tables = ["public.pgbench_accounts"]
  roles  = ["bench"]
  where  = "bid <= 5"
}
`

// governedBranches is the highest branch id (bid) whose accounts the
// some_branches rule of pgveilGovernedPolicy shows.
const governedBranches = 5

// pgveilAuditBlock is added to pgveilConfig for the "pgveil-audited"
// target: the audit trail with every default a deployment gets (the
// rewritten SQL in full, fsync at most every 200 ms, sessions waiting when
// the queue is full), keyed by a random secret passed in the environment.
// The file is in the instance's directory, removed with the work
// directory.
const pgveilAuditBlock = `
audit {
  file     = "{{auditfile}}"
  hmac_key = env("{{auditkeyenv}}")
}
`

// pgveilAuditFile is the audit trail's file name in the instance's
// directory.
const pgveilAuditFile = "audit.log"

// pgveilAuditKeyEnv names the variable that carries the audit trail's key.
const pgveilAuditKeyEnv = "PGVEIL_BENCH_AUDIT_KEY"

// pgveilPoolBlock is added to the upstream block of pgveilConfig for the
// "pgveil-pool" target: transaction pooling on {{poolsize}} backends.
// Clients wait up to a minute for a backend rather than pgveil's default
// 5 seconds: with hundreds of clients on a few dozen backends, a client
// may wait for a while on a machine this busy, and an error would fail
// the run.
const pgveilPoolBlock = `
  pool {
    mode         = "transaction"
    size         = {{poolsize}}
    wait_timeout = "60s"
  }
`

// pgveilInstance describes one pgveil process of the benchmark.
type pgveilInstance struct {
	// name is the target's name, and that of its directory in the work
	// directory.
	name string
	// policy is HCL added to pgveilConfig.
	policy string
	// upstream is HCL added inside pgveilConfig's upstream block.
	upstream string
	// defaultProcs runs the process with Go's default GOMAXPROCS rather
	// than --pgveil-gomaxprocs.
	defaultProcs bool
	// audited adds pgveilAuditBlock, the audit file in the instance's
	// directory.
	audited bool
}

// pgveilInstances are the pgveil processes the benchmark runs, in report
// order.
var pgveilInstances = []pgveilInstance{
	{name: targetPgveil},
	{name: targetPgveilGoverned, policy: pgveilGovernedPolicy},
	{name: targetPgveilAudited, policy: pgveilGovernedPolicy, audited: true},
}

// pgveilPoolInstance returns the "pgveil-pool" process: the "pgveil"
// target's pass-through policy, with transaction pooling on poolSize
// upstream backends.
//
// It runs with Go's default GOMAXPROCS (one event loop per core), not
// --pgveil-gomaxprocs, as a deployment runs it (see doc.go).
func pgveilPoolInstance(poolSize int) pgveilInstance {
	return pgveilInstance{
		name:         targetPgveilPool,
		upstream:     strings.ReplaceAll(pgveilPoolBlock, "{{poolsize}}", fmt.Sprint(poolSize)),
		defaultProcs: true,
	}
}

// pgveilConfigText returns the configuration of inst, listening on port, in
// front of upstream, for user authenticated by verifier; dir is the
// instance's directory.
func pgveilConfigText(inst pgveilInstance, dir string, port int, upstream *target, user, verifier string) string {
	text := pgveilConfig + inst.policy
	if inst.audited {
		text += pgveilAuditBlock
	}
	return strings.NewReplacer(
		"{{port}}", fmt.Sprint(port),
		"{{db}}", benchDatabase,
		"{{pgaddr}}", fmt.Sprintf("%s:%d", upstream.host, upstream.port),
		"{{pguser}}", upstream.user,
		"{{pwenv}}", pgveilPasswordEnv,
		"{{user}}", user,
		"{{verifier}}", verifier,
		"{{upstreamextra}}", inst.upstream,
		"{{auditfile}}", filepath.Join(dir, pgveilAuditFile),
		"{{auditkeyenv}}", pgveilAuditKeyEnv,
	).Replace(text)
}

// pgveilPasswordEnv names the variable that carries the upstream password
// to pgveil, so that it is never written to disk.
const pgveilPasswordEnv = "PGVEIL_BENCH_UPSTREAM_PASSWORD"

// moduleRoot returns the nearest directory at or above the working
// directory that holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find the module root: no go.mod at or above the working directory; run from the pgveil repository or pass --pgveil")
		}
		dir = parent
	}
}

// buildPgveil builds ./cmd/pgveil of the module into dir/bin and returns
// the binary's path.
func buildPgveil(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		if _, statErr := os.Stat("/usr/local/go/bin/go"); statErr != nil {
			return "", fmt.Errorf("build pgveil: no go on PATH nor in /usr/local/go/bin: %w", err)
		}
		goBin = "/usr/local/go/bin/go"
	}
	binDir := filepath.Join(dir, "bin")
	if err := os.Mkdir(binDir, 0o755); err != nil {
		return "", fmt.Errorf("build pgveil: %w", err)
	}
	bin := filepath.Join(binDir, "pgveil")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/pgveil")
	cmd.Dir = root
	cmd.SysProcAttr = childAttr(nil)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build pgveil (go build ./cmd/pgveil in %s): %w:\n%s", root, err, tail(string(out), 4096))
	}
	return bin, nil
}

// startPgveil writes the configuration of inst into a new directory of
// workDir and runs `pgveil serve` in front of upstream, for clients logging
// in as user with password, with GOMAXPROCS=gomaxprocs unless it is 0 or
// inst.defaultProcs is set.
func startPgveil(ctx context.Context, bin, workDir string, inst pgveilInstance, upstream *target, user, password string, gomaxprocs int) (*target, error) {
	dir := filepath.Join(workDir, inst.name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%s directory: %w", inst.name, err)
	}
	verifier, err := scram.NewVerifier(password, scram.DefaultIterations)
	if err != nil {
		return nil, fmt.Errorf("%s user verifier: %w", inst.name, err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := pgveilConfigText(inst, dir, port, upstream, user, verifier.String())
	confPath := filepath.Join(dir, "pgveil.hcl")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("write %s configuration: %w", inst.name, err)
	}

	cmd := exec.Command(bin, "serve", "--config", confPath, "--log-level", "warn")
	cmd.Dir = dir
	env := []string{pgveilPasswordEnv + "=" + upstream.password}
	var auditKey string
	if inst.audited {
		if auditKey, err = randomSecret(); err != nil {
			return nil, err
		}
		env = append(env, pgveilAuditKeyEnv+"="+auditKey)
	}
	if gomaxprocs > 0 && !inst.defaultProcs {
		env = append(env, fmt.Sprintf("GOMAXPROCS=%d", gomaxprocs))
	}
	cmd.Env = childEnv(env...)
	proc, err := startChild(inst.name, cmd, filepath.Join(dir, "pgveil.log"), nil)
	if err != nil {
		return nil, err
	}
	t := &target{name: inst.name, host: "127.0.0.1", port: port, user: user, password: password, proc: proc}
	if inst.audited {
		t.auditFile, t.auditKey = filepath.Join(dir, pgveilAuditFile), auditKey
	}
	if err := t.waitReady(ctx, 15*time.Second); err != nil {
		_ = stopPgveil(t)
		return nil, fmt.Errorf("start %s: %w", inst.name, err)
	}
	return t, nil
}

// checkGoverned makes sure the row rule of pgveilGovernedPolicy is in
// force at t: of the first and the last account of a pgbench database of
// the given scale (pgbench gives account aid the branch (aid-1)/100000+1),
// only those of branches 1 to governedBranches may be counted. A target
// that showed every row would measure nothing but the proxy.
func checkGoverned(ctx context.Context, t *target, scale int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := t.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	last := scale * 100000
	want := 1 // aid 1 is in branch 1
	if scale <= governedBranches {
		want = 2 // the last account is in a visible branch too
	}
	q := fmt.Sprintf("SELECT count(*) FROM pgbench_accounts WHERE aid IN (1, %d)", last)
	results, err := conn.Exec(ctx, q).ReadAll()
	if err != nil {
		return fmt.Errorf("check the row rule through %s: %s: %w", t.name, q, err)
	}
	if len(results) != 1 || len(results[0].Rows) != 1 || len(results[0].Rows[0]) != 1 {
		return fmt.Errorf("check the row rule through %s: %s: unexpected result shape", t.name, q)
	}
	if got := string(results[0].Rows[0][0]); got != fmt.Sprint(want) {
		return fmt.Errorf("check the row rule through %s: %s returned %s, want %d: the rule %q is not in force",
			t.name, q, got, want, "bid <= "+fmt.Sprint(governedBranches))
	}
	return nil
}

// checkAudited makes sure t writes its audit trail: the statement
// checkGoverned ran through it must appear in the file within a few
// seconds (the writer batches and flushes records at most every 2 ms while
// they keep coming, at once when they stop). A target that audited nothing
// would measure pgveil-governed again.
func checkAudited(ctx context.Context, t *target) error {
	const want = `"event":"statement"`
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, err := os.ReadFile(t.auditFile)
		if err == nil && strings.Contains(string(data), want) {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("no %s record in %d bytes", want, len(data))
			}
			return fmt.Errorf("check the audit trail of %s (%s): %w", t.name, t.auditFile, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// auditTrail is what an audited target wrote: its records, their bytes,
// and whether `pgveil audit verify` would accept the chain.
type auditTrail struct {
	records uint64
	bytes   int64
	files   int
	// problem is the first problem the verification found; "" when the
	// chain checked out.
	problem string
}

// readAuditTrail verifies t's audit trail, rotated files included, with
// its key, by running `pgveil audit verify` (bin): the benchmark does not
// link pgveil's packages that need cgo (make cross).
func readAuditTrail(ctx context.Context, bin string, t *target) (auditTrail, error) {
	files, err := filepath.Glob(t.auditFile + "*")
	if err != nil {
		return auditTrail{}, fmt.Errorf("%s audit trail: %w", t.name, err)
	}
	tr := auditTrail{files: len(files)}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return auditTrail{}, fmt.Errorf("%s audit trail: %w", t.name, err)
		}
		tr.bytes += fi.Size()
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"audit", "verify", "--key-env", pgveilAuditKeyEnv}, files...)...)
	cmd.Env = childEnv(pgveilAuditKeyEnv + "=" + t.auditKey)
	out, err := cmd.Output()
	line := strings.TrimSpace(string(out))
	if m := verifiedRecords.FindStringSubmatch(line); m != nil {
		tr.records, _ = strconv.ParseUint(m[1], 10, 64)
		return tr, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && line != "" {
		// The chain did not verify: the first problem is the report.
		tr.problem = firstLineOf(errors.New(line))
		return tr, nil
	}
	return auditTrail{}, fmt.Errorf("verify the %s audit trail: %v: %s", t.name, err, tail(line+string(stderrOf(err)), 2048))
}

// verifiedRecords reads the record count of `pgveil audit verify`'s line
// for one chain that checked out.
var verifiedRecords = regexp.MustCompile(`^OK: (\d+) records`)

// stderrOf returns what a failed command wrote on its standard error.
func stderrOf(err error) []byte {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.Stderr
	}
	return nil
}

// stopPgveil shuts pgveil down gracefully (SIGTERM), killing it when it
// lingers.
func stopPgveil(t *target) error {
	if err := t.proc.stop(syscall.SIGTERM, 10*time.Second); err != nil {
		return fmt.Errorf("stop pgveil: %w", err)
	}
	return nil
}

// logProblems returns the lines a proxy logged, at most max of them, and
// how many there were. pgveil runs with --log-level warn, so every line is
// a warning or an error worth a look.
func logProblems(p *child, max int) (lines []string, total int) {
	f, err := os.Open(p.logPath)
	if err != nil {
		return []string{fmt.Sprintf("(cannot read %s: %v)", p.logPath, err)}, 1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		total++
		if len(lines) < max {
			lines = append(lines, line)
		}
	}
	return lines, total
}
