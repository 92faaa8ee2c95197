package policy

import (
	"bytes"
	"strconv"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// stringSource maps each byte of a string attribute's value to where it
// was written in the configuration file, so that a diagnostic about part
// of a SQL expression underlines that part.
type stringSource struct {
	// pos[i] is where the source of byte i of the value starts; pos[len]
	// is where the value ends.
	pos []hcl.Pos
	// filename is the file the attribute is in.
	filename string
}

// sourceOf maps value, the evaluated string of a, back to the file. It
// returns nil when the value is not written as one literal (a template
// with interpolations, a function call, an indented heredoc): diagnostics
// then cover the whole expression.
func (d *decoder) sourceOf(a *hcl.Attribute, value string) *stringSource {
	rng := a.Expr.Range()
	src := d.sources[rng.Filename]
	if rng.Start.Byte < 0 || rng.End.Byte > len(src) || rng.Start.Byte >= rng.End.Byte {
		return nil
	}
	text := src[rng.Start.Byte:rng.End.Byte]
	s := &stringSource{filename: rng.Filename}
	cur := rng.Start
	advance := func(b []byte) {
		for len(b) > 0 {
			r, size := utf8.DecodeRune(b)
			cur.Byte += size
			if r == '\n' {
				cur.Line++
				cur.Column = 1
			} else {
				cur.Column++
			}
			b = b[size:]
		}
	}
	var decoded []byte
	emit := func(out []byte, consumed []byte) {
		for range out {
			s.pos = append(s.pos, cur)
		}
		decoded = append(decoded, out...)
		advance(consumed)
	}
	quoted := text[0] == '"'
	switch {
	case quoted:
		advance(text[:1])
		text = text[1 : len(text)-1]
	case bytes.HasPrefix(text, []byte("<<")) && !bytes.HasPrefix(text, []byte("<<-")):
		nl := bytes.IndexByte(text, '\n')
		if nl < 0 {
			return nil
		}
		advance(text[:nl+1])
		text = text[nl+1:]
	default:
		return nil
	}
	for len(text) > 0 {
		switch {
		case bytes.HasPrefix(text, []byte("$${")) || bytes.HasPrefix(text, []byte("%%{")):
			emit(text[1:3], text[:3])
			text = text[3:]
		case quoted && text[0] == '\\' && len(text) > 1:
			n, out := unescapeHCL(text)
			if n == 0 {
				return nil
			}
			emit(out, text[:n])
			text = text[n:]
		default:
			_, size := utf8.DecodeRune(text)
			emit(text[:size], text[:size])
			text = text[size:]
		}
	}
	// NOTE: a heredoc's source goes on to its closing marker; a quoted
	// string's must decode to exactly the value, or the mapping is wrong.
	if len(decoded) < len(value) || string(decoded[:len(value)]) != value || (quoted && len(decoded) != len(value)) {
		return nil
	}
	s.pos = append(s.pos, cur)[:len(value)+1]
	return s
}

// unescapeHCL decodes the HCL escape sequence at the start of text and
// returns its length and the bytes it stands for; n is 0 for a sequence
// it does not know.
func unescapeHCL(text []byte) (n int, out []byte) {
	switch text[1] {
	case 'n':
		return 2, []byte{'\n'}
	case 'r':
		return 2, []byte{'\r'}
	case 't':
		return 2, []byte{'\t'}
	case '"', '\\':
		return 2, text[1:2]
	case 'u', 'U':
		digits := 4
		if text[1] == 'U' {
			digits = 8
		}
		if len(text) < 2+digits {
			return 0, nil
		}
		r, err := strconv.ParseUint(string(text[2:2+digits]), 16, 32)
		if err != nil {
			return 0, nil
		}
		return 2 + digits, utf8.AppendRune(nil, rune(r))
	}
	return 0, nil
}

// rangeOf returns the file range of the value's bytes [off, off+n).
func (s *stringSource) rangeOf(off, n int) hcl.Range {
	off = min(max(off, 0), len(s.pos)-1)
	end := min(max(off+n, off), len(s.pos)-1)
	return hcl.Range{Filename: s.filename, Start: s.pos[off], End: s.pos[end]}
}

// tokenLen returns the length of the word of text starting at off: an
// identifier or a dotted name, or one character.
func tokenLen(text string, off int) int {
	if off < 0 || off >= len(text) {
		return 0
	}
	n := 0
	for off+n < len(text) && isWordByte(text[off+n]) {
		n++
	}
	if n == 0 {
		_, n = utf8.DecodeRuneInString(text[off:])
	}
	return n
}

// isWordByte reports whether c may be part of a (dotted) SQL name.
func isWordByte(c byte) bool {
	return c == '_' || c == '.' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}
