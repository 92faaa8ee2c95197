package audit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.uber.org/zap"
)

// Values of Options.OnFull.
const (
	OnFullBlock = "block"
	OnFullDrop  = "drop"
)

// Values of Options.RewrittenSQL.
const (
	RewrittenFull = "full"
	RewrittenHash = "hash"
	RewrittenNone = "none"
)

// DefaultQueueSize is the queue length when Options.QueueSize is zero.
const DefaultQueueSize = 10000

// DefaultQueueBytes is Options.QueueBytes when zero: what the queued
// records may hold in all, their texts included.
const DefaultQueueBytes = 64 << 20

// MinQueueBytes is the smallest Options.QueueBytes: room for a few
// records of the longest texts a record keeps.
const MinQueueBytes = 1 << 20

// DefaultMaxText is Options.MaxText when zero.
const DefaultMaxText = 64 << 10

// MinMaxText and MaxMaxText bound Options.MaxText. MaxMaxText is the
// longest text the writer hands to pg_query (maxParsedText): a record
// keeps no text the writer could not parse for its length.
const (
	MinMaxText = 1 << 10
	MaxMaxText = maxParsedText
)

// DefaultSyncInterval is Options.SyncInterval when zero.
const DefaultSyncInterval = 200 * time.Millisecond

// Options configure a Log.
type Options struct {
	// File is the path of the current log file; "-" means Stdout, which
	// is never rotated nor resumed.
	File string
	// Stdout is used when File is "-"; os.Stdout when nil.
	Stdout io.Writer
	// MaxSize rotates the file when a line would take it past this many
	// bytes; 0 never rotates. A line larger than MaxSize gets a file of
	// its own.
	MaxSize int64
	// QueueSize is the length of the bounded queue between Write and the
	// writer goroutine; DefaultQueueSize when zero.
	QueueSize int
	// QueueBytes bounds what the queued records hold, their texts
	// included (recordSize), as QueueSize bounds their number: a record
	// that would take the queue past it waits for room (OnFullBlock) or
	// is dropped (OnFullDrop), unless the queue is empty.
	// DefaultQueueBytes when zero, at least MinQueueBytes.
	QueueBytes int64
	// MaxText is the longest statement text (Record.SQL) and rewritten
	// SQL (Record.Rewritten) a record keeps: Write cuts a longer one to
	// its first MaxText bytes, followed by a marker giving its length
	// and, when its literals are not redacted, its SHA-256
	// (truncatedMark). DefaultMaxText when zero; from MinMaxText to
	// MaxMaxText.
	MaxText int
	// SyncInterval is the longest the writer leaves written records
	// unsynced while records keep coming (it syncs as soon as they stop);
	// DefaultSyncInterval when zero.
	SyncInterval time.Duration
	// OnFull is what Write does when the queue is full: OnFullBlock (the
	// default when empty) waits for room, OnFullDrop drops the record and
	// counts it.
	OnFull string
	// Key is the HMAC-SHA256 key of the chain. When empty the chain is
	// plain SHA-256, which shows accidents but not forgeries; Open's
	// caller should warn.
	Key []byte
	// RewrittenSQL is how Record.Rewritten is kept: RewrittenFull (the
	// default when empty), RewrittenHash (its SHA-256) or RewrittenNone.
	RewrittenSQL string
	// RedactLiterals replaces the literals of SQL (and of Rewritten when
	// kept in full) with $n, using pg_query.Normalize, or for a text too
	// deep for the writer to parse, or longer than MaxText, the
	// rewriter's literal scanner on its head.
	RedactLiterals bool
	// Logger receives diagnostics (write errors, a damaged last line);
	// zap.NewNop() when nil.
	Logger *zap.Logger
}

// withDefaults checks o and fills in its defaults.
func (o Options) withDefaults() (Options, error) {
	if o.File == "" {
		return o, errors.New("no audit log file given")
	}
	if o.File == "-" && o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.MaxSize < 0 {
		return o, fmt.Errorf("audit log maximum size %d is negative", o.MaxSize)
	}
	switch {
	case o.SyncInterval < 0:
		return o, fmt.Errorf("audit sync interval %s is negative", o.SyncInterval)
	case o.SyncInterval == 0:
		o.SyncInterval = DefaultSyncInterval
	}
	switch {
	case o.QueueSize < 0:
		return o, fmt.Errorf("audit queue size %d is negative", o.QueueSize)
	case o.QueueSize == 0:
		o.QueueSize = DefaultQueueSize
	}
	switch {
	case o.QueueBytes == 0:
		o.QueueBytes = DefaultQueueBytes
	case o.QueueBytes < MinQueueBytes:
		return o, fmt.Errorf("audit queue bytes %d is less than %d", o.QueueBytes, MinQueueBytes)
	}
	switch {
	case o.MaxText == 0:
		o.MaxText = DefaultMaxText
	case o.MaxText < MinMaxText || o.MaxText > MaxMaxText:
		return o, fmt.Errorf("audit max text %d is not from %d to %d bytes", o.MaxText, MinMaxText, MaxMaxText)
	}
	switch o.OnFull {
	case "":
		o.OnFull = OnFullBlock
	case OnFullBlock, OnFullDrop:
	default:
		return o, fmt.Errorf("audit on_full %q is neither %q nor %q", o.OnFull, OnFullBlock, OnFullDrop)
	}
	switch o.RewrittenSQL {
	case "":
		o.RewrittenSQL = RewrittenFull
	case RewrittenFull, RewrittenHash, RewrittenNone:
	default:
		return o, fmt.Errorf("audit rewritten_sql %q is not %q, %q or %q", o.RewrittenSQL, RewrittenFull, RewrittenHash, RewrittenNone)
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	o.Key = append([]byte(nil), o.Key...)
	return o, nil
}
