package rewrite

import (
	"slices"
	"strconv"
	"strings"
)

// The kinds of literal constant literalShape replaces, named by the token
// PostgreSQL's lexer makes of them. The grammar sees a token's kind, never
// its value, so two texts whose literals differ only in value parse to
// the same tree.
const (
	// kindInt is an integer that fits int4 (ICONST).
	kindInt = 'i'
	// kindBigInt is an integer too large for int4 that fits int8 (an
	// FCONST that PostgreSQL types bigint): told apart from kindNumeric
	// because the rewriter pushes a comparison with it (an int8 operand)
	// and not with a numeric.
	kindBigInt = 'b'
	// kindNumeric is any other number (FCONST).
	kindNumeric = 'n'
	// kindString is a standard '…' string (SCONST).
	kindString = 's'
	// kindComment is a comment, -- or /* */ (not a literal: reported
	// only to RedactLiterals, which replaces comments too).
	kindComment = 'c'
)

// literalSpan is one literal constant of a statement text: text[start:end]
// is the whole token, quotes included.
type literalSpan struct {
	start, end int
	kind       byte
}

// literalShape returns the literal shape of text: the kinds of its literal
// constants in order, a NUL byte, then text with each literal replaced by
// $n, numbered after the highest $n parameter of text as pg_query's
// Normalize numbers them. kinds is the number of literals; ok is false
// when scanLiterals cannot read text with certainty.
//
// It is the engine's cheap way to recognise a statement that differs from
// one already checked only in its constants, without handing it to
// pg_query's C parser: two texts with the same shape have the same bytes
// outside their literals, and literals of the same kinds at the same
// places, so PostgreSQL's lexer makes the same tokens of both but for the
// literals' values, and its grammar the same tree.
func literalShape(text string) (shape string, kinds int, ok bool) {
	var backing [16]literalSpan
	shape, spans, ok := literalShapeSpans(text, backing[:0])
	return shape, len(spans), ok
}

// literalShapeSpans is literalShape, appending the literals' spans to
// spans.
func literalShapeSpans(text string, spans []literalSpan) (shape string, _ []literalSpan, ok bool) {
	b, spans, ok := appendLiteralShape(nil, text, spans)
	return string(b), spans, ok
}

// appendLiteralShape is literalShapeSpans appending the shape to dst:
// Engine.find builds it in an array on its stack, to look it up without
// an allocation per statement.
func appendLiteralShape(dst []byte, text string, spans []literalSpan) (shape []byte, _ []literalSpan, ok bool) {
	spans, maxParam, ok := scanLiterals(text, spans)
	if !ok || len(spans) == 0 {
		return dst, spans, ok
	}
	b := slices.Grow(dst, len(spans)+1+len(text)+3*len(spans))
	for _, s := range spans {
		b = append(b, s.kind)
	}
	b = append(b, 0)
	last := 0
	for i, s := range spans {
		b = append(b, text[last:s.start]...)
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(maxParam+i+1), 10)
		last = s.end
	}
	b = append(b, text[last:]...)
	return b, spans, true
}

// scanLiterals appends to spans the literal constants of text, read as
// PostgreSQL's lexer reads them with standard_conforming_strings on (the
// setting pgveil pins), and returns the highest $n parameter number.
//
// Comments are skipped, as the lexer skips them: a literal shape keeps
// their text, so two statements of one shape have the same comments
// (tools such as Looker put a comment naming the query before each).
//
// NOTE: ok is false for anything whose tokens the scan does not know with
// certainty: an unterminated comment, dollar quotes, E'…', B'…', X'…', N'…' and U&'…'
// strings, U&"…" identifiers, empty "" identifiers, a string continued on
// a later line, numbers in other bases or with underscores, junk right
// after a number or a parameter, and unterminated quotes. A text it
// accepts has exactly the literal tokens it reports (FuzzScanLiterals
// holds it to pg_query's own scanner); callers treat ok == false as
// "unknown", never as "no literals".
func scanLiterals(text string, spans []literalSpan) (_ []literalSpan, maxParam int, ok bool) {
	return scanLiteralsTo(text, len(text), spans, false)
}

