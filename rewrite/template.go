package rewrite

import (
	"crypto/rand"
	"encoding/hex"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// A template is a rewrite the engine produced once for a statement shape
// (a text up to its literal constants, see literalShape) and reuses for
// every later statement of that shape, without pg_query: fixed pieces of
// the rewritten SQL, with slots where the client's own literal constants
// go. Simple-protocol clients inline their values, so most of their
// statements are new texts of a known shape; a template turns the parse,
// rewrite and deparse of each into a scan of its literals and a splice.
//
// How one is made (buildTemplate): the statement is rewritten again with
// each literal replaced by a sentinel of the same kind (an int4 stays an
// int4, a string a string), so that every decision of the rewriter is the
// same, and the sentinels are found in the output by pg_query's scanner,
// as tokens: wherever the rewriter copied a literal (pushed-down
// comparisons) there is a slot. That is done twice, with two sets of
// sentinels that share no value, and both must cut the same template: a
// constant the rewriter wrote itself (a policy's `team_id = 1900000000`,
// a user attribute) that happens to equal a sentinel would be a slot in
// one probe and fixed text in the other, and the statement then gets no
// template. Otherwise a client's literal would replace it. A template is
// also kept only when splicing the statement's own literals into it
// gives, byte for byte, the direct rewrite of that statement.
//
// NOTE: a template holds only what the rewriter itself wrote and the
// client's own literal tokens, each a complete token as PostgreSQL's
// lexer reads it (scanLiterals, held to pg_query's scanner by fuzzing),
// rendered as the deparser renders that value (renderLiteral). It is
// reused only under the same compiled policy key and message type, like
// every cache entry.
type template struct {
	// pieces are the fixed texts; slots[i] is the index of the literal
	// that goes after pieces[i]. len(pieces) == len(slots)+1.
	pieces []string
	slots  []int
	// literals is the number of literals of the shape.
	literals int
}

// templateSentinelTag makes the sentinels of this process unlike any text
// a policy holds.
var templateSentinelTag = func() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("rewrite: no randomness: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}()

// sentinelProbes is the number of probes a template is cut from, each
// with sentinels of its own (sentinels).
const sentinelProbes = 2

// sentinels are the stand-ins of one probe's literals. Numbers are drawn
// from a range of their kind (int4, int8, numeric) split in one part per
// probe, so no two probes share a value: a random base, then one more per
// literal. Strings carry the probe and a tag random per process.
//
// NOTE: the proof does not rest on the randomness: a constant equal to a
// sentinel of one probe is fixed text in the other, whose template then
// differs (buildTemplate). The randomness only keeps a policy's constant
// from matching the same sentinels every time, so its shapes still get
// templates.
type sentinels struct {
	probe int
	// ints, bigints and numerics are the first literal's number, by
	// kind.
	ints, bigints, numerics int64
}

// sentinelBase returns the first of the n sentinels of one kind of
// probe: [lo, hi) is split in one part per probe, and the n take
// consecutive values from a random place in probe's part.
func sentinelBase(probe, n int, lo, hi int64) int64 {
	part := (hi - lo) / sentinelProbes
	return lo + int64(probe)*part + sentinelDraw(part-int64(n))
}

// sentinelDraw returns a random number in [0, n); tests pin it.
var sentinelDraw = mrand.Int64N

// newSentinels returns the sentinels of probe (0 to sentinelProbes-1)
// for a statement of n literals. An int4 stays an int4 (positive, below
// 2^31) and an int8 above int4, as the literals they stand for.
func newSentinels(probe, n int) *sentinels {
	return &sentinels{
		probe:    probe,
		ints:     sentinelBase(probe, n, 1_000_000_000, 2_000_000_000),
		bigints:  sentinelBase(probe, n, 10_000_000_000, 900_000_000_000_000_000),
		numerics: sentinelBase(probe, n, 1_000_000_000, 2_000_000_000),
	}
}

// of returns the stand-in for literal i of the given kind.
func (s *sentinels) of(i int, kind byte) string {
	switch kind {
	case kindInt:
		return strconv.FormatInt(s.ints+int64(i), 10)
	case kindBigInt:
		return strconv.FormatInt(s.bigints+int64(i), 10)
	case kindNumeric:
		return strconv.FormatInt(s.numerics+int64(i), 10) + ".25"
	default:
		// Not an identifier: a deparser that writes some strings bare
		// would quote this one, and the check below would then fail.
		return "'pgveil slot " + strconv.Itoa(s.probe) + "." + strconv.Itoa(i) + " " + templateSentinelTag + "'"
	}
}

// sameTemplate reports whether a and b have the same pieces and slots.
func sameTemplate(a, b *template) bool {
	return a != nil && b != nil && a.literals == b.literals &&
		slices.Equal(a.pieces, b.pieces) && slices.Equal(a.slots, b.slots)
}

// templatable reports whether a statement's shape may have a template:
// reads, UPDATE and DELETE only (the deparser writes literals of other
// statements, such as COPY options, in forms of its own), with literals.
//
// A number right after a minus sign may be folded by the parser into a
// negative constant, which the deparser writes as the sign then the
// number: the template has its slot after the sign. The one value it
// writes otherwise, -0 as 0, is refused at splice time (negatedZero). A
// plus sign is never folded: +5 and a + 5 keep their operator.
func templatable(spans []literalSpan, res *Result) bool {
	if len(spans) == 0 || res.constantBound || !res.Rewritten {
		return false
	}
	for _, k := range res.Kinds {
		switch StatementKind(k) {
		case KindSelect, KindUpdate, KindDelete:
		default:
			return false
		}
	}
	return true
}

// signBefore returns the byte before the literal s, spaces skipped, 0 at
// the start of text.
func signBefore(text string, s literalSpan) byte {
	j := s.start - 1
	for j >= 0 && isSpace(text[j]) {
		j--
	}
	if j < 0 {
		return 0
	}
	return text[j]
}

// negatedZero reports whether the literal s of text is an integer zero
// after a minus sign: the parser folds -0 into 0, which the deparser
// writes without the sign that a template keeps.
func negatedZero(text string, s literalSpan) bool {
	if s.kind != kindInt || signBefore(text, s) != '-' {
		return false
	}
	return strings.Trim(text[s.start:s.end], "0") == ""
}

// negatedBoundary reports whether the literal s of text is the magnitude
// of the smallest int4 or int8 after a minus sign: read alone it is of
// the next kind up (2147483648 a bigint, 9223372036854775808 a numeric),
// but the parser folds the sign into a constant of the smaller kind,
// which the rewriter may treat otherwise (a comparison pushed down, or
// cast to another type) than the shape's template assumes.
func negatedBoundary(text string, s literalSpan) bool {
	if s.kind != kindBigInt && s.kind != kindNumeric || signBefore(text, s) != '-' {
		return false
	}
	switch strings.TrimLeft(text[s.start:s.end], "0") {
	case "2147483648", "9223372036854775808":
		return true
	}
	return false
}

// buildTemplate returns the template of text's shape, or nil when it
// cannot be made or does not reproduce direct, the rewrite of text.
func buildTemplate(text string, spans []literalSpan, direct *Result, cat *Catalog, p Policy) *template {
	if !templatable(spans, direct) {
		return nil
	}
	// NOTE: the proof, first part: probes with sentinels that share no
	// value cut the same template, so its slots are the literals' copies
	// and nothing else.
	var t *template
	for probe := range sentinelProbes {
		var b strings.Builder
		sent := newSentinels(probe, len(spans))
		byText := make(map[string]int, len(spans))
		last := 0
		for i, s := range spans {
			b.WriteString(text[last:s.start])
			v := sent.of(i, s.kind)
			byText[v] = i
			b.WriteString(v)
			last = s.end
		}
		b.WriteString(text[last:])
		res, err := rewriteGuarded(b.String(), cat, p)
		if err != nil || !res.Rewritten {
			return nil
		}
		cut := cutTemplate(res.SQL, byText, len(spans))
		if cut == nil || t != nil && !sameTemplate(t, cut) {
			return nil
		}
		t = cut
	}
	// A template reproduces the deparse-based rewrite, reading governed
	// relations directly where it may: the engine's own (direct) keeps
	// the subquery (rewriteText), and a spliced one (splice.go) keeps
	// the client's spelling of its literals, which a template renders as
	// the deparser does.
	direct, err := rewriteGuarded(text, cat, p)
	if err != nil || !direct.Rewritten {
		return nil
	}
	// NOTE: the proof, second part: the template must give the direct
	// rewrite of the statement it was made from, byte for byte.
	if got, ok := t.splice(text, spans); !ok || got != direct.SQL {
		return nil
	}
	return t
}

// cutTemplate cuts out, the rewrite of a text whose literals were
// replaced by sentinels (sentinel i standing for literal i), into a
// template: the sentinels are found as the literal tokens pg_query's
// scanner reads. nil when out does not scan.
func cutTemplate(out string, sentinels map[string]int, literals int) *template {
	t := &template{literals: literals}
	if literals == 0 {
		t.pieces = []string{out}
		return t
	}
	scan, err := pg_query.Scan(out)
	if err != nil {
		return nil
	}
	last := 0
	for _, tok := range scan.Tokens {
		switch tok.Token {
		case pg_query.Token_ICONST, pg_query.Token_FCONST, pg_query.Token_SCONST:
		default:
			continue
		}
		i, ok := sentinels[out[tok.Start:tok.End]]
		if !ok {
			continue
		}
		t.pieces = append(t.pieces, out[last:tok.Start])
		t.slots = append(t.slots, i)
		last = int(tok.End)
	}
	t.pieces = append(t.pieces, out[last:])
	return t
}

// splice returns the template filled with text's literals, or false when
// a literal cannot be rendered as the deparser would.
func (t *template) splice(text string, spans []literalSpan) (string, bool) {
	// NOTE: pg_query refuses a text that is not UTF-8; so must a splice,
	// whose literals would carry the bytes upstream.
	if !utf8.ValidString(text) {
		return "", false
	}
	return t.spliceValid(text, spans)
}

// spliceValid is splice for a text its caller has found valid UTF-8
// (Engine.find checks it before scanning the literals): the check is not
// made twice per statement.
func (t *template) spliceValid(text string, spans []literalSpan) (string, bool) {
	if len(spans) != t.literals {
		return "", false
	}
	var rendered [16]string
	lits := rendered[:0]
	for _, s := range spans {
		r, ok := renderLiteral(text[s.start:s.end], s.kind)
		if !ok || negatedZero(text, s) || negatedBoundary(text, s) {
			return "", false
		}
		lits = append(lits, r)
	}
	return t.fill(lits)
}

// renderLiteral writes the literal token tok (of the kind scanLiterals
// gave it) as pg_query's deparser writes its value: an int4 in decimal
// without leading zeros, another number as its token, a string quoted
// with its quotes doubled, and with E” and its backslashes doubled when
// it holds one (standard_conforming_strings is pinned on, so the client's
// backslash is a character).
func renderLiteral(tok string, kind byte) (string, bool) {
	switch kind {
	case kindInt:
		v, err := strconv.ParseInt(tok, 10, 64)
		if err != nil {
			return "", false
		}
		// NOTE: a token of digits that parsed, without a leading zero,
		// is its value's decimal form already: FormatInt would return
		// a copy of it (an allocation per literal on the hot path).
		if tok[0] != '0' && tok[0] != '+' {
			return tok, true
		}
		return strconv.FormatInt(v, 10), true
	case kindBigInt, kindNumeric:
		return tok, true
	case kindString:
		if !strings.Contains(tok, `\`) {
			return tok, true
		}
		return "E" + strings.ReplaceAll(tok, `\`, `\\`), true
	}
	return "", false
}
