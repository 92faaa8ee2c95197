package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
	if res.tps != 24691.234567 || res.processed != 123456 || res.failed != 0 || res.connTime != 12345*time.Microsecond {
		t.Errorf("got %+v", res)
	}

	failing := strings.Replace(pgbench15Output, "failed transactions: 0 (0.000%)", "failed transactions: 7 (0.006%)", 1)
	if res, err := parsePgbench(failing); err != nil || res.failed != 7 {
		t.Errorf("failed count: got %+v, %v", res, err)
	}

	if _, err := parsePgbench("pgbench: error: connection to server failed\n"); err == nil || errors.Is(err, errNoTransactions) {
		t.Errorf("no tps line: got %v, want an error other than errNoTransactions", err)
	}

	// NOTE: pgbench prints no tps line when the run ended while its
	// clients were still connecting.
	empty := pgbench15Output[:strings.Index(pgbench15Output, "number of transactions")] +
		"number of transactions actually processed: 0\nnumber of failed transactions: 0 (NaN%)\n"
	if _, err := parsePgbench(empty); !errors.Is(err, errNoTransactions) {
		t.Errorf("no transaction: got %v, want errNoTransactions", err)
	}
}

// TestSteadyCPU checks the CPU a proxy spent once pgbench's clients were
// connected, and the transactions it counts for it.
func TestSteadyCPU(t *testing.T) {
	// A reading every 500 ms of a 10 s run: 200 ms of CPU a reading while
	// the clients connect (the first 3 s), 50 ms afterwards.
	series := &cpuSeries{}
	var cpu time.Duration
	for at := time.Duration(0); at <= 10*time.Second; at += 500 * time.Millisecond {
		series.points = append(series.points, cpuPoint{at: at, cpu: cpu})
		if at < 3*time.Second {
			cpu += 200 * time.Millisecond
		} else {
			cpu += 50 * time.Millisecond
		}
	}
	tests := []struct {
		name     string
		connTime time.Duration
		duration time.Duration
		ok       bool
		cpu      time.Duration
		txns     int64
	}{
		// From the reading at 3.5 s (3 s + connectSlack) to the one at
		// 9.5 s: 12 readings of 50 ms, 6 s at 1000 tps.
		{name: "connected after 3s", connTime: 3 * time.Second, duration: 10 * time.Second, ok: true, cpu: 600 * time.Millisecond, txns: 6000},
		// From 0.5 s to 9.5 s: 5 readings of 200 ms, 13 of 50 ms.
		{name: "connected at once", connTime: 0, duration: 10 * time.Second, ok: true,
			cpu: 5*200*time.Millisecond + 13*50*time.Millisecond, txns: 9000},
		{name: "less than a second left", connTime: 8500 * time.Millisecond, duration: 10 * time.Second},
		{name: "connected after the end", connTime: 12 * time.Second, duration: 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cpu, txns, ok := steadyCPU(series, pgbenchResult{tps: 1000, connTime: tt.connTime}, tt.duration)
			if ok != tt.ok || cpu != tt.cpu || txns != tt.txns {
				t.Errorf("got %v, %d, %v; want %v, %d, %v", cpu, txns, ok, tt.cpu, tt.txns, tt.ok)
			}
		})
	}
	if _, _, ok := (&cpuSeries{}).between(0, time.Hour); ok {
		t.Error("an empty series has a span")
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

// TestParsePoolFlags checks the transaction-pool flags: their defaults,
// their bounds, and what they make of the server's max_connections and
// the open-file limit.
func TestParsePoolFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantErr  string // a part of the error; "" for none
		pooling  bool
		jobs     int
		maxConns int
		files    uint64
	}{
		{name: "defaults", pooling: true, jobs: 2, maxConns: 400 + 2*50 + 10, files: 5000 + 50 + 256},
		{name: "disabled", args: []string{"--pool-clients", "0"}, maxConns: 400},
		{name: "disabled with idle clients left at default", args: []string{"--pool-clients", "0", "--pool-idle-clients", "5000"}, maxConns: 400},
		{name: "more pgbench clients than idle ones", args: []string{"--pool-clients", "800", "--pool-idle-clients", "0", "--pool-size", "20"},
			pooling: true, jobs: 2, maxConns: 400 + 2*20 + 10, files: 800 + 20 + 256},
		{name: "one client, one job", args: []string{"--pool-clients", "1"}, pooling: true, jobs: 1, maxConns: 510, files: 5000 + 50 + 256},
		{name: "largest", args: []string{"--pool-clients", "10000", "--pool-size", "1000", "--pool-idle-clients", "20000"},
			pooling: true, jobs: 2, maxConns: 400 + 2*1000 + 10, files: 20000 + 1000 + 256},
		{name: "negative clients", args: []string{"--pool-clients", "-1"}, wantErr: "--pool-clients must be between 0 and 10000"},
		{name: "too many clients", args: []string{"--pool-clients", "10001"}, wantErr: "--pool-clients must be between 0 and 10000"},
		{name: "empty pool", args: []string{"--pool-size", "0"}, wantErr: "--pool-size must be between 1 and 1000"},
		{name: "pool too large", args: []string{"--pool-size", "1001"}, wantErr: "--pool-size must be between 1 and 1000"},
		{name: "negative idle clients", args: []string{"--pool-idle-clients", "-1"}, wantErr: "--pool-idle-clients must be between 0 and 20000"},
		{name: "too many idle clients", args: []string{"--pool-idle-clients", "20001"}, wantErr: "--pool-idle-clients must be between 0 and 20000"},
		{name: "not a number", args: []string{"--pool-size", "many"}, wantErr: errUsagePrinted.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseFlags(tt.args, &strings.Builder{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.pooling() != tt.pooling || c.maxConnections() != tt.maxConns || c.fileLimit() != tt.files {
				t.Errorf("pooling %v, max_connections %d, open files %d; want %v, %d, %d",
					c.pooling(), c.maxConnections(), c.fileLimit(), tt.pooling, tt.maxConns, tt.files)
			}
			if tt.pooling && c.poolJobs() != tt.jobs {
				t.Errorf("pool jobs %d, want %d", c.poolJobs(), tt.jobs)
			}
			if got := clusterSettings(c.maxConnections())["max_connections"]; got != fmt.Sprint(tt.maxConns) {
				t.Errorf("cluster max_connections %s, want %d", got, tt.maxConns)
			}
		})
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
	t.Setenv(pgveilAuditKeyEnv, "audit-secret")
	verifier, err := scram.NewVerifier("bench-password", scram.DefaultIterations)
	if err != nil {
		t.Fatal(err)
	}
	upstream := &target{host: "127.0.0.1", port: 5432, user: "postgres"}
	for _, inst := range append(slices.Clone(pgveilInstances), pgveilPoolInstance(50)) {
		t.Run(inst.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "pgveil.hcl")
			conf := pgveilConfigText(inst, dir, 6432, upstream, benchUser, verifier.String())
			if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, diags := policy.Load(path)
			if diags.HasErrors() {
				t.Fatalf("%v\n%s", diags, conf)
			}
			governs := strings.Contains(conf, `table "public.pgbench_accounts"`)
			if governs != (inst.name == targetPgveilGoverned || inst.name == targetPgveilAudited) {
				t.Errorf("governs pgbench_accounts: %v", governs)
			}
			if audited := cfg.Audit != nil; audited != (inst.name == targetPgveilAudited) {
				t.Errorf("audited: %v", audited)
			} else if audited && (cfg.Audit.File != filepath.Join(dir, pgveilAuditFile) || string(cfg.Audit.Key) != "audit-secret") {
				t.Errorf("audit %+v, want %s keyed from %s", cfg.Audit, filepath.Join(dir, pgveilAuditFile), pgveilAuditKeyEnv)
			}
			pool := cfg.Upstream.Pool
			if inst.name == targetPgveilPool {
				if pool.Mode != policy.PoolTransaction || pool.Size != 50 || pool.WaitTimeout != time.Minute {
					t.Errorf("pool %+v, want transaction mode, 50 backends, a 60s wait", pool)
				}
			} else if pool.Mode == policy.PoolTransaction {
				t.Errorf("pools by transaction: %+v", pool)
			}
			if inst.defaultProcs != (inst.name == targetPgveilPool) {
				t.Errorf("Go's default GOMAXPROCS: %v", inst.defaultProcs)
			}
		})
	}
}

