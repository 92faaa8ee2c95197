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
//	--markdown       print the report as Markdown
//	--pgveil PATH    use this pgveil binary instead of building ./cmd/pgveil
//	--pgbouncer PATH the pgbouncer binary (default: PATH, then /usr/sbin)
//
// # Method
//
// The harness starts everything it measures and removes it afterwards:
//
//  1. a throwaway PostgreSQL cluster (internal/pgtest, fsync off,
//     shared_buffers=256MB, max_connections=200) with a database "bench"
//     filled by `pgbench -i -s SCALE`;
//  2. PgBouncer in session mode in front of it, authenticating clients with
//     SCRAM-SHA-256 against a userlist;
//  3. pgveil, built from ./cmd/pgveil, in front of it, authenticating
//     clients with SCRAM-SHA-256 against its configuration.
//
// All three paths do the same work on the server: the client is "bench" at
// both proxies and "postgres" directly, but every server session logs in as
// "postgres" to database "bench" (pgveil's upstream account, and PgBouncer's
// forced user), so the same role reads the same tables without TLS.
//
// Throughput: for each protocol mode (`-M simple`, `-M prepared`) and each
// target, `pgbench -S -n -c CLIENTS -j JOBS -T DURATION` runs the built-in
// select-only script (one primary-key lookup per transaction), after a
// discarded warm-up run of the same kind. The "tps = N (without initial
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
// Streaming: a Go client (pgx's pgconn, extended protocol, text format)
// reads `SELECT g, repeat('x', 100) FROM generate_series(1, ROWS) g` through
// each target, touching every value and counting its bytes. The rate is
// value bytes per second of the query alone (the connection is opened
// before the clock starts), median of --stream-rounds reads (each takes
// about a second, so more are taken than pgbench rounds), interleaved like
// the throughput runs.
//
// Memory: the peak resident set size (VmHWM in /proc/PID/status) of the
// pgveil and PgBouncer processes, read after the pgbench runs and again
// after the streamed results.
//
// The report ends with the performance targets of the issue — pgveil at
// least as fast as PgBouncer in both modes, streaming at least 0.9× direct,
// peak RSS at most 64 MiB — each marked PASS or MISS. A missed target does
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
//     per-message overhead dominates. Real workloads pay it less.
//   - Other processes on the machine (tests, builds) add noise; the report
//     prints the load average before and after (which counts the
//     benchmark's own processes too: about 3 to 5 while pgbench runs). Use
//     more rounds and longer runs for numbers worth publishing, and compare
//     ratios rather than absolute figures across machines.
//   - PgBouncer in session mode is the fair peer: like pgveil, it gives each
//     client its own server connection for the whole session. Its pooling
//     across pgbench runs does not matter since connection time is not
//     measured.
//   - The streaming client parses every row too; its CPU counts against
//     all targets alike.
//
// Every process the harness starts (PostgreSQL, PgBouncer, pgveil, pgbench)
// is killed by the kernel if the harness dies, and is stopped and its files
// removed when it exits or is interrupted (Ctrl-C).
package main
