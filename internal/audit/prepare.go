package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/internal/pgtree"
	"github.com/pgveil/pgveil/internal/sqlguard"
	"github.com/pgveil/pgveil/rewrite"
)

// Cache bounds: at most 2×cacheGeneration texts of at most cacheMaxText
// bytes each, a few MiB.
const (
	cacheGeneration = 512
	cacheMaxText    = 4 << 10
)

// maxParsedText bounds the texts the writer parses. A client may send a
// statement of up to listen.max_message_size (64 MiB): parsing one that
// long takes the one writer tens of seconds and gigabytes, while every
// session's records wait. Longer texts, and those too deep for the writer
// (maxParsedDepth), get no fingerprint (unless the rewriter, which may
// have parsed them, gave one), and redaction reads their literals with
// the rewriter's literal scanner instead (redactUnparsed), keeping the
// first maxParsedText bytes of a longer one.
const maxParsedText = 256 << 10

// maxParsedDepth bounds the operators and nesting of the texts the
// writer parses: pg_query's fingerprint and normalisation recurse in C
// once per level, as its deparser does, which crashes at about 4,900.
const maxParsedDepth = 1000

// parseable reports whether the writer may hand text to pg_query.
func parseable(text string) bool {
	return len(text) <= maxParsedText && sqlguard.Shallow(text, maxParsedDepth)
}

// parsed is what the writer learns from parsing a statement text.
type parsed struct {
	// fingerprint is pg_query's fingerprint; "" when the text does not
	// parse.
	fingerprint string
	// normalized is the text with its literals replaced by $n; "" until
	// asked for, or when the text does not parse.
	normalized string
	// normalizedDone records that normalized was computed.
	normalizedDone bool
	// skipped records that the text was not handed to pg_query at all:
	// too long or too deep for the writer (parseable).
	skipped bool
}

// textCache remembers what parsing recent statement texts gave, so that
// an application's repeated statements are parsed once. It keeps two
// generations of maps: the current one, and the one before, whose texts
// move to the current one when seen again; when the current generation
// is full, the older one is forgotten.
//
// NOTE: only the writer goroutine uses a textCache; it has no lock.
type textCache struct {
	// cur and old are the two generations.
	cur, old map[string]*parsed
}

// newTextCache returns an empty cache.
func newTextCache() *textCache {
	return &textCache{cur: map[string]*parsed{}, old: map[string]*parsed{}}
}

// get returns the entry of text, creating it (with its fingerprint).
func (c *textCache) get(text string) *parsed {
	if p, ok := c.cur[text]; ok {
		return p
	}
	p, ok := c.old[text]
	if !ok {
		// NOTE: no fingerprint also means no normalize (below).
		p = &parsed{skipped: !parseable(text)}
		if !p.skipped {
			if fp, err := pg_query.Fingerprint(text); err == nil {
				p.fingerprint = fp
			}
		}
	}
	if len(text) <= cacheMaxText {
		if len(c.cur) >= cacheGeneration {
			c.old, c.cur = c.cur, make(map[string]*parsed, cacheGeneration)
		}
		c.cur[text] = p
	}
	return p
}

// secretWords are what a statement holding a password or a connection
// string names (case-insensitively), checked before parsing.
var secretWords = []string{"password", "mapping", "server", "dblink", "connect"}

