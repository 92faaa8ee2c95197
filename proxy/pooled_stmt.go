package proxy

import (
	"container/list"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/internal/firewall"
	"github.com/pgveil/pgveil/proxy/statement"
	"github.com/pgveil/pgveil/proxy/wire"
	"github.com/pgveil/pgveil/rewrite"
)

// Prepared statements in transaction mode.
//
// A protocol-level prepared statement outlives the transaction that made
// it, on a backend the session may not hold next time. So a session's
// statements are renamed upstream, each under a name of its own
// ("pgveil_<session id>_<n>"), and prepared again, lazily, on a backend
// that lacks them: a Bind or a Describe naming one, or a Parse of a name
// the session holds (which must fail as "already exists"), is preceded in
// the client's own batch by the statement's Parse (ensureStmt), whose
// ParseComplete pgveil swallows (pooledNote). A transaction pays only for
// the statements it uses, once per backend; an Execute needs none, since
// its portal was bound in the same transaction, on the same backend. If
// that Parse fails (a table dropped since), the client gets its error in
// the Bind's place, and the backend is not counted as holding it.
// Every statement name a client sends is translated, a name it never
// prepared into one that cannot exist: a session reaches its own
// statements only, never those other sessions left on a shared backend.
//
// A backend keeps the statements of the sessions it served, least
// recently used first (backendStmts): past maxBackendStatements, or
// maxBackendStatementBytes of Parses, a session taking it closes the
// oldest first, in the batch prepareOnTake writes; one a transaction
// filled past dropBackendStatements, or twice the bytes, is closed at
// its release instead. A session holds at most maxSessionStatements
// named statements, of maxSessionStatementBytes of text upstream in all:
// a Parse of one more is refused with 54000 (pooledStmtCap).
//
// The unnamed statement keeps its name. A backend remembers whose it
// holds and which of them (backend.unnamedBy, unnamedGen); a session
// taking a backend that holds another's, or an older one of its own,
// first prepares its own again, or closes it, unless its first message
// is a Parse of the unnamed statement or a Query. As in PostgreSQL, a
// Query drops the session's unnamed statement, and so does a Parse of it
// that pgveil refuses (its marker fails upstream).
//
// NOTE: a statement joins the session's statements at its ParseComplete
// (the backend relay counts them, parses); until then it is pending. A
// Parse that fails leaves nothing to prepare again. Every Parse written
// upstream in the client's stream, the lazy ones included, is in
// poolLink.parses in the order written (but a refusal's marker, which
// always fails): the ParseComplete answers come in that order, and the
// one at the head says whose each is. A lazy Parse the server fails or
// skips is forgotten at its batch's ReadyForQuery (onBatchAnswered).

// pooledStmt is a prepared statement of a transaction-mode session.
type pooledStmt struct {
	// server is its name upstream.
	server string
	// parse is the Parse message that prepares it upstream, encoded.
	parse []byte
}

// sentParse is a Parse forwarded upstream, awaiting its ParseComplete.
type sentParse struct {
	// name is the client's name; st nil for a Parse that prepares no
	// statement of the session's (the name existed already), or of the
	// unnamed statement, whose unnamedGen is gen.
	name string
	st   *pooledStmt
	gen  uint64
	// batch is the ReadyForQuery number that closes its batch.
	batch int64
	// lazy reports a Parse pgveil added ahead of a client message naming
	// st, on backend b, which lacked it (ensureStmt): its ParseComplete
	// is swallowed.
	lazy bool
	b    *backend
}

// sentClose is a Close forwarded upstream, awaiting its CloseComplete.
type sentClose struct {
	// batch is the ReadyForQuery number that closes its batch.
	batch int64
	// lazy reports a Close ensureStmt added ahead of a Parse of a
	// statement again: its CloseComplete is swallowed.
	lazy bool
	// name and st are the session's statement a Close of the client's,
	// or the tracker's, forgot (closeStmt); b is the backend it was
	// written to. The backend drops st at the CloseComplete; if the
	// server skips the Close, the session holds st again.
	name string
	st   *pooledStmt
	b    *backend
}

// noteClose notes a Close written upstream in the client's stream, in
// the batch closed by ReadyForQuery number batch, which forgets no
// statement: a portal's, or one the session never prepared (mu held).
func (pl *poolLink) noteClose(batch int64) {
	pl.closes = append(pl.closes, sentClose{batch: batch})
}

// maxBackendStatements bounds the statements a backend keeps from the
// sessions it served, maxBackendStatementBytes the size of their Parses:
// a session taking it closes the least recently used past either
// (prepareOnTake).
// NOTE: the bytes too, not the count alone: sessions that each prepared
// their maxSessionStatementBytes and ended left up to 2000 statements of
// up to 1 MiB on one backend, six times that in PostgreSQL's memory (a
// red team's loop of eight such sessions, 783 MiB of one backend), where
// a direct connection's die with it. The bytes hold two sessions' worth.
const (
	maxBackendStatements     = 2000
	maxBackendStatementBytes = 2 * maxSessionStatementBytes
)

// dropBackendStatements bounds the statements a backend may hold when
// its session lets it go, dropBackendStatementBytes the size of their
// Parses: past either, a transaction prepared that much, and the backend
// is closed rather than emptied with as many Closes.
const (
	dropBackendStatements     = 2 * maxBackendStatements
	dropBackendStatementBytes = 2 * maxBackendStatementBytes
)

// maxSessionStatements bounds the named statements a transaction-mode
// session holds, as the statement tracker bounds the names it remembers
// (statement.maxTrackedNames); maxSessionStatementBytes the text of
// their Parses upstream. A Parse past either is refused (pooledStmtCap).
const (
	maxSessionStatements     = 10000
	maxSessionStatementBytes = 32 << 20
)

