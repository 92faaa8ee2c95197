package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/internal/pgtree"
	"github.com/pgveil/pgveil/internal/scrub"
	"github.com/pgveil/pgveil/internal/sqlguard"
	"github.com/pgveil/pgveil/rewrite"
)

// Cache bounds: at most 2×cacheGeneration texts, each generation
// holding at most cacheGenerationBytes of normalised texts. The cache
// keeps the SHA-256 of a text, not the text: any text the writer parses
// (up to maxParsedText) is remembered, whatever its length, so that a
// client repeating a long statement costs the writer a hash per record,
// not a parse.
const (
	cacheGeneration      = 512
	cacheGenerationBytes = 8 << 20
)

// maxParsedText bounds the texts the writer parses. A client may send a
// statement of up to listen.max_message_size (64 MiB): parsing one that
// long takes the one writer tens of seconds and gigabytes, while every
// session's records wait. Write cuts texts to Options.MaxText, at most
// this; texts too deep for the writer (maxParsedDepth) get no
// fingerprint (unless the rewriter, which may have parsed them, gave
// one), and redaction reads their literals with the rewriter's literal
// scanner instead (redactUnparsed), keeping the first maxParsedText
// bytes of a longer one.
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
	// fingerprint is pg_query's fingerprint (or the rewriter's); "" when
	// the text does not parse.
	fingerprint string
	// normalized is the text with its literals replaced by $n; "" until
	// asked for, or when the text does not parse.
	normalized string
	// normalizedDone records that normalized was computed.
	normalizedDone bool
	// maySecret is mayHoldSecret's answer; secret records holdsSecret's,
	// once secretDone.
	maySecret, secret, secretDone bool
	// skipped records that the text is not handed to pg_query at all:
	// too long or too deep for the writer (parseable), once skipDone.
	// NOTE: asked only when the writer is to parse the text (isSkipped):
	// a text that comes with the rewriter's fingerprint passed the
	// rewriter's own guard, and most are never parsed here (checking
	// costs a scan by pg_query's scanner, a tenth of an audited
	// statement's cost to pgveil when it ran for each new text).
	skipped, skipDone bool
	// redactedFingerprint is the fingerprint of normalized, once
	// redactedDone: the one a record with the text redacted keeps ("" when
	// normalized does not parse).
	redactedFingerprint string
	redactedDone        bool
}

// textKey is the key of a text in a textCache: its SHA-256.
type textKey [sha256.Size]byte

// textCache remembers what parsing recent statement texts gave, so that
// an application's repeated statements are parsed once, and so is a
// client's repeated long one. It keeps two generations of maps: the
// current one, and the one before, whose texts move to the current one
// when seen again; when the current generation is full (in texts, or in
// bytes of normalised texts), the older one is forgotten.
//
// NOTE: only the writer goroutine uses a textCache; it has no lock.
type textCache struct {
	// cur and old are the two generations; curBytes counts the
	// normalised texts' bytes that cur holds.
	cur, old map[textKey]*parsed
	curBytes int
	// parses counts the calls into pg_query (Stats.Parses).
	parses *atomic.Uint64
	// buf is scratch space for hashing a text.
	buf []byte
}

// newTextCache returns an empty cache counting its parses in parses.
func newTextCache(parses *atomic.Uint64) *textCache {
	return &textCache{cur: map[textKey]*parsed{}, old: map[textKey]*parsed{}, parses: parses}
}

// key returns the cache key of text, hashing it in pieces so that a long
// text is not copied whole.
func (c *textCache) key(text string) textKey {
	if len(text) <= 4<<10 {
		// NOTE: copied into buf, not converted: []byte(text) would
		// allocate a copy per record.
		c.buf = append(c.buf[:0], text...)
		return sha256.Sum256(c.buf)
	}
	var k textKey
	sha256Into(k[:0], text, &c.buf)
	return k
}

// sha256Into appends the SHA-256 of text to b, hashing text in pieces
// through *scratch (so that a long text is not copied whole).
func sha256Into(b []byte, text string, scratch *[]byte) []byte {
	h := sha256.New()
	if cap(*scratch) < 32<<10 {
		*scratch = make([]byte, 32<<10)
	}
	buf := (*scratch)[:cap(*scratch)]
	for len(text) > 0 {
		n := copy(buf, text)
		h.Write(buf[:n])
		text = text[n:]
	}
	return h.Sum(b)
}

