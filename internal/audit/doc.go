// Package audit writes and verifies pgveil's tamper-evident audit trail:
// one JSON object per line, each line chained to the previous one by a
// MAC, so that an auditor can prove no record was altered, removed,
// reordered or inserted.
//
// A line holds its fields in a fixed order, zero fields left out:
//
//	{"seq":18,"time":"2026-11-30T02:15:00.123456789Z","event":"statement",…,"prev":"<hex>","mac":"<hex>"}
//
// seq increases by one across the whole chain, rotated files included.
// prev is the mac of the record before (64 zeros for the first record of
// a chain); mac is HMAC-SHA256 under the operator's key (SHA-256 without
// one) of the line's bytes up to, not including, `,"mac":`. Since prev
// is among those bytes, changing any record breaks every mac after it,
// and only the key's holder can compute new ones.
//
// Sessions hand a Record to Log.Write, which only enqueues it. One writer
// goroutine per Log does everything costly: the pg_query fingerprint of
// the statement, literal redaction, hashing of the rewritten SQL, JSON
// encoding, the chain, batched writes with one fsync per batch (group
// commit), size-based rotation, and retrying write errors. Verify checks
// a chain spread over any number of files, under one key or several (a
// key changed), and reports every problem it finds; ParseLine,
// OrderFiles and ReadLines let other tools (pgveil audit search) stream
// it.
package audit
