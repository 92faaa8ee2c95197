// Command pgveil-bench measures what pgveil costs compared with connecting
// to PostgreSQL directly and with PgBouncer, the usual proxy in front of
// PostgreSQL.
//
// Usage:
//
//	go run ./cmd/pgveil-bench [flags]      (or: make bench)
//
//	--scale N        pgbench scale factor for `pgbench -i` (default 10)
//	--clients N      pgbench clients, -c (default 8)
//	--jobs N         pgbench threads, -j (default 2)
//	--duration D     length of each measured pgbench run (default 15s)
//	--warmup D       length of the discarded run before each measured one
//	                 (default 3s; 0 disables it)
//	--rounds N       how many times every pgbench run is repeated (default 2)
//	--stream-rounds N
//	                 how many times every streamed result is read (default 5)
//	--rows N         rows of the streamed result (default 1000000)
//	--idle-clients N idle connections opened to pgveil and to PgBouncer to
//	                 measure what an idle client costs (default 150, at
//	                 most 150: each holds a server connection)
//	--pool-clients N pgbench clients of the transaction-pool phase
//	                 (default 500; 0 disables the phase)
//	--pool-size N    upstream backends of each transaction pool (default
//	                 50)
//	--pool-idle-clients N
//	                 idle connections opened to each transaction-pooling
//	                 proxy (default 5000; 0: none)
//	--pgveil-gomaxprocs N
//	                 GOMAXPROCS of pgveil and pgveil-governed (default 1;
//	                 0: Go's default)
//	--markdown       print the report as Markdown
//	--pgveil PATH    use this pgveil binary instead of building ./cmd/pgveil
//	--pgbouncer PATH the pgbouncer binary (default: PATH, then /usr/sbin)
//
// # Method
//
// The harness starts everything it measures and removes it afterwards:
//
//  1. a throwaway PostgreSQL cluster (internal/pgtest, fsync off,
//     shared_buffers=256MB, max_connections=250, plus twice --pool-size
//     and 10 with the transaction-pool phase) with a database "bench"
//     filled by `pgbench -i -s SCALE`;
//  2. PgBouncer in session mode in front of it, authenticating clients with
//     SCRAM-SHA-256 against a userlist;
//  3. pgveil, built from ./cmd/pgveil, in front of it, authenticating
//     clients with SCRAM-SHA-256 against its configuration. It governs no
//     table (`schema "public" { default = "allow" }`): every statement is
//     still checked by the firewall (parsed, or recognised by the shape
//     of a statement already parsed), but left as written;
//  4. a second pgveil process, "pgveil-governed" (its own port, the same
//     --pgveil-gomaxprocs), whose configuration is the first one plus the
//     policy below, and a third, "pgveil-audited", which is
//     pgveil-governed plus an audit block with every default (the
//     rewritten SQL in full, fsync at most every 200 ms, sessions waiting
//     when the queue is full), the file in its directory, keyed by a
//     random secret in its environment: the cost of the audit trail every
//     deployment writes. Before measuring, the harness checks that a
//     statement reaches the file; after the pgbench runs, it verifies the
//     chain with the built `pgveil audit verify` and reports
//     its records and size;
//  5. for the transaction-pool phase (unless --pool-clients is 0), a
//     second PgBouncer, "pgbouncer-tx", with pool_mode = transaction and
//     default_pool_size = POOL-SIZE, and a third pgveil, "pgveil-pool",
//     with the configuration of the first plus, in its upstream block,
//     `pool { mode = "transaction" size = POOL-SIZE wait_timeout = "60s" }`.
//     pgveil-pool runs with Go's default GOMAXPROCS, not
//     --pgveil-gomaxprocs: one event loop per core, as a deployment runs
//     it. (When transaction-mode sessions relayed on goroutines, one
//     processor made their hand-offs the bottleneck: 0.56x to 0.63x
//     PgBouncer's TPS with GOMAXPROCS=1 on a 2-core machine.)
//
// pgveil-governed's policy governs pgbench_accounts with a row rule:
//
//	table "public.pgbench_accounts" {}
//	rule "some_branches" {
//	  tables = ["public.pgbench_accounts"]
//	  roles  = ["bench"]
//	  where  = "bid <= 5"
//	}
//
// so that pgbench -S measures the firewall's real work: each statement
// naming pgbench_accounts is rewritten to read
// (SELECT ... FROM public.pgbench_accounts WHERE bid <= 5), through the
// rewrite cache, and PostgreSQL runs the scoped subquery. The other pgbench
// tables stay open. Before measuring, the harness checks that the rule is in
// force (of accounts 1 and 100000×SCALE only the first is visible when
// SCALE > 5) and fails otherwise. At the default scale half the accounts are
// hidden, so about half the lookups return no row; at --scale 5 or less the
// rule hides nothing, but the statements are still rewritten.
//
// All paths do the same work on the server, but for the governed target's
// rule: the client is "bench" at the proxies and "postgres" directly, but
// every server session logs in as "postgres" to database "bench" (pgveil's
// upstream account, and PgBouncer's forced user), so the same role reads
// the same tables without TLS.
//
// Throughput: for each protocol mode (`-M simple`, `-M prepared`) and each
// target, `pgbench -S -n -c CLIENTS -j JOBS -T DURATION` runs the built-in
// select-only script (one primary-key lookup per transaction), after a
// discarded warm-up run of the same kind. A third mode, "tpcb", runs
// pgbench's default script the same way (`-b tpcb-like -M simple`: three
// UPDATEs, a SELECT and an INSERT in a transaction, with deltas of either
// sign inlined), what a pgbench run with no script option measures; it has
// no target, and pgveil-governed's rule hides the accounts its UPDATEs
// and SELECT miss. The "tps = N (without initial
// connection time)" line is the sample, so connection set-up (where pgveil
// and PgBouncer authenticate) is not measured. Targets are interleaved
// inside every round and their order rotates from round to round, so that
// slow drifts (another process starting, caches warming) spread over all of
// them; the report gives the median of the rounds and every sample. For
// the proxies it also gives their CPU time (user plus system, from
// /proc/PID/stat, 10 ms resolution) over the measured runs divided by the
// transactions processed: a cost per transaction that depends less on what
// else the machine is doing than TPS does.
//
// With enforcement, the two protocol modes cost pgveil-governed very
// differently. The rewrite cache is keyed by the exact statement text, and
// pgbench -S in simple mode sends a different literal (the account id) in
// every statement, so nearly every statement is parsed and rewritten anew
// (the constant is pushed into the rewritten statement, so rewrites cannot
// be shared by shape, as statements forwarded unchanged are at the
// ungoverned pgveil). In prepared mode each client sends the statement
// text once (Parse) and then only binds parameters, so it is rewritten
// once and found in the cache afterwards.
//
// Streaming: a Go client (pgx's pgconn, extended protocol, text format)
// reads `SELECT g, repeat('x', 100) FROM generate_series(1, ROWS) g` through
// each target but pgveil-governed and pgveil-audited (the streamed query
// reads no table, so their rule would change nothing), touching every value and counting its bytes. The rate is
// value bytes per second of the query alone (the connection is opened
// before the clock starts), median of --stream-rounds reads (each takes
// about a second, so more are taken than pgbench rounds), interleaved like
// the throughput runs.
//
// Memory: the peak resident set size (VmHWM in /proc/PID/status) of the
// three pgveil processes and PgBouncer, read after the pgbench runs and again
// after the streamed results (pgveil-governed and pgveil-audited are idle meanwhile). Then
// --idle-clients connections are opened to pgveil and to PgBouncer, one
// after another; each runs SELECT 1 and stays idle, and three seconds
// after the last the RSS each proxy gained (VmRSS) is read.
//
// Transaction pooling: many clients on a few upstream backends.
// `pgbench -S -M simple -c POOL-CLIENTS -j JOBS` runs through pgbouncer-tx
// and pgveil-pool, for the same duration, warm-up and rounds as the other
// throughput runs and interleaved likewise. The report gives TPS, the
// proxy's CPU per transaction, and the most upstream backends the proxy
// was seen holding: every second of each measured run a direct connection
// counts the backends of the bench database in pg_stat_activity by their
// application_name (for pgveil's pool "pgveil:pool", or once a session
// took the backend "pgveil:bench:" and the clients' application_name;
// PgBouncer passes on its clients' application_name, which pgbench is
// given for this phase).
// pgbench connects its clients within its -T duration, before the first
// transaction, and connecting hundreds takes seconds (PgBouncer derives a
// SCRAM key from the plain-text password of its userlist for each
// client): a warm-up that ends before they are all connected is not a
// failure, and the CPU per transaction counts only the time when they all
// are. The proxy's CPU time is read every 100 ms, and the CPU from
// pgbench's "initial connection time" to the end of the run (0.3 s in
// from either end) is divided by the transactions of that time at the
// run's rate. Then --pool-idle-clients connections (16 connecting at a
// time) are opened to each pooling proxy and left idle after a SELECT 1,
// and the RSS each proxy gained is read as above; in transaction mode an
// idle client holds no backend, hence no cap like --idle-clients's. The
// harness sets its open-file limit (RLIMIT_NOFILE) to the hard limit,
// for itself and what it starts, and warns when that is below what the
// phase needs (its clients plus their backends, per process).
//
// The report ends with the performance targets of the issue — pgveil at
// least as fast as PgBouncer in both modes; pgveil-governed at least 0.9×
// PgBouncer in simple mode and 1.0× in prepared mode; pgveil's streaming
// at least 0.9× direct; pgveil's peak RSS at most 64 MiB; pgveil-pool's
// RSS with the pool phase's idle clients connected at most 128 MiB — each
// marked PASS or MISS. A missed target does
// not change the exit status: this is a benchmark, not a test. The exit
// status is 1 when a step fails (setup, or a measurement through a target
// errs), and 130 after an interrupt.
//
// # Caveats
//
//   - Everything runs on one machine: pgbench, the proxy and PostgreSQL
//     compete for the same cores. On a small machine (2 cores) a proxy's CPU
//     time is taken from the server, so the ratios measure total CPU cost
//     per transaction as much as latency. Direct connections have no such
//     competitor and are an upper bound, not a peer.
//   - pgbench -S is the worst case for a proxy: tiny statements where the
//     per-message overhead dominates. Real workloads pay it less. For
//     pgveil-governed in simple mode it is also the worst case for the
//     rewrite cache (see above); applications that send parameters, as
//     most drivers do, behave like prepared mode.
//   - Other processes on the machine (tests, builds) add noise; the report
//     prints the load average before and after (which counts the
//     benchmark's own processes too: about 3 to 5 while pgbench runs). Use
//     more rounds and longer runs for numbers worth publishing, and compare
//     ratios rather than absolute figures across machines.
//   - PgBouncer in session mode is the fair peer: like pgveil, it gives each
//     client its own server connection for the whole session, and like
//     pgveil (upstream.pool.keep_idle) it keeps that connection for a
//     later client once the session ends. That matters even though
//     connection time is not measured: a fresh backend runs slower at
//     first (cold caches, first touches of shared memory), and pgbench
//     connects anew at each run. In the transaction-pool phase PgBouncer in transaction
//     mode is the peer of pgveil-pool: both lend a backend for each
//     transaction. PgBouncer opens server connections as clients wait
//     for them, so it may hold fewer than --pool-size; both keep them
//     open between runs, so only the first round starts with an empty
//     pool (the default warm-up ends before 500 clients are connected).
//   - pgbench -c 500 is heavy for 2 cores: pgbench's own CPU competes with
//     the proxy and the server more than at -c 8.
//   - The streaming client parses every row too; its CPU counts against
//     all targets alike.
//
// Every process the harness starts (PostgreSQL, PgBouncer, pgveil, pgbench)
// is killed by the kernel if the harness dies, and is stopped and its files
// removed when it exits or is interrupted (Ctrl-C).
package main