// TestPgbouncerConfigs checks the pooling settings of both PgBouncer
// processes.
func TestPgbouncerConfigs(t *testing.T) {
	upstream := &target{host: "127.0.0.1", port: 5432, user: "postgres", password: "secret"}
	tests := []struct {
		inst pgbouncerInstance
		want []string
	}{
		{sessionPgbouncer(150), []string{"pool_mode = session\n", "max_client_conn = 158\n", "default_pool_size = 158\n"}},
		{transactionPgbouncer(50, 500+5000), []string{"pool_mode = transaction\n", "max_client_conn = 5516\n", "default_pool_size = 50\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.inst.name, func(t *testing.T) {
			conf := pgbouncerConfigText(tt.inst, 6432, upstream, "/tmp/userlist.txt")
			for _, w := range tt.want {
				if !strings.Contains(conf, w) {
					t.Errorf("no %q in\n%s", w, conf)
				}
			}
			if strings.Contains(conf, "{{") {
				t.Errorf("placeholder left in\n%s", conf)
			}
		})
	}
}

// poolResults returns the results of a transaction-pool phase: pgveil-pool
// at 0.99x pgbouncer-tx, and idleRSS of pgveil-pool with 5,000 idle
// clients.
func poolResults(idleRSS int64) *results {
	res := newResults()
	res.tpsOf(targetPgBouncerTx, modeSimple).add(1000, nil)
	res.tpsOf(targetPgBouncerTx, modeSimple).add(1200, nil)
	res.tpsOf(targetPgveilPool, modeSimple).add(1089, nil)
	res.addCPU(targetPgBouncerTx, modeSimple, 33*time.Millisecond, 1000)
	res.addCPU(targetPgveilPool, modeSimple, 45*time.Millisecond, 1000)
	res.addBackends(targetPgBouncerTx, 50)
	res.addBackends(targetPgveilPool, 48)
	res.addBackends(targetPgveilPool, 50)
	res.addBackends(targetPgveilPool, 49)
	res.poolIdle[targetPgBouncerTx] = idleCost{clients: 5000, before: 10 << 20, after: 20 << 20}
	res.poolIdle[targetPgveilPool] = idleCost{clients: 5000, before: 40 << 20, after: idleRSS}
	return res
}

