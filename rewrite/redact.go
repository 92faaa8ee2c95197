package rewrite

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// CommentRedacted and LineCommentRedacted stand for a /* */ and a --
// comment in a redacted text (RedactLiterals).
const (
	CommentRedacted     = "/*…*/"
	LineCommentRedacted = "--…"
)

// RedactLiterals returns text with each of its literal constants replaced
// by $n, numbered after the highest $n parameter of text as pg_query's
// Normalize numbers them, without parsing it: the literals are those the
// engine's literal scanner reads (scanLiterals, which FuzzScanLiterals
// holds to pg_query's own scanner), so that a text too long or too deep
// for a caller to hand to pg_query (the audit writer) can still be
// redacted.
//
// Comments go too, as PostgreSQL's lexer reads them (nested /* */, a --
// comment to the end of its line; none inside a string or a quoted
// identifier): a comment may hold what a literal would (a card number,
// "-- password: hunter2"), and a reader of the redaction must read no
// more of the statement than its tokens. Each becomes CommentRedacted
// or LineCommentRedacted, so that the tokens around it stay apart and a
// reader still sees where one was; the newline ending a -- comment stays.
//
// The redaction is cut to at most keep bytes (at a character boundary,
// never inside a $n) when longer, and only the part of text it stands
// for is read: kept is the length of that part, len(text) when the
// redaction is whole. A literal or a comment the cut would go through
// is replaced whole. ok is false when the scanner cannot read that part with
// certainty (a dollar quote, an E'…' string, an unterminated quote…):
// the caller must then not show it.
func RedactLiterals(text string, keep int) (redacted string, kept int, ok bool) {
	keep = max(keep, 0)
	cut := min(len(text), keep)
	for cut > 0 && cut < len(text) && !utf8.RuneStart(text[cut]) {
		cut--
	}
	var backing [16]literalSpan
	spans, maxParam, ok := scanLiteralsTo(text, cut, backing[:0], true)
	if !ok {
		return "", cut, false
	}
	var b strings.Builder
	b.Grow(min(keep, cut+3*len(spans)))
	// copyText copies text[from:to], or as much of it as keep leaves
	// room for, and returns where it stopped.
	copyText := func(from, to int) int {
		if room := keep - b.Len(); to-from > room {
			to = from + max(room, 0)
			for to > from && !utf8.RuneStart(text[to]) {
				to--
			}
		}
		b.WriteString(text[from:to])
		return to
	}
	last, param := 0, maxParam
	var num [20]byte
	for _, s := range spans {
		if end := copyText(last, s.start); end < s.start {
			return b.String(), end, true
		}
		var p []byte
		switch {
		case s.kind != kindComment:
			param++
			p = strconv.AppendInt(append(num[:0], '$'), int64(param), 10)
		case text[s.start] == '-':
			p = append(num[:0], LineCommentRedacted...)
		default:
			p = append(num[:0], CommentRedacted...)
		}
		if len(p) > keep-b.Len() {
			return b.String(), s.start, true
		}
		b.Write(p)
		last = s.end
	}
	if last < cut {
		last = copyText(last, cut)
	}
	return b.String(), last, true
}
