package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pgveil/pgveil/internal/scram"
)

// pgveilConfig is pgveil's configuration: one user, the upstream account
// read from the environment, and no governed table: pgbench's tables are
// open (schema default allow), so this measures the proxy with every
// statement still parsed and checked by the firewall (the rewrite cache
// makes repeated statements nearly free).
const pgveilConfig = `listen {
  address  = "127.0.0.1:{{port}}"
  database = "{{db}}"
}

upstream {
  address  = "{{pgaddr}}"
  database = "{{db}}"
  user     = "{{pguser}}"
  password = env("{{pwenv}}")
}

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

// startPgveil writes pgveil's configuration into a new directory of
// workDir and runs `pgveil serve` in front of upstream, for clients logging
// in as user with password.
func startPgveil(ctx context.Context, bin, workDir string, upstream *target, user, password string, gomaxprocs int) (*target, error) {
	dir := filepath.Join(workDir, "pgveil")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pgveil directory: %w", err)
	}
	verifier, err := scram.NewVerifier(password, scram.DefaultIterations)
	if err != nil {
		return nil, fmt.Errorf("pgveil user verifier: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := strings.NewReplacer(
		"{{port}}", fmt.Sprint(port),
		"{{db}}", benchDatabase,
		"{{pgaddr}}", fmt.Sprintf("%s:%d", upstream.host, upstream.port),
		"{{pguser}}", upstream.user,
		"{{pwenv}}", pgveilPasswordEnv,
		"{{user}}", user,
		"{{verifier}}", verifier.String(),
	).Replace(pgveilConfig)
	confPath := filepath.Join(dir, "pgveil.hcl")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("write pgveil configuration: %w", err)
	}

	cmd := exec.Command(bin, "serve", "--config", confPath, "--log-level", "warn")
	cmd.Dir = dir
	env := []string{pgveilPasswordEnv + "=" + upstream.password}
	if gomaxprocs > 0 {
		env = append(env, fmt.Sprintf("GOMAXPROCS=%d", gomaxprocs))
	}
	cmd.Env = childEnv(env...)
	proc, err := startChild("pgveil", cmd, filepath.Join(dir, "pgveil.log"), nil)
	if err != nil {
		return nil, err
	}
	t := &target{name: targetPgveil, host: "127.0.0.1", port: port, user: user, password: password, proc: proc}
	if err := t.waitReady(ctx, 15*time.Second); err != nil {
		_ = stopPgveil(t)
		return nil, fmt.Errorf("start pgveil: %w", err)
	}
	return t, nil
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
