package audit

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"go.uber.org/zap"
)

// maxBatch is the size past which the writer stops collecting queued
// lines and writes them.
const maxBatch = 1 << 20

// writeLinger is how long the writer, having written a batch, lets the
// next one gather while records keep coming: sessions then queue records
// without waking it, and it writes a batch per linger rather than a line
// per statement.
const writeLinger = 2 * time.Millisecond

// Retry delays after a failed write: doubling from the first to the last.
const (
	firstRetryDelay = 10 * time.Millisecond
	maxRetryDelay   = 5 * time.Second
)

// closeGiveUp is how long, once Close was called, the writer keeps
// retrying a failing write before it gives the remaining records up; a
// variable for tests.
var closeGiveUp = 10 * time.Second

// Stats are a Log's counters, for metrics.
type Stats struct {
	// Queued is the number of records waiting in the queue.
	Queued int
	// Written counts the records written (dropped-records notices
	// included).
	Written uint64
	// Dropped counts the records lost: dropped because the queue was full
	// (drop mode), given up at Close after write errors, or written
	// after Close.
	Dropped uint64
	// QueuedBytes is what the queued records count for in
	// Options.QueueBytes.
	QueuedBytes int64
	// LastSeq is the seq of the last record written to the file (or
	// found at its end when the Log opened): what an auditor compares
	// with the last seq pgveil audit verify finds, since records cut
	// from the end of the newest file leave no trace in the chain.
	LastSeq uint64
	// Parses counts the statement texts the writer handed to pg_query
	// (to fingerprint, normalise or classify them): once per text it has
	// not seen lately, none for a text whose fingerprint the rewriter
	// gave, unless it is to be redacted.
	Parses uint64
}

// Log is an open audit trail. Write and Stats are safe for concurrent
// use; one goroutine, started by Open and ended by Close, writes.
type Log struct {
	// o are the options, defaults filled in.
	o Options
	// queue carries records from Write to the writer goroutine.
	queue chan *Record
	// mu orders Write against Close: Write sends with mu read-locked,
	// Close closes queue with mu locked, so that no send ever hits a
	// closed channel.
	mu sync.RWMutex
	// closed is set by Close, under mu.
	closed bool
	// closing is set as soon as Close is called, before it waits for mu:
	// from then on the writer gives up on a failing disk after
	// closeGiveUp.
	closing atomic.Bool
	// failing is set while the writer cannot write: from a failed write
	// or fsync until a write and its fsync succeed (Failing).
	failing atomic.Bool
	// lateWarned is set once a record written after Close was logged.
	lateWarned atomic.Bool
	// closeOnce makes Close idempotent.
	closeOnce sync.Once
	// done is closed when the writer goroutine has finished.
	done chan struct{}
	// closeErr is the writer's final error.
	// NOTE: written by the writer goroutine before it closes done.
	closeErr error
	// written, dropped count records written and lost; lastSeq is
	// Stats.LastSeq.
	written, dropped, lastSeq atomic.Uint64
	// pendingDrops counts records dropped since the writer last noted
	// them in a dropped record.
	pendingDrops atomic.Int64
	// parses counts the writer's calls into pg_query.
	parses atomic.Uint64

	// bytesMu guards queuedBytes, the sum of the queued records' sizes
	// (Record.size), which Write keeps within Options.QueueBytes; room is
	// broadcast when the writer takes records off the queue.
	bytesMu     sync.Mutex
	room        sync.Cond
	queuedBytes int64

	// w is the writer goroutine's state.
	// NOTE: only the writer goroutine (and Open, before starting it) uses
	// w.
	w *writer
}

// Open opens the audit trail o.File, resuming the chain from the last
// record of the existing file (or of the newest rotated file when the
// current one holds none), and starts the writer goroutine. Close must
// be called to write out the queue and stop the goroutine.
func Open(o Options) (*Log, error) {
	return open(o, nil)
}

// open is Open with a replacement for (*os.File).Write, for tests.
func open(o Options, writeFile func(*os.File, []byte) (int, error)) (*Log, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	l := &Log{
		o:     o,
		queue: make(chan *Record, o.QueueSize),
		done:  make(chan struct{}),
	}
	l.room.L = &l.bytesMu
	w := &writer{
		o:         &l.o,
		log:       l.o.Logger,
		chain:     newChain(o.Key),
		cache:     newTextCache(&l.parses),
		prev:      zeroMAC,
		closing:   &l.closing,
		failing:   &l.failing,
		written:   &l.written,
		lastSeq:   &l.lastSeq,
		dropped:   &l.dropped,
		writeFile: writeFile,
	}
	if w.writeFile == nil {
		w.writeFile = (*os.File).Write
	}
	if o.File == "-" {
		w.out = o.Stdout
	} else if err := w.openFile(); err != nil {
		return nil, err
	}
	l.w = w
	go l.run()
	return l, nil
}