// backendStmts are the upstream names of the statements a backend holds,
// least recently used first, and the size of their Parses.
// NOTE: the holding session's, under its poolLink.mu. bytes is the sum
// of the sizes of the entries of order (backendStmt).
type backendStmts struct {
	m     map[string]*list.Element
	order *list.List
	bytes int
}

// backendStmt is an entry of backendStmts.order: a statement's upstream
// name and the size of its Parse.
type backendStmt struct {
	server string
	size   int
}

func newBackendStmts() backendStmts {
	return backendStmts{m: map[string]*list.Element{}, order: list.New()}
}

// has reports whether the backend holds the statement named server.
func (bs *backendStmts) has(server string) bool {
	_, ok := bs.m[server]
	return ok
}

// use notes that the backend holds st, used last.
func (bs *backendStmts) use(st *pooledStmt) {
	if e, ok := bs.m[st.server]; ok {
		bs.order.MoveToBack(e)
		return
	}
	bs.m[st.server] = bs.order.PushBack(backendStmt{server: st.server, size: len(st.parse)})
	bs.bytes += len(st.parse)
}

// remove notes that the backend no longer holds server.
func (bs *backendStmts) remove(server string) {
	if e, ok := bs.m[server]; ok {
		bs.drop(e)
	}
}

// drop forgets the entry e.
func (bs *backendStmts) drop(e *list.Element) {
	s := e.Value.(backendStmt)
	bs.order.Remove(e)
	delete(bs.m, s.server)
	bs.bytes -= s.size
}

// len returns the number of statements the backend holds.
func (bs *backendStmts) len() int { return len(bs.m) }

// evict forgets the least recently used statements past n of them, or
// past size bytes of their Parses, calling f with each name.
func (bs *backendStmts) evict(n, size int, f func(server string)) {
	for len(bs.m) > n || bs.bytes > size && len(bs.m) > 0 {
		e := bs.order.Front()
		bs.drop(e)
		f(e.Value.(backendStmt).server)
	}
}

// overfull reports that b holds too many statements, or too many bytes
// of them, to be reused.
func (b *backend) overfull() bool {
	return b.prepared.len() > dropBackendStatements || b.prepared.bytes > dropBackendStatementBytes
}

// serverStmtName returns the upstream name of the client's statement
// name: its own when the session prepared it, one that cannot exist
// otherwise (mu held).
func (pl *poolLink) serverStmtName(name string) string {
	if name == "" {
		return ""
	}
	if st := pl.pending[name]; st != nil {
		return st.server
	}
	if st := pl.stmts[name]; st != nil {
		return st.server
	}
	return pl.prefix + unknownSuffix
}

// unknownStmt is a statement name a session never prepared, named in
// the batch that ReadyForQuery number batch closes.
type unknownStmt struct {
	name  string
	batch int64
}

// maxUnknownStmts bounds the unknown names a session keeps for its
// errors; a batch past it gets the error with no name.
const maxUnknownStmts = 64

// unknownSuffix ends the upstream name of every statement name a session
// never prepared.
const unknownSuffix = "unknown"

// noteUnknown keeps name, which the session never prepared and which its
// batch closed by ReadyForQuery number batch names, for the error it gets
// upstream: only a batch's first can fail, since PostgreSQL skips the rest
// of a batch after an error. Those of batches answered, up to ReadyForQuery
// number done, are dropped (mu held).
func (pl *poolLink) noteUnknown(name string, batch, done int64) {
	pl.dropUnknowns(done)
	if n := len(pl.unknowns); n > 0 && pl.unknowns[n-1].batch == batch || n >= maxUnknownStmts {
		return
	}
	pl.unknowns = append(pl.unknowns, unknownStmt{name: name, batch: batch})
}

// dropUnknowns drops the unknown names of the batches up to ReadyForQuery
// number done (mu held).
func (pl *poolLink) dropUnknowns(done int64) {
	i := 0
	for i < len(pl.unknowns) && pl.unknowns[i].batch <= done {
		i++
	}
	if i == len(pl.unknowns) {
		pl.unknowns = pl.unknowns[:0]
		return
	}
	pl.unknowns = append(pl.unknowns[:0], pl.unknowns[i:]...)
}

