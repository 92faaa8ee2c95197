package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/internal/scram"
	"github.com/pgveil/pgveil/policy"
)

// pgbench15Output is the report of pgbench 15.
const pgbench15Output = `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 10
query mode: prepared
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 5 s
number of transactions actually processed: 123456
number of failed transactions: 0 (0.000%)
latency average = 0.324 ms
initial connection time = 12.345 ms
tps = 24691.234567 (without initial connection time)
`

func TestParsePgbench(t *testing.T) {
	res, err := parsePgbench(pgbench15Output)
	if err != nil {
		t.Fatal(err)
	}
	if res.tps != 24691.234567 || res.processed != 123456 || res.failed != 0 {
		t.Errorf("got %+v", res)
	}

	failing := strings.Replace(pgbench15Output, "failed transactions: 0 (0.000%)", "failed transactions: 7 (0.006%)", 1)
	if res, err := parsePgbench(failing); err != nil || res.failed != 7 {
		t.Errorf("failed count: got %+v, %v", res, err)
	}

	if _, err := parsePgbench("pgbench: error: connection to server failed\n"); err == nil {
		t.Error("no tps line: want an error")
	}
}

func TestCPUTimeOfSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if _, err := cpuTime(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	m, err := readMem(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.Peak <= 0 || m.Current <= 0 || m.Current > m.Peak {
		t.Errorf("implausible memory %+v", m)
	}
}

func TestSamplesMedian(t *testing.T) {
	var s samples
	if _, ok := s.median(); ok {
		t.Error("empty samples have a median")
	}
	s.add(3, nil)
	s.add(0, errors.New("boom"))
	s.add(1, nil)
	if m, _ := s.median(); m != 2 {
		t.Errorf("median of 3 and 1 = %v, want 2", m)
	}
	s.add(10, nil)
	if m, _ := s.median(); m != 3 {
		t.Errorf("median of 3, 1, 10 = %v, want 3", m)
	}
	if len(s.errs) != 1 {
		t.Errorf("errors: %v", s.errs)
	}
}

func TestRotate(t *testing.T) {
	a, b, c := &target{name: "a"}, &target{name: "b"}, &target{name: "c"}
	ts := []*target{a, b, c}
	got := rotate(ts, 4)
	if got[0] != b || got[1] != c || got[2] != a {
		t.Errorf("rotate by 4: got %s %s %s", got[0].name, got[1].name, got[2].name)
	}
	if ts[0] != a {
		t.Error("rotate changed its argument")
	}
}

func TestParseFlags(t *testing.T) {
	c, err := parseFlags([]string{"--duration", "1500ms", "--clients", "1"}, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if seconds(c.duration) != 2 || c.jobs() != 1 || c.rounds != 2 || c.warmup != 3*time.Second {
		t.Errorf("got %+v", c)
	}
	if _, err := parseFlags([]string{"--rounds", "0"}, &strings.Builder{}); err == nil {
		t.Error("--rounds 0: want an error")
	}
}

func TestCommandLine(t *testing.T) {
	got := commandLine([]string{"/tmp/go-build1/exe/pgveil-bench", "--duration", "5s", "--pgveil", "/a b/pgveil"})
	want := `pgveil-bench --duration 5s --pgveil "/a b/pgveil"`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestPgveilConfigsLoad loads the configuration of every pgveil process
// with pgveil's own loader.
func TestPgveilConfigsLoad(t *testing.T) {
	t.Setenv(pgveilPasswordEnv, "secret")
	verifier, err := scram.NewVerifier("bench-password", scram.DefaultIterations)
	if err != nil {
		t.Fatal(err)
	}
	upstream := &target{host: "127.0.0.1", port: 5432, user: "postgres"}
	for _, inst := range pgveilInstances {
		t.Run(inst.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pgveil.hcl")
			conf := pgveilConfigText(inst, 6432, upstream, benchUser, verifier.String())
			if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, diags := policy.Load(path); diags.HasErrors() {
				t.Fatalf("%v\n%s", diags, conf)
			}
			governs := strings.Contains(conf, `table "public.pgbench_accounts"`)
			if governs != (inst.name == targetPgveilGoverned) {
				t.Errorf("governs pgbench_accounts: %v", governs)
			}
		})
	}
}

// TestGoalTableGoverned checks the targets of pgveil-governed: 0.9x
// PgBouncer in simple mode, 1.0x in prepared mode.
func TestGoalTableGoverned(t *testing.T) {
	res := newResults()
	set := func(target, mode string, tps float64) { res.tpsOf(target, mode).add(tps, nil) }
	set(targetPgBouncer, modeSimple, 1000)
	set(targetPgBouncer, modePrepared, 1000)
	set(targetPgveilGoverned, modeSimple, 920)   // 0.92x: PASS
	set(targetPgveilGoverned, modePrepared, 990) // 0.99x: MISS
	r := &report{res: res}
	want := map[string][2]string{
		"pgveil-governed TPS vs pgbouncer, simple":   {">= 0.9x", "PASS"},
		"pgveil-governed TPS vs pgbouncer, prepared": {">= 1.0x", "MISS"},
		"pgveil TPS vs pgbouncer, simple":            {">= 1.0x", "n/a"},
	}
	found := 0
	for _, row := range r.goalTable().rows {
		w, ok := want[row[0]]
		if !ok {
			continue
		}
		found++
		if row[1] != w[0] || row[3] != w[1] {
			t.Errorf("%s: got %q %q, want %q %q", row[0], row[1], row[3], w[0], w[1])
		}
	}
	if found != len(want) {
		t.Errorf("found %d of the %d rows", found, len(want))
	}
}