// Write enqueues r. In block mode it waits while the queue is full; in
// drop mode it drops r instead and counts it (Stats.Dropped, as a
// record written after Close is). The queue is full when it
// holds Options.QueueSize records, or when r would take what the queued
// records hold past Options.QueueBytes (a record larger than that is
// queued only into an empty queue). It sets r.Time to the current time
// when zero, and first cuts r's texts to Options.MaxText (capTexts): a
// statement of listen.max_message_size costs the queue MaxText bytes,
// and the writer no parse. Write on a nil Log does nothing; on a closed
// one it counts r as dropped, and logs the first such record.
func (l *Log) Write(r *Record) {
	if l == nil || r == nil {
		return
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	capTexts(r, &l.o)
	r.size = recordSize(r)
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		// NOTE: a record that comes too late (a session or a reload
		// still running when the log was closed) is lost: counted with
		// the dropped ones, and said once, never silently.
		l.dropped.Add(1)
		if l.lateWarned.CompareAndSwap(false, true) {
			l.o.Logger.Error("an audit record was written after the audit log was closed: it is lost (counted in pgveil_audit_records_dropped_total)",
				zap.String("event", r.Event), zap.String("session", r.Session), zap.String("user", r.User))
		}
		return
	}
	if l.o.OnFull == OnFullDrop {
		if !l.reserve(r.size, false) {
			l.dropped.Add(1)
			l.pendingDrops.Add(1)
			return
		}
		select {
		case l.queue <- r:
		default:
			l.release(r.size)
			l.dropped.Add(1)
			l.pendingDrops.Add(1)
		}
		return
	}
	l.reserve(r.size, true)
	l.queue <- r
}

// reserve counts n more queued bytes when they fit within
// Options.QueueBytes, or when the queue holds none; otherwise it waits
// for room when wait is set, and reports false when not.
func (l *Log) reserve(n int64, wait bool) bool {
	l.bytesMu.Lock()
	defer l.bytesMu.Unlock()
	for l.queuedBytes > 0 && l.queuedBytes+n > l.o.QueueBytes {
		if !wait {
			return false
		}
		l.room.Wait()
	}
	l.queuedBytes += n
	return true
}

// release gives back the n bytes of a record taken off the queue (or
// not queued after all) and wakes the Writes waiting for room.
func (l *Log) release(n int64) {
	if n == 0 {
		return
	}
	l.bytesMu.Lock()
	l.queuedBytes -= n
	l.bytesMu.Unlock()
	l.room.Broadcast()
}

// Close writes every queued record, syncs and closes the file, and stops
// the writer goroutine. It is idempotent; later calls return the first
// one's error. When writes keep failing, it gives the remaining records
// up after closeGiveUp and says how many were lost.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	l.closeOnce.Do(func() {
		l.closing.Store(true)
		l.mu.Lock()
		l.closed = true
		close(l.queue)
		l.mu.Unlock()
	})
	<-l.done
	return l.closeErr
}

// Failing reports whether the trail cannot be written now: the writer's
// last write or fsync failed, and none has succeeded since. Records keep
// being queued (and written once the disk recovers) while it is; a proxy
// that must not run statements it cannot record (audit.on_error =
// "refuse") refuses them meanwhile.
func (l *Log) Failing() bool {
	return l != nil && l.failing.Load()
}

// Stats returns the Log's counters.
func (l *Log) Stats() Stats {
	if l == nil {
		return Stats{}
	}
	l.bytesMu.Lock()
	queuedBytes := l.queuedBytes
	l.bytesMu.Unlock()
	return Stats{Queued: len(l.queue), Written: l.written.Load(), Dropped: l.dropped.Load(), QueuedBytes: queuedBytes, Parses: l.parses.Load(), LastSeq: l.lastSeq.Load()}
}