// mayHoldSecret reports whether text names one of secretWords.
func mayHoldSecret(text string) bool {
	lower := strings.ToLower(text)
	for _, w := range secretWords {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return false
}

// holdsSecret reports whether text, which mayHoldSecret, is a statement
// whose literals may be a password or a connection string: CREATE or
// ALTER ROLE (PASSWORD), a user mapping's or a foreign server's OPTIONS,
// a call of a dblink function. Such texts are kept with their literals
// redacted even when redact_literals is off; so is one that does not
// parse, which cannot be told apart. pgveil refuses all of them, but the
// audit trail records refused statements too.
func (c *textCache) holdsSecret(text string) bool {
	p := c.get(text)
	if p.fingerprint == "" {
		return true
	}
	tree, err := pg_query.Parse(text)
	if err != nil {
		return true
	}
	secret := false
	for _, st := range tree.Stmts {
		pgtree.Walk(st, func(m proto.Message) bool {
			switch v := m.(type) {
			case *pg_query.CreateRoleStmt, *pg_query.AlterRoleStmt, *pg_query.CreateUserMappingStmt,
				*pg_query.AlterUserMappingStmt, *pg_query.CreateForeignServerStmt, *pg_query.AlterForeignServerStmt,
				*pg_query.CreateSubscriptionStmt, *pg_query.AlterSubscriptionStmt:
				secret = true
			case *pg_query.FuncCall:
				if n := len(v.Funcname); n > 0 && strings.HasPrefix(v.Funcname[n-1].GetString_().GetSval(), "dblink") {
					secret = true
				}
			}
			return !secret
		})
	}
	return secret
}

// normalize returns text with its literals replaced by $n. A text the
// writer does not parse (too long or too deep) is redacted by
// redactUnparsed; one that pg_query cannot parse cannot be redacted
// reliably, so it is replaced whole.
func (c *textCache) normalize(text string) string {
	p := c.get(text)
	if p.skipped {
		return redactUnparsed(text)
	}
	if !p.normalizedDone {
		p.normalizedDone = true
		if p.fingerprint != "" {
			if n, err := pg_query.Normalize(text); err == nil {
				p.normalized = n
			}
		}
	}
	if p.normalized == "" {
		return unparseableRedacted(text)
	}
	return p.normalized
}

// unparseableRedacted is what redaction leaves of a text pg_query cannot
// parse: its length only.
func unparseableRedacted(text string) string {
	return fmt.Sprintf("<statement not parsed: %d bytes redacted>", len(text))
}

// redactUnparsed redacts a text the writer does not hand to pg_query,
// too long or too deep for it (the rewriter may well have parsed it):
// its literals are replaced by $n as the rewriter's literal scanner reads
// them (rewrite.RedactLiterals), in its first maxParsedText bytes only,
// which a longer text is cut to, truncatedMark after them. A text
// that scanner cannot read with certainty (a dollar quote, an E'…'
// string) is replaced by its length only.
func redactUnparsed(text string) string {
	red, kept, ok := rewrite.RedactLiterals(text, maxParsedText)
	switch {
	case !ok:
		return fmt.Sprintf("<statement too long or too deep to redact: %d bytes withheld>", len(text))
	case kept < len(text):
		return red + truncatedMark(kept, len(text))
	}
	return red
}

// truncatedMark ends the first kept bytes of a text of total bytes, all
// the record keeps of it.
func truncatedMark(kept, total int) string {
	return fmt.Sprintf("…<statement truncated: the first %d of %d bytes kept>", kept, total)
}

// prepare turns a Record into the Entry the writer encodes: it adds the
// fingerprint, redacts literals, and hashes or drops the rewritten SQL,
// as the options say. It never modifies r.
func (c *textCache) prepare(r *Record, o *Options) Entry {
	e := Entry{Record: *r}
	if y := r.Time.UTC().Year(); y < 0 || y > 9999 {
		// NOTE: RFC 3339 has four-digit years; a line must always parse.
		e.Time = time.Now()
	}
	if r.SQL != "" {
		if r.Fingerprint == "" {
			e.Fingerprint = c.get(r.SQL).fingerprint
		}
		if o.RedactLiterals || mayHoldSecret(r.SQL) && c.holdsSecret(r.SQL) {
			e.SQL = c.normalize(r.SQL)
		}
	}
	if r.Rewritten != "" {
		switch o.RewrittenSQL {
		case RewrittenHash:
			sum := sha256.Sum256([]byte(r.Rewritten))
			e.Rewritten, e.RewrittenSHA256 = "", hex.EncodeToString(sum[:])
		case RewrittenNone:
			e.Rewritten = ""
		default:
			if o.RedactLiterals {
				e.Rewritten = c.normalize(r.Rewritten)
			}
		}
	}
	return e
}