// scanLiteralsTo is scanLiterals reading the tokens of text that start
// before stop only: ok and maxParam say nothing of the rest, and the last
// span may end past stop. With comments, the comments are among the
// spans too (kindComment), in text order.
func scanLiteralsTo(text string, stop int, spans []literalSpan, comments bool) (_ []literalSpan, maxParam int, ok bool) {
	n := len(text)
	for i := 0; i < stop; {
		c := text[i]
		// Most bytes are spaces, punctuation and identifiers: skip them
		// by table before the cases that read tokens.
		switch scanClass[c] {
		case scanPlain:
			i++
			continue
		case scanIdent:
			i++
			for i < n && identCont[text[i]] {
				i++
			}
			continue
		}
		switch {
		case c == '\'':
			// A prefix glued to the quote makes another kind of string
			// (E'…', B'…', X'…', N'…', U&'…').
			if i > 0 && (identChar(text[i-1]) || text[i-1] == '&') {
				return nil, 0, false
			}
			end, closed := quoted(text, i)
			if !closed || continuesString(text, end) {
				return nil, 0, false
			}
			spans = append(spans, literalSpan{start: i, end: end, kind: kindString})
			i = end
		case c == '"':
			if i > 0 && text[i-1] == '&' {
				return nil, 0, false
			}
			end, closed := quoted(text, i)
			if !closed || end == i+2 {
				return nil, 0, false // "" is an error, not an identifier
			}
			i = end
		case c == '$':
			// Only a parameter $n; $tag$ starts a dollar-quoted string.
			j := i + 1
			for j < n && isDigit(text[j]) {
				j++
			}
			if j == i+1 || j-i > 10 || j < n && identChar(text[j]) {
				return nil, 0, false
			}
			p, err := strconv.Atoi(text[i+1 : j])
			if err != nil || p > 1<<30 {
				return nil, 0, false
			}
			maxParam = max(maxParam, p)
			i = j
		case c == '-' && i+1 < n && text[i+1] == '-':
			end := lineCommentEnd(text, i)
			if comments {
				spans = append(spans, literalSpan{start: i, end: end, kind: kindComment})
			}
			i = end
		case c == '/' && i+1 < n && text[i+1] == '*':
			end, closed := blockCommentEnd(text, i)
			if !closed {
				return nil, 0, false
			}
			if comments {
				spans = append(spans, literalSpan{start: i, end: end, kind: kindComment})
			}
			i = end
		case c == '.' && i+1 < n && text[i+1] == '.':
			i += 2 // the .. token, not a dot and a number
		case isDigit(c) || c == '.' && i+1 < n && isDigit(text[i+1]):
			end, kind, ok := scanNumber(text, i)
			if !ok {
				return nil, 0, false
			}
			spans = append(spans, literalSpan{start: i, end: end, kind: kind})
			i = end
		case identStart(c):
			i++
			for i < n && identChar(text[i]) {
				i++
			}
		default:
			i++
		}
	}
	return spans, maxParam, true
}

// The classes of scanClass.
const (
	// scanSpecial is a byte that may start a token scanLiterals reads:
	// a quote, $, -, /, . or a digit.
	scanSpecial = iota
	// scanPlain is any other byte that does not start an identifier.
	scanPlain
	// scanIdent starts an identifier (identStart).
	scanIdent
)

// scanClass classifies the first byte of a token for scanLiterals.
var scanClass = func() (t [256]byte) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		switch {
		case b == '\'' || b == '"' || b == '$' || b == '-' || b == '/' || b == '.' || isDigit(b):
			t[c] = scanSpecial
		case identStart(b):
			t[c] = scanIdent
		default:
			t[c] = scanPlain
		}
	}
	return t
}()

// identCont is identChar as a table.
var identCont = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = identChar(byte(c))
	}
	return t
}()

// quoted returns the end of the quoted token starting at text[i] (its
// quote character doubled inside it) and whether it is closed.
func quoted(text string, i int) (end int, closed bool) {
	q := text[i]
	for j := i + 1; j < len(text); j++ {
		if text[j] != q {
			continue
		}
		if j+1 < len(text) && text[j+1] == q {
			j++
			continue
		}
		return j + 1, true
	}
	return len(text), false
}

