package printable

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Unprintable reports whether a terminal would act on r rather than
// print it (C0 and C1 controls and DEL, format characters such as the
// bidirectional overrides and isolates and the zero-width ones, line
// and paragraph separators), or print nothing a reader could see (the
// default-ignorable fillers such as U+3164, so that "marie\u3164" would
// pass for marie). The audit trail escapes these; so do pgveil's log, audit search's
// table and configuration diagnostics.
//
// NOTE: a bit table for the basic plane, so that a value of accented
// or CJK text costs a lookup per character, not a search of five
// Unicode tables: the writer and the log check every non-ASCII
// character they write. It is exactly unprintableSlow
// (TestUnprintableTable).
func Unprintable(r rune) bool {
	if uint32(r) < 1<<16 {
		return unprintableBMP[r>>6]&(1<<(r&63)) != 0
	}
	return unprintableSlow(r)
}

// unprintableTables are the Unicode tables of Unprintable.
var unprintableTables = []*unicode.RangeTable{unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point}

// unprintableSlow is Unprintable searching the Unicode tables.
func unprintableSlow(r rune) bool { return unicode.In(r, unprintableTables...) }

// unprintableBMP holds a bit per character of the basic plane, set for
// those Unprintable reports.
var unprintableBMP = func() (t [1 << 16 / 64]uint64) {
	for _, tab := range unprintableTables {
		for _, rg := range tab.R16 {
			for r := uint32(rg.Lo); r <= uint32(rg.Hi); r += uint32(rg.Stride) {
				t[r>>6] |= 1 << (r & 63)
			}
		}
	}
	return t
}()

// Escape returns s with every character a terminal would act on rather
// than print (Unprintable) written as an escape, \uXXXX or \UXXXXXXXX,
// and each byte of invalid UTF-8 as \xXX; the characters keep reports
// stay as they are (nil: none). s itself when it needs none.
func Escape(s string, keep func(rune) bool) string {
	escape := func(r rune) bool { return Unprintable(r) && (keep == nil || !keep(r)) }
	if !strings.ContainsFunc(s, escape) && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case escape(r) && r > 0xffff:
			// NOTE: \U and eight digits, as Go writes it: \ue0041
			// would read as U+E004 and a 1.
			fmt.Fprintf(&b, `\U%08x`, r)
		case escape(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}