// get returns the entry of text, creating it. fingerprint is the one the
// rewriter gave, if any: a new entry takes it rather than parsing text.
// Otherwise a new entry is fingerprinted (when the text is parseable).
func (c *textCache) get(text, fingerprint string) *parsed {
	k := c.key(text)
	if p, ok := c.cur[k]; ok {
		if p.fingerprint == "" && fingerprint != "" && !p.isSkipped(text) {
			p.fingerprint = fingerprint
		}
		return p
	}
	p, ok := c.old[k]
	if !ok {
		// NOTE: no fingerprint also means no normalize (below).
		p = &parsed{maySecret: mayHoldSecret(text)}
		switch {
		case fingerprint != "":
			p.fingerprint = fingerprint
		case !p.isSkipped(text):
			c.parses.Add(1)
			if fp, err := pg_query.Fingerprint(text); err == nil {
				p.fingerprint = fp
			}
		}
	}
	if len(c.cur) >= cacheGeneration || c.curBytes+len(p.normalized) > cacheGenerationBytes {
		c.old, c.cur, c.curBytes = c.cur, make(map[textKey]*parsed, cacheGeneration), 0
	}
	c.cur[k] = p
	c.curBytes += len(p.normalized)
	return p
}

// isSkipped reports whether text, whose entry p is, is one the writer
// does not hand to pg_query (parseable), checking once.
func (p *parsed) isSkipped(text string) bool {
	if !p.skipDone {
		p.skipDone = true
		p.skipped = !parseable(text)
	}
	return p.skipped
}

// secretWords are what a statement holding a password or a connection
// string names (case-insensitively), checked before parsing.
var secretWords = []string{"password", "mapping", "server", "dblink", "connect"}

// secretWordAt maps the lower-case first letter of each of secretWords
// to that word; the others map to "".
var secretWordAt = func() (t [256]string) {
	for _, w := range secretWords {
		if t[w[0]] != "" {
			panic("audit: two secret words begin with " + w[:1])
		}
		t[w[0]] = w
	}
	return t
}()