// continuesString reports whether the string ending at end goes on in
// another quoted segment: PostgreSQL joins 'a' and 'b' into one string
// when only whitespace holding a newline separates them.
//
// NOTE: comments between the two count as whitespace here, and a line
// comment as a newline: whether the lexer of a given PostgreSQL version
// joins across a comment or not, such a text is reported as continued,
// which its callers refuse.
func continuesString(text string, end int) bool {
	newline := false
	j := end
	for j < len(text) {
		switch c := text[j]; {
		case isSpace(c):
			if c == '\n' || c == '\r' {
				newline = true
			}
			j++
			continue
		case c == '-' && j+1 < len(text) && text[j+1] == '-':
			j = lineCommentEnd(text, j)
			newline = true
			continue
		case c == '/' && j+1 < len(text) && text[j+1] == '*':
			e, closed := blockCommentEnd(text, j)
			if !closed {
				return false
			}
			j = e
			continue
		}
		break
	}
	return newline && j < len(text) && text[j] == '\''
}

// lineCommentEnd returns the end of the -- comment starting at text[i]:
// its newline, or the end of text.
func lineCommentEnd(text string, i int) int {
	j := i + 2
	for j < len(text) && text[j] != '\n' && text[j] != '\r' {
		j++
	}
	return j
}

// blockCommentEnd returns the end of the /* comment starting at text[i],
// after its */, and whether it is closed. Block comments nest, as in
// PostgreSQL's lexer.
func blockCommentEnd(text string, i int) (end int, closed bool) {
	depth := 0
	for j := i; j+1 < len(text); {
		switch {
		case text[j] == '/' && text[j+1] == '*':
			depth++
			j += 2
		case text[j] == '*' && text[j+1] == '/':
			depth--
			j += 2
			if depth == 0 {
				return j, true
			}
		default:
			j++
		}
	}
	return len(text), false
}

// scanNumber reads the number starting at text[i]: digits, an optional
// fraction and an optional exponent, as PostgreSQL's decimal rules read
// them. ok is false for what those rules read otherwise or refuse: a
// letter, digit separator, '$' or '.' right after the number, which also
// covers 0x, 0o and 0b integers and underscores.
func scanNumber(text string, i int) (end int, kind byte, ok bool) {
	n := len(text)
	j := i
	for j < n && isDigit(text[j]) {
		j++
	}
	integer := true
	if j < n && text[j] == '.' {
		if j+1 < n && text[j+1] == '.' {
			return 0, 0, false // 1..2 is an integer and an operator
		}
		integer = false
		j++
		for j < n && isDigit(text[j]) {
			j++
		}
	}
	if j < n && (text[j] == 'e' || text[j] == 'E') {
		k := j + 1
		if k < n && (text[k] == '+' || text[k] == '-') {
			k++
		}
		if k >= n || !isDigit(text[k]) {
			return 0, 0, false
		}
		for k < n && isDigit(text[k]) {
			k++
		}
		integer = false
		j = k
	}
	if j < n && (identChar(text[j]) || text[j] == '.') {
		return 0, 0, false
	}
	if integer && fitsInt4(text[i:j]) {
		return j, kindInt, true
	}
	if integer {
		if _, err := strconv.ParseInt(text[i:j], 10, 64); err == nil {
			return j, kindBigInt, true
		}
	}
	return j, kindNumeric, true
}

// fitsInt4 reports whether the decimal digits d are at most 2147483647,
// the largest integer PostgreSQL's lexer makes an ICONST of.
func fitsInt4(d string) bool {
	d = strings.TrimLeft(d, "0")
	if len(d) > 10 {
		return false
	}
	// NOTE: no strconv, whose "0"+d allocated for every literal.
	var v uint64
	for i := 0; i < len(d); i++ {
		if !isDigit(d[i]) {
			return false
		}
		v = v*10 + uint64(d[i]-'0')
	}
	return v <= 1<<31-1
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isSpace is PostgreSQL's lexer's {space}.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// identStart is PostgreSQL's lexer's {ident_start}.
func identStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}