// clientNames returns msg, the message of an error in the batch closed
// by ReadyForQuery number batch, with the upstream names of the session's
// statements in it replaced by the client's own: a client never sees
// the names pgveil gives them (backend relay).
func (pl *poolLink) clientNames(msg string, batch int64) string {
	if !strings.Contains(msg, pl.prefix) {
		return msg
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.dropUnknowns(batch - 1)
	unknown := ""
	if len(pl.unknowns) > 0 && pl.unknowns[0].batch == batch {
		unknown = pl.unknowns[0].name
	}
	// PostgreSQL quotes a statement's name as it is, with no escaping.
	// NOTE: each upstream name found is looked up, rather than each of
	// the session's up to maxSessionStatements names replaced in turn: an
	// error quoting one cost that many replacements, and a client could
	// have many such errors sent back (a Parse of a name it holds).
	quote := `"` + pl.prefix
	var b strings.Builder
	for {
		i := strings.Index(msg, quote)
		if i < 0 {
			break
		}
		rest := msg[i+len(quote):]
		j := strings.IndexByte(rest, '"')
		if j < 0 {
			break
		}
		name, ok := unknown, rest[:j] == unknownSuffix
		if !ok {
			name, ok = pl.byServer[pl.prefix+rest[:j]]
		}
		if !ok {
			b.WriteString(msg[:i+1])
			msg = msg[i+1:]
			continue
		}
		b.WriteString(msg[:i])
		b.WriteString(`"` + name + `"`)
		msg = rest[j+1:]
	}
	if b.Len() == 0 {
		return msg
	}
	b.WriteString(msg)
	return b.String()
}

// pooledParse returns the Parse p, of the client's statement p.Name, as
// it goes upstream, and notes it (client relay, p.Query the text to
// forward).
func (ss *session) pooledParse(p *pgproto3.Parse) ([]byte, error) {
	pl := ss.pl
	pl.mu.Lock()
	defer pl.mu.Unlock()
	// NOTE: by the name the server would key it by, as the tracker does:
	// a 64-byte name and its first 63 bytes are one statement.
	name := statement.ServerName(p.Name)
	sent := sentParse{name: name, batch: ss.sent.Load() + 1}
	var pre []byte
	switch {
	case name == "":
	case pl.pending[name] != nil || pl.stmts[name] != nil:
		// PostgreSQL refuses a second statement of that name: so will
		// the upstream, under the first one's name, prepared first on
		// a backend that lacks it.
		p.Name = pl.serverStmtName(name)
		pre = ss.ensureStmt(name)
	default:
		pl.seq++
		p.Name = pl.prefix + strconv.Itoa(pl.seq)
		sent.st = &pooledStmt{server: p.Name}
	}
	msg, err := p.Encode(nil)
	if err != nil {
		return nil, err
	}
	if name == "" {
		pl.setUnnamed(msg)
		sent.gen = pl.unnamedGen
	} else if sent.st != nil {
		sent.st.parse = msg
		pl.pending[name] = sent.st
		pl.byServer[sent.st.server] = name
		pl.stmtBytes += len(msg)
	}
	pl.parses = append(pl.parses, sent)
	ss.overHeld = ss.overHeld || len(pl.parses) > statement.MaxHeldMessages
	if pre != nil {
		msg = append(append(make([]byte, 0, len(pre)+len(msg)), pre...), msg...)
	}
	return msg, nil
}

// ensureStmt returns the Parse of the session's statement name when the
// backend held lacks it, nil otherwise: the caller writes it upstream
// ahead of the client's message naming the statement, in the same batch,
// and the backend relay swallows its ParseComplete (pooledNote). Either
// way the backend counts the statement as used last (client relay, mu
// held).
func (ss *session) ensureStmt(name string) []byte {
	pl := ss.pl
	b := pl.b
	st := pl.stmts[name]
	if st == nil || b == nil {
		// Pending statements are being prepared on b.
		return nil
	}
	batch := ss.sent.Load() + 1
	at, inFlight := pl.lazyAt[st.server]
	held := b.prepared.has(st.server)
	if held && (!inFlight || at == batch) {
		// NOTE: a Parse of this batch the server skips leaves the
		// rest of the batch skipped too.
		b.prepared.use(st)
		return nil
	}
	var out []byte
	if held {
		// The Parse an earlier batch added is unanswered: the server
		// may skip it, after an error there. Closed first (a no-op
		// when it was skipped), then prepared again.
		out, _ = (&pgproto3.Close{ObjectType: 'S', Name: st.server}).Encode(nil)
		pl.closes = append(pl.closes, sentClose{batch: batch, lazy: true})
	}
	b.prepared.use(st)
	pl.lazyAt[st.server] = batch
	pl.parses = append(pl.parses, sentParse{name: name, st: st, batch: batch, lazy: true, b: b})
	ss.overHeld = ss.overHeld || len(pl.parses) > statement.MaxHeldMessages
	ss.srv.metrics.poolStatements(1, 0)
	if out == nil {
		return st.parse
	}
	return append(out, st.parse...)
}

// pooledStmtCap returns the refusal of a Parse of the client's statement
// name, of size bytes upstream, past the session's bounds on its
// statements (maxSessionStatements, maxSessionStatementBytes); nil when
// within them, or outside transaction mode.
func (ss *session) pooledStmtCap(name string, size int) *Refusal {
	pl := ss.pl
	if pl == nil || name == "" {
		return nil
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.stmts[name] != nil || pl.pending[name] != nil {
		// Refused upstream as "already exists".
		return nil
	}
	n := len(pl.stmts) + len(pl.pending)
	if n < maxSessionStatements && (n == 0 || pl.stmtBytes+size <= maxSessionStatementBytes) {
		// NOTE: a first statement of any size PostgreSQL takes.
		return nil
	}
	return &Refusal{Code: CodeProgramLimitExceeded, Rule: "transaction_pooling",
		Message: fmt.Sprintf("too many prepared statements: a session holds at most %d, of %d MiB of text, in transaction pooling (upstream.pool.mode = \"transaction\")",
			maxSessionStatements, maxSessionStatementBytes>>20),
		Hint: "Close the prepared statements the session no longer uses."}
}

// setUnnamed makes parse, nil for none, the session's unnamed statement,
// which the backend it holds, if any, now holds (mu held).
func (pl *poolLink) setUnnamed(parse []byte) {
	pl.unnamed = parse
	pl.unnamedGen++
	if b := pl.b; b != nil {
		b.unnamedBy, b.unnamedGen = pl, pl.unnamedGen
	}
}

// setUnnamedNone leaves the session no unnamed statement, at a Query or
// a Close of it (mu held).
//
// NOTE: the server skips either after an error earlier in its batch,
// and the backend keeps its unnamed statement: a DEALLOCATE ALL stays
// one, so that a Bind of it in a later batch is watched (pooledBind).
// Unwatched, it ran unseen, and the backend stayed marked as holding
// every statement it held: another session's Bind failed 26000 there.
// A Bind of an unnamed statement that is gone fails, and the session
// holds its statements again (settleDeallocs).
func (pl *poolLink) setUnnamedNone() {
	dealloc := pl.deallocUnnamed != 0 && pl.deallocUnnamed == pl.unnamedGen
	pl.setUnnamed(nil)
	if dealloc {
		pl.deallocUnnamed = pl.unnamedGen
	}
}

// dropUnnamed follows a Query, or a refused Parse of the unnamed
// statement, forwarded in a transaction-mode session: PostgreSQL drops
// the unnamed statement there (client relay).
//
// NOTE: it leaves unnamedSet: the server skips a Query sent after an
// error of the extended protocol, up to the Sync, and the backend then
// keeps the SET or RESET parsed earlier, which a Bind of the unnamed
// statement in a later batch runs again (bindUnnamed keeps the
// backend). A refused Parse forgets it (refuse).
func (ss *session) dropUnnamed() {
	if pl := ss.pl; pl != nil {
		pl.mu.Lock()
		pl.setUnnamedNone()
		// A Bind of the unnamed statement now binds none: no portal of
		// a noted SET comes of it (pooledBind).
		pl.unnamedPend = nil
		pl.mu.Unlock()
	}
}

// onParseAnswer settles the oldest Parse in flight at its ParseComplete,
// and reports that the ParseComplete answers a Parse ensureStmt added,
// which the client never sent: the caller skips it (backend relay).
func (ss *session) onParseAnswer() bool {
	pl := ss.pl
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if len(pl.parses) > 0 && pl.parses[0].lazy {
		p := pl.parses[0]
		pl.parses = statement.PopFront(pl.parses)
		p.b.prepared.use(p.st)
		if pl.lazyAt[p.st.server] == p.batch {
			delete(pl.lazyAt, p.st.server)
		}
		return true
	}
	if pl.pool.idleTx > 0 && ss.sent.Load() == ss.done.Load() {
		// An answer to the batch the client has not closed yet
		// (noteAnswered).
		pl.answered[0]++
	}
	if len(pl.parses) == 0 {
		return false
	}
	p := pl.parses[0]
	pl.parses = statement.PopFront(pl.parses)
	if p.st == nil {
		return false
	}
	if pl.pending[p.name] == p.st {
		delete(pl.pending, p.name)
		pl.stmts[p.name] = p.st
	}
	if pl.b != nil {
		pl.b.prepared.use(p.st)
	}
	return false
}

// onBatchAnswered drops the Parses of batches up to done that got no
// ParseComplete: they failed, or the server skipped them after an
// error; and settles a pending SET or RESET, and those of a transaction
// block that ended (backend relay, at a ReadyForQuery).
func (ss *session) onBatchAnswered(done int64) {
	pl := ss.pl
	pl.mu.Lock()
	defer pl.mu.Unlock()
	ss.settleSettings(done)
	for len(pl.parses) > 0 && pl.parses[0].batch <= done {
		p := pl.parses[0]
		pl.parses = statement.PopFront(pl.parses)
		if p.lazy {
			// Failed, or skipped after an error: the backend lacks it,
			// unless a later batch prepares it again, after a Close.
			if at, ok := pl.lazyAt[p.st.server]; !ok || at == p.batch {
				delete(pl.lazyAt, p.st.server)
				p.b.prepared.remove(p.st.server)
			}
			continue
		}
		if p.st != nil && pl.pending[p.name] == p.st {
			delete(pl.pending, p.name)
			delete(pl.byServer, p.st.server)
			pl.stmtBytes -= len(p.st.parse)
		}
		if p.name == "" && p.gen == pl.unnamedGen {
			// It failed, and PostgreSQL dropped the unnamed statement
			// before parsing; or the server skipped it after an earlier
			// error, and the backend still holds the one before. Either
			// way the session has none to prepare again elsewhere, and
			// the backend's is not known: a session taking it closes
			// it first (prepareOnTake).
			pl.unnamed = nil
			pl.unnamedGen++
			if b := pl.b; b != nil {
				b.unnamedBy = nil
			}
		}
	}
	for len(pl.closes) > 0 && pl.closes[0].batch <= done {
		c := pl.closes[0]
		pl.closes = pl.closes[1:]
		if c.name != "" && pl.stmts[c.name] == nil && pl.pending[c.name] == nil {
			// Skipped after an error: the session, and the backend,
			// still hold the statement, as in PostgreSQL.
			pl.stmts[c.name] = c.st
			pl.byServer[c.st.server] = c.name
			pl.stmtBytes += len(c.st.parse)
		}
	}
	pl.settleDeallocs(done)
	if ss.txStatus.Load() == 'I' {
		// Their transaction ended, and they with it.
		for portal, batch := range pl.deallocPortals {
			if batch <= done {
				delete(pl.deallocPortals, portal)
			}
		}
	}
}

// onCloseAnswer settles the oldest Close in flight at its CloseComplete:
// the backend no longer holds the statement it closed. It reports that
// the CloseComplete answers a Close ensureStmt added, which the client
// never sent: the caller skips it (backend relay).
func (ss *session) onCloseAnswer() bool {
	pl := ss.pl
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if len(pl.closes) == 0 {
		return false
	}
	c := pl.closes[0]
	pl.closes = pl.closes[1:]
	if c.st != nil && c.b != nil {
		c.b.prepared.remove(c.st.server)
	}
	return c.lazy
}

// closeStmt returns the upstream name of the client's statement name,
// which the client closes in the batch closed by ReadyForQuery number
// batch, and forgets it: its copies on other backends are left to them,
// under a name no session reaches again. The backend held drops it at
// the CloseComplete (onCloseAnswer); if the server skips the Close, the
// session holds it again (onBatchAnswered).
func (pl *poolLink) closeStmt(name string, batch int64) string {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	server := pl.serverStmtName(name)
	sc := sentClose{batch: batch}
	if name == "" {
		// Closed on the backend held: the session has none left.
		pl.setUnnamedNone()
		pl.closes = append(pl.closes, sc)
		return server
	}
	if st := pl.stmts[name]; st != nil {
		sc.name, sc.st, sc.b = name, st, pl.b
		pl.stmtBytes -= len(st.parse)
		delete(pl.stmts, name)
		delete(pl.byServer, st.server)
	} else if st := pl.pending[name]; st != nil {
		// Its Parse, if the server runs it, is answered first; the
		// session does not hold it again if the Close is skipped.
		sc.st, sc.b = st, pl.b
		pl.stmtBytes -= len(st.parse)
		delete(pl.pending, name)
		delete(pl.byServer, st.server)
	}
	pl.closes = append(pl.closes, sc)
	return server
}

// forwardNamed forwards a Bind, Describe or Close of total bytes, the
// statement it names translated to its name upstream in transaction
// mode (client relay).
func (ss *session) forwardNamed(typ byte, total int) error {
	pl := ss.pl
	if pl == nil {
		return ss.cin.Forward(total, ss.uout)
	}
	if typ == 'E' {
		b, err := ss.cin.PeekStrings(total, 0, 1)
		if err != nil {
			return err
		}
		defer ss.cin.Release()
		if portal, _, ok := cstring(b[wire.HeaderLen:]); ok {
			ss.pooledExecute(portal, nil)
		}
		return ss.cin.Forward(total, ss.uout)
	}
	skip, n := 1, 1
	if typ == 'B' {
		skip, n = 0, 2
	}
	b, err := ss.cin.PeekStrings(total, skip, n)
	if err != nil {
		return err
	}
	defer ss.cin.Release()
	body := b[wire.HeaderLen:]
	var head []byte
	var name string
	switch typ {
	case 'B':
		portal, rest, ok := cstring(body)
		s, _, ok2 := cstring(rest)
		if !ok || !ok2 {
			return ss.cin.Forward(total, ss.uout)
		}
		ss.pooledBind(portal, s)
		head, name = body[:len(portal)+1], s
	default:
		s, _, ok := "", []byte(nil), false
		if len(body) >= 2 && body[0] == 'S' {
			s, _, ok = cstring(body[1:])
		}
		if !ok {
			if typ == 'C' {
				// A portal's: its CloseComplete settles no statement.
				pl.mu.Lock()
				pl.noteClose(ss.sent.Load() + 1)
				pl.mu.Unlock()
			}
			return ss.cin.Forward(total, ss.uout)
		}
		head, name = body[:1], s
	}
	// NOTE: the client's name keeps its length in the message (prefix
	// below); the session knows it by the name the server keys it by.
	nameLen := len(name)
	name = statement.ServerName(name)
	var server string
	var pre []byte
	if typ == 'C' {
		server = pl.closeStmt(name, ss.sent.Load()+1)
	} else {
		if typ == 'B' && name == "" {
			ss.bindUnnamed()
		}
		pl.mu.Lock()
		server = pl.serverStmtName(name)
		if server == pl.prefix+unknownSuffix {
			pl.noteUnknown(name, ss.sent.Load()+1, ss.done.Load())
		} else if name != "" {
			pre = ss.ensureStmt(name)
		}
		pl.mu.Unlock()
	}
	if pre != nil {
		// The statement, prepared first on a backend that lacks it.
		if err := ss.uout.Write(pre); err != nil {
			return err
		}
	}
	if server == name {
		return ss.cin.Forward(total, ss.uout)
	}
	prefix := wire.HeaderLen + len(head) + nameLen + 1
	out := ss.cscratch[:0]
	out = append(out, typ, 0, 0, 0, 0)
	out = append(out, head...)
	out = append(out, server...)
	out = append(out, 0)
	binary.BigEndian.PutUint32(out[1:], uint32(total-prefix+len(out)-1))
	ss.cscratch = out
	if err := ss.uout.Write(out); err != nil {
		return err
	}
	if err := ss.cin.Skip(prefix); err != nil {
		return err
	}
	return ss.cin.Forward(total-prefix, ss.uout)
}

// prepareOnTake writes upstream, on the backend the session just took
// and ahead of the client's first message (of type typ; parseName is the
// statement a Parse prepares), what gives the backend the session's
// settings (pooled_settings.go) and the session's own unnamed statement
// or none, and the Closes of the statements it holds past
// maxBackendStatements or maxBackendStatementBytes, least recently used
// first. The session's named
// statements it lacks are prepared when named (ensureStmt). It returns the
// number of ReadyForQuery messages that answer it: the backend relay
// swallows the answers up to the last (client relay, mu held).
func (ss *session) prepareOnTake(typ byte, parseName string) (int, error) {
	pl := ss.pl
	b := pl.b
	out, zs := pl.replaySettings(b, nil)
	if zs > 0 {
		// A Query drops the unnamed statement.
		b.unnamedBy = nil
	}
	extended := false
	if b.unnamedBy != pl || b.unnamedGen != pl.unnamedGen {
		switch {
		case typ == 'P' && parseName == "", typ == 'Q':
			// Replaced, or dropped, by the client's message itself.
		case pl.unnamed != nil:
			out = append(out, pl.unnamed...)
			extended = true
		case zs == 0:
			out, _ = (&pgproto3.Close{ObjectType: 'S'}).Encode(out)
			extended = true
		}
		b.unnamedBy, b.unnamedGen = pl, pl.unnamedGen
	}
	closed := 0
	b.prepared.evict(maxBackendStatements, maxBackendStatementBytes, func(server string) {
		out, _ = (&pgproto3.Close{ObjectType: 'S', Name: server}).Encode(out)
		extended = true
		closed++
	})
	if closed > 0 {
		ss.srv.metrics.poolStatements(0, closed)
	}
	if extended {
		out, _ = (&pgproto3.Sync{}).Encode(out)
		zs++
	}
	if zs == 0 {
		return 0, nil
	}
	return zs, b.out.Write(out)
}

// poolRefusal refuses, in transaction mode, what a shared backend cannot
// keep for the session: SQL-level prepared statements, whose names
// reach every statement on the backend. A Query's DEALLOCATE of the
// session's own protocol-level statements (psqlODBC's) is made instead:
// it returns how (poolDeallocate), for applyDeallocate once the Query is
// sure to go upstream. So is a DEALLOCATE ALL, in a Query or as the
// unnamed statement of the extended protocol (parseName the Parse's
// statement name), as psycopg 3 sends it after a rollback
// (parseDeallocateAll).
func (ss *session) poolRefusal(res *rewrite.Result, src Source, parseName string) (*deallocation, *Refusal) {
	if ss.pl == nil {
		return nil, nil
	}
	deallocate := false
	for _, o := range res.Objects {
		switch o.Op {
		case "prepare", "execute":
			return nil, firewall.Deny("transaction_pooling",
				"SQL PREPARE, EXECUTE and DEALLOCATE are not supported in transaction pooling (upstream.pool.mode = \"transaction\")")
		case "deallocate":
			deallocate = true
		}
	}
	if !deallocate {
		return nil, nil
	}
	if src == SourceParse && deallocatesAll(res) {
		return nil, ss.parseDeallocateAll(parseName)
	}
	if src != SourceQuery {
		return nil, firewall.Deny("transaction_pooling",
			"DEALLOCATE is supported in transaction pooling (upstream.pool.mode = \"transaction\") in a simple Query, or as DEALLOCATE ALL, only")
	}
	return ss.poolDeallocate(res)
}

// deallocatesAll reports whether res is one DEALLOCATE ALL and nothing
// else.
func deallocatesAll(res *rewrite.Result) bool {
	return len(res.Kinds) == 1 && res.Kinds[0] == rewrite.KindDeallocate &&
		len(res.Objects) == 1 && res.Objects[0].Op == "deallocate" && res.Objects[0].Name == ""
}

// parseDeallocateAll refuses a Parse of DEALLOCATE ALL as the statement
// parseName in transaction mode but as the unnamed statement, with
// nothing in flight from earlier batches, outside a failed transaction
// block unless a statement goes ahead of it in its batch, and with no
// Parse or Close of a named statement ahead of it in
// its batch: as psycopg 3 sends it (Parse, Bind, Execute, Sync) after
// its ROLLBACK is answered, or in pipeline mode in the ROLLBACK's own
// batch. The session forgets its statements at the Execute of a portal
// of it (pooledExecute, forgetAll).
//
// NOTE: what goes ahead of it in its batch may fail, and the server then
// skips it: the session holds its statements again at the batch's end
// (settleDeallocs), as the backend does. Unnamed statements and portals
// ahead of it (psycopg's ROLLBACK) change no named statement. A Parse of
// a named statement ahead of it is refused all the same: one it skips
// would leave the session without a statement PostgreSQL keeps
// (forgetAll forgets pending ones for good); so is a lazy Parse
// (ensureStmt) or a Close, whose answers the backend's record waits for.
func (ss *session) parseDeallocateAll(parseName string) *Refusal {
	if parseName != "" {
		return firewall.Deny("transaction_pooling",
			"DEALLOCATE ALL is supported in transaction pooling (upstream.pool.mode = \"transaction\") in a simple Query, or as the unnamed statement, only")
	}
	if ss.txStatus.Load() == 'E' && ss.othersInBatch == 0 {
		// NOTE: after a statement of its batch (psycopg's ROLLBACK in
		// pipeline mode) it goes upstream: the server runs it if that
		// ended the failed block, and fails it (25P02) otherwise, as
		// in PostgreSQL; either way its answer says which.
		return firewall.Deny("transaction_pooling",
			"DEALLOCATE is supported in transaction pooling (upstream.pool.mode = \"transaction\") only outside a failed transaction block: roll it back first")
	}
	pl := ss.pl
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if ss.sent.Load() != ss.done.Load() || len(pl.pending) > 0 || len(pl.closes) > 0 || len(pl.lazyAt) > 0 {
		return firewall.Deny("transaction_pooling",
			"DEALLOCATE is supported in transaction pooling (upstream.pool.mode = \"transaction\") only once earlier statements are answered")
	}
	for _, p := range pl.parses {
		if p.lazy || p.name != "" {
			return firewall.Deny("transaction_pooling",
				"DEALLOCATE ALL is supported in transaction pooling (upstream.pool.mode = \"transaction\") only with no named statement prepared or closed ahead of it in its batch")
		}
	}
	return nil
}

// noteDeallocateAll follows a Parse of DEALLOCATE ALL as the unnamed
// statement, forwarded (pooledParse made it the session's): a portal
// bound from it runs it (client relay).
func (ss *session) noteDeallocateAll() {
	pl := ss.pl
	pl.mu.Lock()
	pl.deallocUnnamed = pl.unnamedGen
	pl.mu.Unlock()
}

// pendingDealloc is a DEALLOCATE ALL forwarded, in the batch closed by
// ReadyForQuery number batch, awaiting its answer.
type pendingDealloc struct {
	batch int64
	// forgot are the session's statements it forgot (forgetAll), by the
	// name the server keys them by; ran reports its CommandComplete.
	forgot map[string]*pooledStmt
	ran    bool
}

// forgetAll forgets every statement of the session, for a DEALLOCATE
// ALL about to be forwarded in the batch closed by ReadyForQuery number
// batch, and watches for its answer (mu held).
//
// NOTE: the session forgets them when it is sent, as PostgreSQL does
// when it runs, so that a Parse pipelined after it of a name it held
// prepares a new statement; but the backend held is known to hold none
// only at its CommandComplete (onCommandComplete: the server's word),
// and until then it keeps every statement it holds, the session's and
// other sessions'. Should the server skip it (after an error earlier in
// its batch, a cancel), the session holds the statements again at its
// batch's end (settleDeallocs), as the backend does; should its answer
// go unread, the backend is closed at its release (stmtsUnknown). A
// statement pending (its Parse in flight ahead of it in the batch) is
// forgotten for good: if the server skips the DEALLOCATE ALL, it stays
// on the backend, counted, under a name no session reaches again, as
// the session's statements do on the other backends it held, until
// eviction closes them.
func (pl *poolLink) forgetAll(batch int64) {
	d := pendingDealloc{batch: batch, forgot: pl.stmts}
	for _, st := range pl.stmts {
		delete(pl.byServer, st.server)
	}
	for _, st := range pl.pending {
		delete(pl.byServer, st.server)
	}
	pl.stmts, pl.pending = map[string]*pooledStmt{}, map[string]*pooledStmt{}
	pl.stmtBytes = 0
	pl.deallocs = append(pl.deallocs, d)
	pl.watchDealloc.Store(true)
}

// deallocatedAll follows a CommandComplete of DEALLOCATE ALL: the
// backend held holds no prepared statement, of the session or of any
// other, which each prepares again there when it names it (ensureStmt);
// the oldest DEALLOCATE ALL awaiting its answer ran (backend relay, mu
// held).
func (pl *poolLink) deallocatedAll() {
	if b := pl.b; b != nil {
		b.prepared = newBackendStmts()
	}
	for i := range pl.deallocs {
		if !pl.deallocs[i].ran {
			pl.deallocs[i].ran = true
			break
		}
	}
}

// settleDeallocs settles the DEALLOCATE ALLs of the batches up to done,
// answered: one that did not run (skipped, or failed) leaves the
// session its statements again, but those it prepared again since; one
// whose answer may have gone unread leaves the backend's statements
// unknown, and the backend is closed at its release (backend relay, mu
// held).
func (pl *poolLink) settleDeallocs(done int64) {
	for len(pl.deallocs) > 0 && pl.deallocs[0].batch <= done {
		d := pl.deallocs[0]
		pl.deallocs = pl.deallocs[1:]
		switch {
		case d.ran:
		case pl.deallocUnread:
			if b := pl.b; b != nil {
				b.stmtsUnknown = true
				b.prepared = newBackendStmts()
			}
		default:
			for name, st := range d.forgot {
				if pl.stmts[name] != nil || pl.pending[name] != nil {
					continue
				}
				pl.stmts[name] = st
				pl.byServer[st.server] = name
				pl.stmtBytes += len(st.parse)
			}
		}
	}
	if len(pl.deallocs) == 0 {
		pl.deallocs = nil
		pl.deallocUnread = false
		pl.watchDealloc.Store(false)
	}
}

// deallocation is how a Query's DEALLOCATE of the session's statements
// goes upstream in transaction mode (poolDeallocate).
type deallocation struct {
	// sql is the text to forward, each DEALLOCATE naming the statement
	// by its name upstream.
	sql string
	// forget are the session's statements it drops, by the name the
	// server keys them by; absent those the backend held lacks, which a
	// Parse written ahead of the Query makes there first.
	forget []string
	absent []*pooledStmt
	// unknown are the names it gives that the session never prepared,
	// for the error the client gets (noteUnknown).
	unknown []string
	// all reports a DEALLOCATE ALL, forwarded as it is (forgetAll).
	all bool
}

// placeholderQuery is what a statement is prepared as, ahead of a
// DEALLOCATE of it on a backend that lacks it: it cannot fail, so the
// Query that follows it is never skipped.
const placeholderQuery = "SELECT"

// poolDeallocate returns how res, a Query of DEALLOCATE and transaction
// control statements sent with nothing else in flight, goes upstream:
// each DEALLOCATE naming the session's statement by its name upstream;
// or its refusal. A name the session never prepared becomes the name
// that cannot exist, so that the client gets PostgreSQL's error (26000)
// naming it. A statement the backend held lacks (prepared in an earlier
// transaction, on another backend: psqlODBC with autocommit on) is first
// prepared there as placeholderQuery, which cannot fail, under its name
// upstream: its own text could, and the server would then skip the
// Query, never answering it (client relay).
//
// NOTE: the statements are forgotten when the Query is sent: should the
// server skip a DEALLOCATE (after an error earlier in its text), the
// session no longer reaches the statement (a Bind of it fails, 26000),
// and the backend keeps it, counted, under a name no session reaches
// again, until its eviction closes it.
func (ss *session) poolDeallocate(res *rewrite.Result) (*deallocation, *Refusal) {
	for _, k := range res.Kinds {
		if k != "transaction" && k != rewrite.KindDeallocate {
			return nil, firewall.Deny("transaction_pooling",
				"DEALLOCATE is supported in transaction pooling (upstream.pool.mode = \"transaction\") only with transaction control statements in its text")
		}
	}
	// NOTE: the Query itself is in flight.
	if ss.sent.Load()-ss.done.Load() != 1 {
		return nil, firewall.Deny("transaction_pooling",
			"DEALLOCATE is supported in transaction pooling (upstream.pool.mode = \"transaction\") only once earlier statements are answered")
	}
	if ss.txStatus.Load() == 'E' {
		// In a failed block the server runs none of it (short of a
		// ROLLBACK first), while the session would forget the
		// statements at once; and a placeholder's Parse fails there
		// too, after which the server skips the Query up to a Sync that
		// never comes: the session would wait for its answer forever.
		// Refused, the session forgets nothing, as the server drops
		// nothing.
		return nil, firewall.Deny("transaction_pooling",
			"DEALLOCATE is supported in transaction pooling (upstream.pool.mode = \"transaction\") only outside a failed transaction block: roll it back first")
	}
	pl := ss.pl
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.b == nil || len(pl.pending) > 0 {
		return nil, firewall.Deny("transaction_pooling",
			"DEALLOCATE is supported in transaction pooling (upstream.pool.mode = \"transaction\") only once earlier statements are answered")
	}
	d := &deallocation{}
	names := map[string]string{}
	n := 0
	for _, o := range res.Objects {
		if o.Op == "deallocate" {
			n++
			d.all = d.all || o.Name == ""
		}
	}
	if d.all {
		if n > 1 {
			// A DEALLOCATE after it would quote a name upstream the
			// session forgot, and cannot translate back.
			return nil, firewall.Deny("transaction_pooling",
				"DEALLOCATE ALL with another DEALLOCATE in one text is not supported in transaction pooling (upstream.pool.mode = \"transaction\")")
		}
		if len(pl.lazyAt) > 0 || len(pl.parses) > 0 || len(pl.closes) > 0 {
			return nil, firewall.Deny("transaction_pooling",
				"DEALLOCATE is supported in transaction pooling (upstream.pool.mode = \"transaction\") only once earlier statements are answered")
		}
		// Forwarded as it is: the backend drops every statement it
		// holds, and the session forgets its own (forgetAll).
		d.sql = res.SQL
		return d, nil
	}
	for _, o := range res.Objects {
		if o.Op != "deallocate" {
			continue
		}
		name := statement.ServerName(o.Name)
		st := pl.stmts[name]
		if st == nil {
			names[o.Name] = pl.serverStmtName(name)
			d.unknown = append(d.unknown, name)
			continue
		}
		if slices.Contains(d.forget, name) {
			// PostgreSQL fails the second (26000), quoting the name it
			// has upstream, which the session forgot with the first and
			// cannot translate back: a client never sees those names.
			return nil, firewall.Deny("transaction_pooling",
				"DEALLOCATE of %q twice in one text is not supported in transaction pooling (upstream.pool.mode = \"transaction\")", o.Name)
		}
		names[o.Name] = st.server
		if _, lazy := pl.lazyAt[st.server]; lazy {
			// Whether the backend holds it is not known yet.
			return nil, firewall.Deny("transaction_pooling",
				"DEALLOCATE of %q is supported in transaction pooling (upstream.pool.mode = \"transaction\") only once earlier statements are answered", o.Name)
		}
		d.forget = append(d.forget, name)
		if !pl.b.prepared.has(st.server) {
			d.absent = append(d.absent, st)
		}
	}
	out, err := rewrite.RenameDeallocations(res.SQL, names)
	if err != nil {
		return nil, firewall.Deny("transaction_pooling",
			"DEALLOCATE could not be forwarded in transaction pooling (upstream.pool.mode = \"transaction\"): %v", err)
	}
	d.sql = out
	return d, nil
}

// applyDeallocate makes d, for the Query about to be forwarded: it
// writes upstream the placeholders of the statements the backend lacks
// and forgets the statements d drops (client relay).
func (ss *session) applyDeallocate(d *deallocation) error {
	pl := ss.pl
	pl.mu.Lock()
	batch := ss.sent.Load()
	var pre []byte
	for _, st := range d.absent {
		pre, _ = (&pgproto3.Parse{Name: st.server, Query: placeholderQuery}).Encode(pre)
		// Its ParseComplete is swallowed (onParseAnswer), as for
		// ensureStmt's Parses.
		pl.lazyAt[st.server] = batch
		pl.parses = append(pl.parses, sentParse{name: "", st: &pooledStmt{server: st.server}, batch: batch, lazy: true, b: pl.b})
	}
	for _, name := range d.forget {
		st := pl.stmts[name]
		if st == nil {
			continue
		}
		pl.stmtBytes -= len(st.parse)
		delete(pl.stmts, name)
		delete(pl.byServer, st.server)
	}
	for _, name := range d.unknown {
		pl.noteUnknown(name, batch, ss.done.Load())
	}
	if d.all {
		pl.forgetAll(batch)
	}
	pl.mu.Unlock()
	if pre == nil {
		return nil
	}
	return ss.uout.Write(pre)
}

// logPrepareFailure logs a failed preparation of the session's
// statements on a backend it took.
func (ss *session) logPrepareFailure(msg []byte) {
	var er pgproto3.ErrorResponse
	if err := er.Decode(msg[wire.HeaderLen:]); err != nil {
		ss.log.Warn("restoring the session's settings or statements on an upstream connection failed")
		return
	}
	ss.log.Warn("restoring the session's settings or statements on an upstream connection failed",
		zap.String("code", er.Code), zap.String("error", er.Message))
}

// swallowTaken skips an answer to what prepareOnTake wrote, counting
// down its ReadyForQuery messages (backend relay).
func (ss *session) swallowTaken(typ byte, total int) error {
	pl := ss.pl
	if typ != 'E' && typ != 'Z' {
		return ss.uin.Skip(total)
	}
	if total > maxDecodedUpstream {
		return ss.uin.Skip(total)
	}
	msg, err := ss.uin.Message(total)
	if err != nil {
		return err
	}
	if typ == 'E' {
		ss.logPrepareFailure(msg)
		pl.mu.Lock()
		pl.prepareFailed = true
		pl.mu.Unlock()
	} else {
		pl.swallow--
	}
	ss.uin.Release()
	return nil
}