// TestPoolTables checks the transaction-pool tables and the goal row of
// pgveil-pool's RSS.
func TestPoolTables(t *testing.T) {
	cfg, err := parseFlags([]string{"--duration", "5s"}, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		idleRSS int64
		verdict string
	}{
		{"within the goal", 100 << 20, "PASS"},
		{"at the goal", 128 << 20, "PASS"},
		{"above the goal", 129 << 20, "MISS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &report{cfg: cfg, res: poolResults(tt.idleRSS)}

			pt := r.poolTable()
			if want := "Transaction pooling: pgbench -S -c 500 through a pool of 50 backends"; !strings.HasPrefix(pt.title, want) {
				t.Errorf("title %q, want it to start with %q", pt.title, want)
			}
			wantRows := [][]string{
				{"pgbouncer-tx", "1100", "1.00x", "33.0 µs", "50", "1000 1200"},
				{"pgveil-pool", "1089", "0.99x", "45.0 µs", "50", "1089"},
			}
			if !slices.EqualFunc(pt.rows, wantRows, slices.Equal[[]string]) {
				t.Errorf("pool table rows\n%q\nwant\n%q", pt.rows, wantRows)
			}

			it := r.poolIdleTable()
			if len(it.rows) != 2 || it.rows[0][0] != targetPgBouncerTx || it.rows[0][5] != "-" ||
				it.rows[1][0] != targetPgveilPool || it.rows[1][1] != "5000" || it.rows[1][5] != tt.verdict {
				t.Errorf("idle table rows %q, want pgbouncer-tx with no verdict, then pgveil-pool %s", it.rows, tt.verdict)
			}
			if it.header[5] != "RSS after <= 128 MiB" {
				t.Errorf("idle table header %q", it.header)
			}

			var goal []string
			for _, row := range r.goalTable().rows {
				if row[0] == "pgveil-pool RSS, 5000 idle clients" {
					goal = row
				}
			}
			if goal == nil || goal[1] != "<= 128 MiB" || goal[3] != tt.verdict {
				t.Errorf("goal row %q, want <= 128 MiB %s", goal, tt.verdict)
			}
		})
	}
}

// TestReportPoolSections checks that the report prints the
// transaction-pool tables in both formats with the phase, and not
// without it.
func TestReportPoolSections(t *testing.T) {
	for _, markdown := range []bool{false, true} {
		for _, pooling := range []bool{false, true} {
			args := []string{}
			if !pooling {
				args = []string{"--pool-clients", "0"}
			}
			cfg, err := parseFlags(args, &strings.Builder{})
			if err != nil {
				t.Fatal(err)
			}
			res := newResults()
			if pooling {
				res = poolResults(100 << 20)
			}
			var out strings.Builder
			(&report{cfg: cfg, res: res}).write(&out, markdown)
			text := out.String()
			for _, title := range []string{"Transaction pooling: pgbench -S -c 500", "Transaction pooling: idle clients", "pgveil-pool RSS, 5000 idle clients"} {
				if strings.Contains(text, title) != pooling {
					t.Errorf("markdown %v, pooling %v: %q printed: %v", markdown, pooling, title, !pooling)
				}
			}
			if markdown && pooling && !strings.Contains(text, "| pgveil-pool | 1089 | 0.99x | 45.0 µs | 50 | 1089 |") {
				t.Errorf("no Markdown row of pgveil-pool in\n%s", text)
			}
		}
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

// TestPgbenchArgs checks the script and protocol of each mode: -S in
// simple and prepared, the built-in TPC-B-like script in simple protocol
// for tpcb.
func TestPgbenchArgs(t *testing.T) {
	for mode, want := range map[string]string{
		modeSimple:   "-S -n -M simple -c 8 -j 2 -T 15",
		modePrepared: "-S -n -M prepared -c 8 -j 2 -T 15",
		modeTPCB:     "-b tpcb-like -n -M simple -c 8 -j 2 -T 15",
	} {
		r := pgbenchRun{mode: mode, clients: 8, jobs: 2, seconds: 15}
		if got := strings.Join(r.args(), " "); got != want {
			t.Errorf("%s: pgbench %s, want %s", mode, got, want)
		}
	}
}
