package proxy

import (
	"sync"
	"sync/atomic"

	"github.com/pgveil/pgveil/proxy/statement"
)

// Queries a failed extended batch skips.
//
// After an error in an extended-protocol message (Parse, Bind, Describe,
// Close, Execute) PostgreSQL discards every message up to the next Sync,
// a Query or a FunctionCall included (postgres.c: ignore_till_sync), and
// answers that Sync alone: Parse, Bind, Execute of SELECT 1/0, then a
// Query, then Sync, get one ReadyForQuery. An error of the Query itself
// starts no skipping (a Query is not an extended-protocol message): the
// Query gets its ReadyForQuery, and the Sync its own.
//
// pgveil counts each Query it forwards as a batch boundary (session.sent)
// — the client's, and the refusal marker it sends in place of a refused
// Query or FunctionCall — since each normally gets one ReadyForQuery. A
// Query the server skipped gets none, and the ReadyForQuery of the Sync
// must close it too: counted apart, done would stay one batch behind for
// the rest of the session, crediting rows and errors to the wrong
// statements, and the session would never look idle again (a pooled
// backend held, a graceful shutdown waiting).
//
// Whether a Query is skipped is not known when it is forwarded: the
// messages before it may not be answered yet, and waiting for their
// answers could wait forever (the server flushes them only at a Sync or
// a Flush). The backend relay learns it from the answers. The server
// answers each extended message with exactly one of ParseComplete,
// BindComplete, CloseComplete, a Describe's RowDescription or NoData, an
// Execute's CommandComplete, EmptyQueryResponse or PortalSuspended
// (askKind), or with an error, and answers them in order. So an
// ErrorResponse that comes, in a batch a Query closed, after fewer such
// answers than the extended messages pgveil wrote before that Query is
// an extended message's: the server skips that Query, and every Query up
// to the next Sync, and the ReadyForQuery that comes next is that Sync's.
// An error after as many answers is the Query's own.
//
// The client relay counts the extended messages it writes upstream in
// each batch (the client's, the refusal markers in their place, and
// those the tracker injects); for each batch a Query closes after an
// extended message since the last Sync, it notes the count before the
// Query goes out, so the note is there when its answers come. The
// backend relay counts the answers and decides at the ReadyForQuery.
//
// NOTE: the count errs only towards closing too few batches, which keeps
// a backend, never towards too many, which would let a pooled backend go
// with answers still to come: an extended message pgveil wrote and did
// not count, or an answer counted twice, makes an extended message's
// error look like the Query's. Syncs a COPY ignored are the known case:
// the server's skipping may then span a Sync pgveil saw go out
// (copy_sync.go leaves such batches unanswered too).
type extSkips struct {
	// ext counts the extended messages written upstream since the last
	// batch boundary; window reports that one was written since the last
	// Sync (client relay only).
	ext    int64
	window bool

	mu sync.Mutex
	// queries are the batches, oldest first, that a Query closed after
	// an extended message since the last Sync, with the count of
	// extended messages each holds before its Query. NOTE: guarded by mu.
	queries []extQuery
	// held reports that queries may hold something: a session that never
	// mixes the protocols takes mu at no ReadyForQuery.
	held atomic.Bool
	// over is set once queries held more than statement.MaxHeldMessages:
	// Queries after an error, up to a Sync, that the server skips
	// unanswered (held.go; client relay only).
	over bool

	// answers counts the answers to extended messages received since the
	// last ReadyForQuery; failed reports that an ErrorResponse came since,
	// errAt the answers before the first (backend relay only).
	answers int64
	errAt   int64
	failed  bool
}

// extQuery is batch number batch, which a Query closed after ext
// extended messages of its own.
type extQuery struct {
	batch, ext int64
}

// message notes an extended-protocol message (Parse, Bind, Describe,
// Close, Execute) written upstream (client relay).
func (x *extSkips) message() {
	x.ext++
	x.window = true
}

// boundary notes batch number n closed, by a Sync when sync is set,
// otherwise by a Query (the client's, or a refusal's marker) about to be
// written upstream (client relay).
func (x *extSkips) boundary(n int64, sync bool) {
	if sync {
		x.ext, x.window = 0, false
		return
	}
	if x.window {
		x.mu.Lock()
		x.queries = append(x.queries, extQuery{batch: n, ext: x.ext})
		x.over = x.over || len(x.queries) > statement.MaxHeldMessages
		x.held.Store(true)
		x.mu.Unlock()
	}
	x.ext = 0
}

// answer notes an upstream message of type typ other than
// ReadyForQuery (backend relay).
func (x *extSkips) answer(typ byte) {
	if typ == 'E' {
		if !x.failed {
			x.failed, x.errAt = true, x.answers
		}
		return
	}
	if _, ok := askKind(typ, true); ok {
		x.answers++
	}
}

// closes returns, at a ReadyForQuery, the batches it closes when it
// answers the Sync of a failed extended batch whose Queries the server
// skipped: those from done+1 to that Sync's; 0 otherwise, and never more
// than unanswered, the batches sent and not answered yet (backend relay).
func (x *extSkips) closes(done, unanswered int64) int64 {
	failed, errAt := x.failed, x.errAt
	x.answers, x.failed = 0, false
	if !x.held.Load() {
		return 0
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	q := x.queries
	i := 0
	for i < len(q) && q[i].batch <= done {
		i++
	}
	drop := i
	var n int64
	if failed && i < len(q) && q[i].batch == done+1 && errAt < q[i].ext {
		// The Queries of the batches after it up to the Sync were
		// skipped too: in one extended batch, each batch before its
		// Sync's was closed by a Query, and has its note.
		j, b := i, done+1
		for j < len(q) && q[j].batch == b {
			j++
			b++
		}
		// b is the Sync's batch, sent before its answer came.
		if b-done <= unanswered {
			n, drop = b-done, j
		}
	}
	x.queries = statement.DropFront(x.queries, drop)
	x.held.Store(len(x.queries) > 0)
	return n
}