// mayHoldSecret reports whether text names one of secretWords, in any
// case. It reads text once and copies nothing: Write calls it on texts of
// up to listen.max_message_size, and the writer on every statement.
func mayHoldSecret(text string) bool {
	for i := 0; i < len(text); i++ {
		w := secretWordAt[text[i]|0x20]
		if w == "" || len(text)-i < len(w) {
			continue
		}
		j := 1
		for j < len(w) && text[i+j]|0x20 == w[j] {
			j++
		}
		if j == len(w) {
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
//
// p is text's entry, which keeps the answer: text is parsed once.
func (c *textCache) holdsSecret(p *parsed, text string) bool {
	if !p.secretDone {
		p.secretDone = true
		p.secret = c.parseSecret(p, text)
	}
	return p.secret
}

// parseSecret is holdsSecret's parse.
func (c *textCache) parseSecret(p *parsed, text string) bool {
	if p.isSkipped(text) || p.fingerprint == "" {
		return true
	}
	c.parses.Add(1)
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
//
// p is text's entry, which keeps the normalised text.
func (c *textCache) normalize(p *parsed, text string) string {
	if p.isSkipped(text) {
		return redactUnparsed(text)
	}
	if !p.normalizedDone {
		p.normalizedDone = true
		if p.fingerprint != "" {
			c.parses.Add(1)
			if n, err := pg_query.Normalize(text); err == nil {
				// NOTE: pg_query replaces the constants of queries only,
				// as pg_stat_statements does: those of most utility
				// statements stay (EXECUTE p('…'), PREPARE … AS SELECT
				// '…', COPY … TO '…', COMMENT … IS '…', CREATE TABLE …
				// AS …). The literal scanner replaces what is left, and
				// a text it cannot read with certainty is withheld.
				// NOTE: no bound on the redaction's length: a $n is
				// longer than a one-digit number it replaces.
				if red, kept, ok := rewrite.RedactLiterals(n, math.MaxInt); ok && kept == len(n) {
					p.normalized = red
				} else {
					p.normalized = fmt.Sprintf("<statement not redactable with certainty: %d bytes withheld>", len(text))
				}
				c.curBytes += len(p.normalized)
			}
		}
	}
	if p.normalized == "" {
		return unparseableRedacted(text)
	}
	return p.normalized
}

// redactedFingerprint is the fingerprint a record whose text is
// redacted keeps: that of the redacted text (normalize, called first),
// "" when it does not parse (a text withheld, or a utility statement
// whose grammar wants a string where the redaction put $n).
//
// NOTE: never the text's own: pg_query's fingerprint of some utility
// statements hashes their string constants (COPY's file or program,
// NOTIFY's payload, COMMENT's text, CREATE ROLE's password), with which
// a reader of the trail could confirm a guessed literal. A query's, which
// ignores its constants, is the same either way.
func (c *textCache) redactedFingerprint(p *parsed) string {
	if !p.redactedDone {
		p.redactedDone = true
		if p.normalized != "" && parseable(p.normalized) {
			c.parses.Add(1)
			if fp, err := pg_query.Fingerprint(p.normalized); err == nil {
				p.redactedFingerprint = fp
			}
		}
	}
	return p.redactedFingerprint
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
		return red + truncatedMark(kept, len(text), "")
	}
	return red
}

// truncatedMark ends the first kept bytes of a text of total bytes, all
// the record keeps of it; sum, when not "", is the SHA-256 (hex) of the
// whole text, which shows whether two records' texts were the same.
func truncatedMark(kept, total int, sum string) string {
	if sum == "" {
		return fmt.Sprintf("…<statement truncated: the first %d of %d bytes kept>", kept, total)
	}
	return fmt.Sprintf("…<statement truncated: the first %d of %d bytes kept, sha256 %s>", kept, total, sum)
}

// capText cuts text, longer than max bytes, to its first max bytes (at a
// character boundary) and truncatedMark. redact says that its literals
// must not be kept: they are replaced by $n as rewrite.RedactLiterals
// reads them, the redaction cut to max bytes (a text the scanner cannot
// read with certainty is withheld whole), and the mark gives no
// SHA-256, with which a guessed literal could be confirmed. Otherwise
// the mark gives the whole text's SHA-256. scratch is hashing space.
//
// NOTE: the work is linear in text, read once or twice (the secret
// words, the hash or the literal scan), with no parse: Write does it on
// the session's goroutine, which read text from the client, so that no
// record holds more than max bytes of it.
func capText(text string, max int, redact bool, scratch *[]byte) string {
	if redact {
		red, kept, ok := rewrite.RedactLiterals(text, max)
		switch {
		case !ok:
			return fmt.Sprintf("<statement too long or too deep to redact: %d bytes withheld>", len(text))
		case kept == len(text):
			// A literal or a comment the cut went through was its end.
			return red
		}
		return red + truncatedMark(kept, len(text), "")
	}
	// NOTE: at most UTFMax-1 bytes back: text need not be UTF-8.
	cut := max
	for cut > max-utf8.UTFMax+1 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	sum := hex.EncodeToString(sha256Into(nil, text, scratch))
	return text[:cut] + truncatedMark(cut, len(text), sum)
}

// capTexts cuts r's SQL and rewritten SQL longer than o.MaxText (see
// capText), so that a queued record holds at most about 2×MaxText bytes
// of text whatever the client sent, and drops or hashes a long rewritten
// SQL that o.RewrittenSQL does not keep in full. The statement text is
// redacted when o.RedactLiterals, or when it names a secret word
// (mayHoldSecret, read on the whole text): a text the writer cannot parse
// counts as holding a secret (holdsSecret).
func capTexts(r *Record, o *Options) {
	var scratch []byte
	if r.Params != "" {
		// NOTE: the values are literals: redact_literals keeps none, and
		// a text that may hold a secret keeps them withheld whatever it
		// says.
		switch {
		case o.RedactLiterals:
			r.Params = ""
		case mayHoldSecret(r.SQL):
			r.Params = ParamsWithheld
		case len(r.Params) > o.MaxText:
			r.Params = capText(r.Params, o.MaxText, false, &scratch)
		}
	}
	if !r.sqlFinal && len(r.SQL) > o.MaxText {
		r.SQL = capText(r.SQL, o.MaxText, o.RedactLiterals || mayHoldSecret(r.SQL), &scratch)
		r.sqlFinal = true
	}
	if r.rewrittenFinal || len(r.Rewritten) <= o.MaxText {
		return
	}
	switch o.RewrittenSQL {
	case RewrittenNone:
		r.Rewritten = ""
	case RewrittenHash:
		text := r.Rewritten
		if o.RedactLiterals {
			// NOTE: the hash of a text with its literals would confirm a
			// guessed literal: that of its redacted text, or none.
			red, kept, ok := rewrite.RedactLiterals(text, math.MaxInt)
			if !ok || kept != len(text) {
				r.Rewritten, r.rewrittenFinal = "", true
				return
			}
			text = red
		}
		r.rewrittenSHA256 = hex.EncodeToString(sha256Into(nil, text, &scratch))
		r.Rewritten = ""
	default:
		r.Rewritten = capText(r.Rewritten, o.MaxText, o.RedactLiterals, &scratch)
	}
	r.rewrittenFinal = true
}

// ParamsWithheld is the params of a statement whose text may hold a
// secret (mayHoldSecret).
const ParamsWithheld = "(withheld: the statement may hold a secret)"

// recordOverhead is what a record counts for beyond its strings: the
// Record itself, the slices' headers, the queue's slot.
const recordOverhead = 512

// recordSize is what r counts for in Options.QueueBytes: its strings'
// bytes and recordOverhead.
func recordSize(r *Record) int64 {
	n := recordOverhead + len(r.Event) + len(r.Session) + len(r.User) + len(r.ActingFor) + len(r.ActingForBefore) + len(r.Client) +
		len(r.ApplicationName) + len(r.Database) + len(r.Kind) + len(r.SQL) + len(r.Params) + len(r.Fingerprint) +
		len(r.Rewritten) + len(r.Decision) + len(r.Reason) + len(r.SQLState) + len(r.Message) +
		len(r.UpstreamError) + len(r.PolicyVersion) + len(r.OldPolicyVersion) + len(r.rewrittenSHA256)
	for _, list := range [][]string{r.Roles, r.ActingRoles, r.Tables, r.Rules, r.Columns, r.Masked} {
		for _, v := range list {
			n += len(v) + 16
		}
	}
	return int64(n)
}

// prepare turns a Record into the Entry the writer encodes: it adds the
// fingerprint, redacts literals, and hashes or drops the rewritten SQL,
// as the options say. It never modifies r.
//
// NOTE: what it parses it parses once per text (textCache, by SHA-256):
// a record costs the writer a parse only for a text it has not seen
// lately, and not for one whose fingerprint the rewriter gave unless
// its literals are to be redacted or it names a secret word.
func (c *textCache) prepare(r *Record, o *Options) Entry {
	e := Entry{Record: *r}
	if y := r.Time.UTC().Year(); y < 0 || y > 9999 {
		// NOTE: RFC 3339 has four-digit years; a line must always parse.
		e.Time = time.Now()
	}
	// redacted reports a text kept without its literals.
	redacted := o.RedactLiterals
	switch {
	case r.SQL == "":
	case r.sqlFinal:
		// Cut by Write, redacted as capTexts decided.
		redacted = redacted || mayHoldSecret(r.SQL)
	case r.Fingerprint != "" && !o.RedactLiterals && !mayHoldSecret(r.SQL):
		// The record is kept as it came: nothing to parse, so nothing to
		// remember. NOTE: most records of simple-protocol clients, each
		// a new text (inlined values), which would cost a hash and an
		// entry each, and push the texts worth remembering out.
	default:
		p := c.get(r.SQL, r.Fingerprint)
		if r.Fingerprint == "" {
			e.Fingerprint = p.fingerprint
		}
		if o.RedactLiterals || p.maySecret && c.holdsSecret(p, r.SQL) {
			e.SQL = c.normalize(p, r.SQL)
			e.Fingerprint = c.redactedFingerprint(p)
			redacted = true
		}
	}
	if redacted && r.Message != "" {
		// NOTE: pgveil's own refusals quote what they refuse, a literal
		// of the statement among them (set_config's setting name, the
		// user SET pgveil.act_for names, application_name's value): the
		// rule, tables and columns stay in their own fields.
		e.Message = scrub.Quoted(r.Message)
	}
	if o.RedactLiterals && r.UpstreamError != "" {
		// NOTE: PostgreSQL quotes the values it echoes, literals of the
		// statement among them (relation "<a regclass literal>" does not
		// exist, unrecognized configuration parameter "<a literal>"):
		// the proxy scrubs those of classes 22 and 23 only.
		e.UpstreamError = scrub.Quoted(r.UpstreamError)
	}
	switch {
	case r.rewrittenSHA256 != "":
		e.Rewritten, e.RewrittenSHA256 = "", r.rewrittenSHA256
	case r.Rewritten == "" || r.rewrittenFinal:
	case o.RewrittenSQL == RewrittenHash:
		text := r.Rewritten
		if o.RedactLiterals {
			// NOTE: the hash of a text with its literals would confirm a
			// guessed literal (capTexts).
			text = c.normalize(c.get(text, ""), text)
		}
		sum := sha256.Sum256([]byte(text))
		e.Rewritten, e.RewrittenSHA256 = "", hex.EncodeToString(sum[:])
	case o.RewrittenSQL == RewrittenNone:
		e.Rewritten = ""
	case o.RedactLiterals:
		e.Rewritten = c.normalize(c.get(r.Rewritten, ""), r.Rewritten)
	}
	return e
}