// run is the writer goroutine: it collects what is queued into batches,
// writes each with one write and one fsync, and finishes when the queue
// is closed.
//
// While records keep coming it writes a batch at most every writeLinger
// and syncs at most every SyncInterval; once they stop, it syncs and
// waits for the next one. Durability thus waits at most SyncInterval
// (plus a linger) under load, and a record written when the trail is
// quiet is synced at once.
func (l *Log) run() {
	defer close(l.done)
	w := l.w
	open := true
	for open {
		r, ok := <-l.queue
		if !ok {
			break
		}
		w.add(r)
		l.release(r.size)
		l.noteDrops()
		for open {
			open = l.collect()
			w.write()
			if time.Since(w.synced) >= l.o.SyncInterval {
				w.sync()
			}
			if !open || len(l.queue) > 0 {
				continue
			}
			time.Sleep(writeLinger)
			if len(l.queue) == 0 {
				break
			}
		}
		w.sync()
	}
	l.noteDrops()
	w.flush()
	l.closeErr = w.close()
	if w.lost > 0 {
		l.closeErr = fmt.Errorf("closing audit log %q: %d records lost after write errors: %w", l.o.File, w.lost, w.lastErr)
	}
}

// collect adds the queued records to the batch, up to maxBatch, without
// waiting; it reports false once the queue is closed.
func (l *Log) collect() bool {
	w := l.w
	for len(w.buf) < maxBatch {
		select {
		case r, ok := <-l.queue:
			if !ok {
				return false
			}
			w.add(r)
			l.release(r.size)
			l.noteDrops()
		default:
			return true
		}
	}
	return true
}

// noteDrops adds a dropped record for the records dropped since the last
// one: there is room in the queue again.
func (l *Log) noteDrops() {
	if n := l.pendingDrops.Swap(0); n > 0 {
		l.w.add(&Record{Time: time.Now(), Event: EventDropped, Count: n})
	}
}

// writer is the state of the writer goroutine.
type writer struct {
	// o are the Log's options.
	o *Options
	// log receives diagnostics.
	log *zap.Logger
	// chain computes MACs.
	chain *chain
	// cache remembers parsed statement texts.
	cache *textCache
	// seq and prev are the seq and mac of the last record added.
	//
	// NOTE: after add, prev is a string over lastMAC, which the next add
	// overwrites once prev has been copied into its line: nothing else
	// reads prev (resume sets it to a string of its own).
	seq     uint64
	prev    string
	lastMAC [2 * sha256.Size]byte
	// chainID is Entry.Chain: made when the chain's first record is
	// added, read back by resume.
	chainID string
	// buf holds the lines of the batch; lines counts them.
	buf   []byte
	lines int
	// line is scratch space for one line.
	line []byte
	// out is Stdout when File is "-"; nil otherwise.
	out io.Writer
	// f is the current file; nil when File is "-", or after a rotation
	// failed to open the new file (writes reopen it).
	f *os.File
	// size is the current file's size.
	size int64
	// closing reports that Close was called; failing is Log.failing.
	closing, failing *atomic.Bool
	// written and dropped are the Log's counters, lastSeq its
	// Stats.LastSeq.
	written, dropped, lastSeq *atomic.Uint64
	// lost counts the records given up at Close; lastErr is the write
	// error that made the writer give up.
	lost    int
	lastErr error
	// unsynced reports lines written to f since its last sync, synced
	// when that sync was.
	unsynced bool
	synced   time.Time
	// writeFile writes to a file: (*os.File).Write, or a test's fault
	// injector.
	writeFile func(*os.File, []byte) (int, error)
}

// add encodes r as the next line of the chain and appends it to the
// batch, writing the batch and rotating first when the line would take
// the file past MaxSize.
func (w *writer) add(r *Record) {
	e := w.cache.prepare(r, w.o)
	if w.seq == 0 {
		w.chainID = newChainID()
	}
	e.Seq, e.Prev, e.Chain = w.seq+1, w.prev, w.chainID
	w.line = appendSigned(w.line[:0], &e)
	w.chain.macInto(&w.lastMAC, w.line)
	mac := unsafe.String(&w.lastMAC[0], len(w.lastMAC))
	w.line = appendLineEnd(w.line, mac)
	if w.out == nil && w.o.MaxSize > 0 && w.size+int64(len(w.buf)) > 0 &&
		w.size+int64(len(w.buf)+len(w.line)) > w.o.MaxSize {
		w.flush()
		w.rotate()
	}
	w.buf = append(w.buf, w.line...)
	w.lines++
	w.seq, w.prev = e.Seq, mac
}

// newChainID returns a new chain's name: 16 random hex digits.
func newChainID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("audit: no randomness: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}
