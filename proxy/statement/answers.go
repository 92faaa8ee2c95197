package statement

import (
	"bytes"
	"strconv"
	"time"

	"github.com/pgveil/pgveil/rewrite"
)

// This file holds the Tracker's events of the backend relay: the
// upstream's answers (ParseComplete, BindComplete, CloseComplete,
// ErrorResponse, ReadyForQuery, and the results executions are audited
// by) and the executions they finish.

// Finished is an Execution whose answers are all in, for the audit
// trail, with the note its record carries.
type Finished struct {
	Exec *Execution
	Note string
}

// NoteRolledBack is the note of an execution that ended without error
// in a batch that then failed outside any transaction block: PostgreSQL
// rolled back the batch's implicit transaction, the execution's changes
// with it. The typical case is a deferred constraint failing at the
// implicit commit of the batch's Sync, after every Execute of the batch
// had its CommandComplete.
const NoteRolledBack = "rolled back: its batch failed after it ran (at the implicit commit of its Sync, or in a later message)"

// OnAnswer is the event of an answer of type typ and total bytes the
// upstream sent, other than ReadyForQuery. errCode and errMsg describe
// an ErrorResponse as the client received it; refused says it was a
// refusal's marker. It reports whether the answer is to a message pgveil
// injected, which the client must not see, and returns the Execution
// to record now, if any: executions that end before their batch's
// ReadyForQuery are kept for it (Tracker.finished), so this is one that
// more of them than maxFinished pushed out.
func (t *Tracker) OnAnswer(typ byte, total int, errCode, errMsg string, refused bool) (swallow bool, done *Execution) {
	// NOTE: audit and versions never change: a row of a session that
	// does not audit needs no lock (results stream through here).
	if !t.audit && (t.versions == nil || typ != '1' && typ != '2' && typ != '3') {
		return false, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.versions != nil {
		switch typ {
		case '1', '3':
			if t.parseOrCloseComplete() {
				return true, nil
			}
		case '2':
			t.bindComplete()
		}
	}
	if t.audit {
		done = t.account(typ, total, errCode, errMsg, refused)
	}
	return false, done
}

// WantsTag reports whether the CommandComplete the upstream sends next
// should reach OnCommandComplete with its tag: it ends, in an audited
// session, an execution of a write (insert, update, delete, copy,
// execute), whose record says the rows it changed (Execution.Affected).
// Every other CommandComplete goes to OnAnswer undecoded: a SELECT's
// record counts its DataRows.
func (t *Tracker) WantsTag() bool {
	if !t.audit {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	x := t.cur
	if x == nil && len(t.pending) > 0 && t.pending[0].batch <= t.done+1 {
		x = t.pending[0]
	}
	return x != nil && x.Info.Result != nil && writes(x.Info.Result.Kinds)
}

// writes reports whether kinds hold a statement whose CommandComplete
// tag counts rows it changed: INSERT, UPDATE, DELETE, COPY (FROM STDIN;
// a COPY TO's tag replaces the count of its CopyData, which a HEADER line
// or a binary trailer adds to), and EXECUTE of a statement
// prepared with SQL, which may be any of them.
func writes(kinds []string) bool {
	for _, k := range kinds {
		switch k {
		case "insert", "update", "delete", "copy", "execute":
			return true
		}
	}
	return false
}

// returnsChanged reports whether kinds are those of one INSERT, UPDATE
// or DELETE, whose RETURNING rows, read in chunks through a suspended
// portal, are the rows it changed.
// NOTE: not an EXECUTE, whose prepared statement may be a SELECT.
func returnsChanged(kinds []string) bool {
	if len(kinds) != 1 {
		return false
	}
	switch kinds[0] {
	case "insert", "update", "delete":
		return true
	}
	return false
}

// OnCommandComplete is OnAnswer of a CommandComplete of total bytes
// whose tag WantsTag asked for: the rows a write's tag says it changed
// are added to its execution's Affected.
func (t *Tracker) OnCommandComplete(total int, tag []byte) (done *Execution) {
	if !t.audit {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if x := t.next(); x != nil {
		x.Affected += affectedOf(tag, x.copyIn)
		x.copyIn = false
		if x.copyOut {
			if n, ok := copyCount(tag); ok {
				x.Rows += n - x.copyData
			}
			x.copyOut, x.copyData = false, 0
		}
	}
	return t.account('C', total, "", "", false)
}

// affectedOf is the count of rows a CommandComplete tag of a write
// says it changed: INSERT oid n, UPDATE n, DELETE n, MERGE n, and COPY
// n when copyIn (a COPY FROM STDIN: a COPY TO's n is the rows the
// client read); 0 for any other tag, or one whose count does not parse.
func affectedOf(tag []byte, copyIn bool) int64 {
	verb, rest, ok := bytes.Cut(tag, []byte{' '})
	if !ok {
		return 0
	}
	switch string(verb) {
	case "INSERT":
		// INSERT oid rows: the oid is always 0 since PostgreSQL 12.
		if _, rest, ok = bytes.Cut(rest, []byte{' '}); !ok {
			return 0
		}
	case "UPDATE", "DELETE", "MERGE":
	case "COPY":
		if !copyIn {
			return 0
		}
	default:
		return 0
	}
	n, err := strconv.ParseInt(string(rest), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// copyCount is the n of a COPY n tag: a COPY TO's rows sent.
func copyCount(tag []byte) (int64, bool) {
	verb, rest, ok := bytes.Cut(tag, []byte{' '})
	if !ok || string(verb) != "COPY" {
		return 0, false
	}
	n, err := strconv.ParseInt(string(rest), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// SetBackend tells the Tracker the process id of the upstream backend
// whose answers come from now on: the session's, or in transaction-pool
// mode the one it holds (0 when it lets it go). Executions answered take
// it (Execution.BackendPID).
func (t *Tracker) SetBackend(pid uint32) {
	t.mu.Lock()
	t.backend = pid
	t.mu.Unlock()
}

// OnError is the event of an ErrorResponse of the batch being answered,
// before its OnAnswer: the batch's object changes may not have run.
func (t *Tracker) OnError() {
	t.mu.Lock()
	t.batchErr = true
	t.mu.Unlock()
}

// OnReadyForQuery is the event of the ReadyForQuery, of total bytes and
// transaction status status, that closes the batch being answered, and
// the batches-1 after it whose Syncs a COPY FROM STDIN ignored or whose
// Queries the server skipped after an error. The object changes of its
// statements are resolved, injections the server skipped after an error
// are dropped (their statements stay unconfirmed and are prepared again
// at their next Bind), and the client's skipped Parse and Close messages
// are counted as answered. It returns the executions it finishes, in
// order: those that ended before it, the one being answered, and those
// the server skipped after an error. When the batch ended in an error,
// whoever's, outside a transaction block, the executions that ended
// before it without error carry that error (NoteRolledBack).
func (t *Tracker) OnReadyForQuery(total int, batches int64, status byte) []Finished {
	t.mu.Lock()
	defer t.mu.Unlock()
	closing := t.done + batches
	var out []Finished
	if t.audit {
		out = t.takeFinished(status)
		if x := t.cur; x != nil {
			x.Bytes += int64(total)
			t.cur = nil
			out = append(out, Finished{Exec: x})
		}
		for _, skipped := range t.takePending(closing) {
			out = append(out, Finished{Exec: skipped, Note: "not executed: an earlier message of its batch failed"})
		}
	}
	t.done = closing
	for len(t.objPending) > 0 && t.objPending[0].batch <= closing {
		c := t.objPending[0]
		c.failed = t.batchErr
		t.objResolved = append(t.objResolved, c)
		t.objPending = t.objPending[1:]
	}
	t.batchErr = false
	t.releaseBatches(closing)
	if t.versions == nil {
		return out
	}
	n := 0
	for n < len(t.injected) && t.injected[n].batch <= closing {
		n++
	}
	t.injected = DropFront(t.injected, n)
	for n = 0; n < len(t.awaiting) && t.awaiting[n].batch <= closing; n++ {
	}
	t.awaiting = DropFront(t.awaiting, n)
	for n = 0; n < len(t.awaitingBinds) && t.awaitingBinds[n].batch <= closing; n++ {
	}
	t.awaitingBinds = DropFront(t.awaitingBinds, n)
	for n = 0; n < len(t.batchPC) && t.batchPC[n].batch <= closing; n++ {
		t.pcSeen, t.bindSeen = t.batchPC[n].pc, t.batchPC[n].binds
		if t.batchPC[n].simple {
			t.simpleHeld--
		}
	}
	t.batchPC = DropFront(t.batchPC, n)
	t.compact()
	return out
}

// keepCap is the capacity a queue keeps once emptied: enough for the
// batches of any client, little for a session that waits.
const keepCap = 64

// DropFront drops the first n elements of the queue s in place, so that
// its array serves the next appends: a queue resliced from the front
// loses its capacity and allocates anew, here at every batch. A queue
// left with far more capacity than it holds (a failed batch the client
// kept sending to) gets a smaller array: the session does not keep it.
func DropFront[T any](s []T, n int) []T {
	if n == 0 {
		return s
	}
	if n == 1 && len(s) == 1 {
		// A queue of one answered, the common case: what clear costs
		// a call for.
		return PopFront(s)
	}
	if len(s)-n > n {
		// More stay than go: a copy at each ReadyForQuery of a long
		// pipeline would cost its length each time.
		clear(s[:n])
		return s[n:]
	}
	m := copy(s, s[n:])
	clear(s[m:])
	if c := cap(s); c > keepCap && m < c/4 {
		if m == 0 {
			return nil
		}
		return append(make([]T, 0, 2*m), s[:m]...)
	}
	return s[:m]
}

// PopFront drops the first element of the queue s, answered, cleared so
// that the array, which the slice keeps, no longer holds what it pointed
// to: an emptied queue lets a large array go, which the slice, its
// capacity shrunk, would otherwise keep until the next appends, and
// keeps a small one (keepCap) for the next appends: a
// session that sends one message at a time and waits for its answer
// (pgbench -M prepared) allocated the queue's array anew for each.
func PopFront[T any](s []T) []T {
	var zero T
	s[0] = zero
	if len(s) == 1 {
		if cap(s) > keepCap {
			return nil
		}
		return s[:0]
	}
	return s[1:]
}

// OnEnd is the event of the session's end, once both relays stopped: it
// returns the executions still awaited, which were cut short.
func (t *Tracker) OnEnd() []*Execution {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*Execution
	if t.cur != nil {
		out = append(out, t.cur)
		t.cur = nil
	}
	out = append(out, t.finished...)
	clear(t.finished)
	t.finished = t.finished[:0]
	return append(out, t.takePending(int64(^uint64(0)>>1))...)
}

// takeFinished returns the executions of the batch answered that ended
// before its ReadyForQuery, of transaction status status, and forgets
// them and the batch's errors. After an error, whoever's, the
// batch's implicit transaction was rolled back when no transaction block
// is open (status 'I'): the executions that ended without error since
// the last transaction control statement of the batch (a COMMIT commits
// what came before it) get it, noted (mu held).
func (t *Tracker) takeFinished(status byte) []Finished {
	var out []Finished
	if len(t.finished) > 0 {
		out = make([]Finished, len(t.finished))
		from := len(t.finished)
		if t.late && status == 'I' {
			from = 0
			for i, x := range t.finished {
				if x.Info.Result == nil || transactionControl(x.Info.Result) {
					from = i + 1
				}
			}
		}
		for i, x := range t.finished {
			out[i].Exec = x
			if i >= from && x.SQLState == "" && x.Info.Refusal == nil {
				x.SQLState, x.UpstreamError = t.lateCode, t.lateMsg
				out[i].Note = NoteRolledBack
			}
		}
		clear(t.finished)
		t.finished = t.finished[:0]
	}
	t.late, t.lateCode, t.lateMsg, t.errSeen = false, "", "", false
	return out
}

// transactionControl reports whether res is transaction control only
// (BEGIN, COMMIT, ROLLBACK, SAVEPOINT…).
func transactionControl(res *rewrite.Result) bool {
	if len(res.Kinds) == 0 {
		return false
	}
	for _, k := range res.Kinds {
		if k != "transaction" {
			return false
		}
	}
	return true
}

// bindComplete notes a BindComplete (mu held).
func (t *Tracker) bindComplete() {
	if len(t.awaitingBinds) > 0 && t.awaitingBinds[0].pos == t.bindSeen {
		t.awaitingBinds[0].e.confirmed = true
		t.awaitingBinds[0].e = nil
		t.awaitingBinds = PopFront(t.awaitingBinds)
	}
	t.bindSeen++
}

// parseOrCloseComplete notes a ParseComplete or CloseComplete and
// reports whether it answers an injected message (mu held).
func (t *Tracker) parseOrCloseComplete() bool {
	if len(t.injected) > 0 {
		in := t.injected[0]
		if in.batch == t.done+1 && in.after == t.pcSeen {
			in.answers--
			if in.answers == 0 {
				// The Parse is answered: the upstream holds the
				// statement of in.Info's policy.
				in.Info.confirmed = true
				t.release(in.batch, in.size)
				t.injected[0] = nil
				t.injected = PopFront(t.injected)
			}
			return true
		}
	}
	if len(t.awaiting) > 0 && t.awaiting[0].pos == t.pcSeen {
		a := &t.awaiting[0]
		*a.confirmed = true
		t.release(a.batch, a.size)
		a.confirmed = nil
		t.awaiting = PopFront(t.awaiting)
	}
	t.pcSeen++
	return false
}

// OnRefusedAnswer is OnAnswer of a refusal's marker error of total
// bytes, in whose place the client was sent r: an Execution that ran a
// statement pgveil prepared in place of a refused one (a refused PREPARE
// TRANSACTION in a transaction block, prepared as its rollbackMarker) is
// recorded as the refusal of the statement it replaced (Info.Replaced),
// or r's, not as the statement sent upstream.
func (t *Tracker) OnRefusedAnswer(total int, r *Refusal) (done *Execution) {
	if !t.audit {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if x := t.next(); x != nil && x.Info.Refusal == nil && x.Refusal == nil {
		x.Refusal = r
		if x.Info.Replaced != nil {
			// Its marker's refusal was forgotten with the Parse's batch
			// (r says no rule): the one it replaced does.
			x.Refusal = x.Info.Replaced
		}
	}
	return t.account('E', total, "", "", true)
}

// account adds an answer of typ and total bytes to the Execution it
// answers, and keeps that Execution for the batch's ReadyForQuery when
// the answer finishes it; it returns the one to record now, if any (see
// OnAnswer). The batch's first error, whoever's (a later Execute's, a
// Bind's, a commit's, a refusal's marker), is kept for the executions
// that ended before it: outside a transaction block, it rolls them back
// with the batch's implicit transaction (mu held).
func (t *Tracker) account(typ byte, total int, errCode, errMsg string, refused bool) *Execution {
	x := t.next()
	if x != nil && x.BackendPID == 0 && !refused {
		x.BackendPID = t.backend
	}
	if typ == 'E' {
		if !t.errSeen && len(t.finished) > 0 {
			t.late, t.lateCode, t.lateMsg = true, errCode, errMsg
		}
		t.errSeen = true
	}
	if x == nil {
		return nil
	}
	x.Bytes += int64(total)
	switch typ {
	case 'D', 'd':
		// DataRow, or CopyData of COPY TO STDOUT: one row each, until
		// the COPY's tag says how many rows it sent (OnCommandComplete).
		x.Rows++
		if x.copyOut {
			x.copyData++
		}
	case 'H':
		// CopyOutResponse: a header line (HEADER) and a binary
		// trailer are CopyData of no row; the tag counts the rows.
		x.copyOut, x.copyData = true, 0
	case 'G':
		// CopyInResponse: the COPY's tag counts the rows it wrote.
		x.copyIn = true
	case 'E':
		if !refused && x.SQLState == "" {
			x.SQLState, x.UpstreamError = errCode, errMsg
		}
		if !x.untilReady {
			return t.ended(x)
		}
	case 's':
		// PortalSuspended: the CommandComplete of the portal's last
		// Execute counts the rows of its own fetch alone, so each
		// Execute of a write counts the rows it returned (RETURNING
		// returns each row the write changed, once).
		if x.Info != nil && x.Info.Result != nil && returnsChanged(x.Info.Result.Kinds) {
			x.Affected += x.Rows
		}
		if !x.untilReady {
			return t.ended(x)
		}
	case 'C', 'I':
		if !x.untilReady {
			return t.ended(x)
		}
	}
	return nil
}

// ended keeps x, the Execution being answered, which its last answer
// ended, for the batch's ReadyForQuery, and returns the oldest kept when
// there are too many (mu held).
func (t *Tracker) ended(x *Execution) *Execution {
	t.cur = nil
	x.End = time.Now()
	t.finished = append(t.finished, x)
	if len(t.finished) <= maxFinished {
		return nil
	}
	old := t.finished[0]
	t.finished = DropFront(t.finished, 1)
	return old
}

// next returns the Execution the upstream's next answer belongs to,
// taking it from the queue when it belongs to the batch being answered,
// or nil when nothing is awaited (mu held).
func (t *Tracker) next() *Execution {
	if t.cur == nil && len(t.pending) > 0 && t.pending[0].batch <= t.done+1 {
		t.cur = t.pending[0]
		t.release(t.cur.batch, t.cur.held)
		if t.cur.simple {
			t.simpleHeld--
		}
		t.pending[0] = nil
		t.pending = PopFront(t.pending)
	}
	return t.cur
}

// takePending takes from the queue the executions of the batches up to
// done that are still waiting: the server skipped them after an error
// (mu held).
func (t *Tracker) takePending(done int64) []*Execution {
	n := 0
	for n < len(t.pending) && t.pending[n].batch <= done {
		n++
	}
	if n == 0 {
		return nil
	}
	out := make([]*Execution, n)
	copy(out, t.pending[:n])
	for _, x := range out {
		if x.simple {
			t.simpleHeld--
		}
	}
	t.pending = DropFront(t.pending, n)
	return out
}

// Execution is one audited unit awaiting its results upstream: a Query
// message (all of its statements, up to ReadyForQuery), an Execute of a
// portal (up to CommandComplete, EmptyQueryResponse, PortalSuspended or
// an error), or a refused Parse or Execute (up to its marker error).
type Execution struct {
	Info  *Info
	Start time.Time
	// End is when its last answer came, for one that ends before its
	// batch's ReadyForQuery; zero otherwise.
	End time.Time
	// untilReady: the Execution ends at ReadyForQuery (Query messages).
	untilReady bool
	// batch is the number of the ReadyForQuery that closes the batch the
	// Execution was sent in (see session.sent and session.done).
	batch int64
	// held is the bytes counted in its batch's load until its answers
	// start; simple marks the Query of a simple batch, not counted
	// (OnSimpleBatchClosed).
	held        int64
	simple      bool
	Rows, Bytes int64
	// Affected is the rows its writes changed, as their CommandComplete
	// tags say (OnCommandComplete), or, for an Execute of a write its
	// portal's row limit suspended, the rows it returned; copyIn marks a COPY FROM STDIN under
	// way, whose tag counts rows written, not read.
	Affected int64
	copyIn   bool
	// copyOut marks a COPY TO STDOUT under way, and copyData counts its
	// CopyData so far, in Rows until its tag replaces them with its n.
	copyOut                 bool
	copyData                int64
	SQLState, UpstreamError string
	// Refusal is the refusal whose marker answered it when its Info has
	// none (OnRefusedAnswer): the client was sent that refusal.
	//
	// NOTE: the audit record says denied, with the refusal's rule, not
	// what pgveil sent upstream in the refused statement's place.
	Refusal *Refusal
	// BackendPID is the process id of the upstream backend whose answer
	// it had first (Tracker.SetBackend); 0 when none answered it.
	BackendPID uint32
	// Params are the parameter values of the Bind of the portal it
	// executes, rendered for the audit trail; "" unless
	// audit.log_parameters.
	Params string
	// OfRefusedParse marks an Execute of a portal bound to a statement
	// refused at its Parse: its Info's refusal is the Parse's, which
	// has a record of its own already. The server skips it after the
	// marker's error; its record says so, so that denials are not
	// counted twice.
	OfRefusedParse bool
}
