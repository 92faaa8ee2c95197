package audit

import (
	"math/rand"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// TestAppendStringSameBytes: the eight-byte skip (plainWord) changes no
// byte of what appendString writes: random texts of ASCII, escapes,
// multi-byte characters cut anywhere and invalid bytes, at every
// alignment, encode to the bytes the byte-at-a-time loop wrote, which
// the trail's MACs cover.
func TestAppendStringSameBytes(t *testing.T) {
	pieces := []string{"a", "SELECT ", "\"", "\\", "\x00", "\x1f", "\x7f", "\x80", "\xff", "é", "\u2028", "\u2029",
		"\u202e", "\u3164", "\U0001f600", "\U000e0041", "\xe2\x80", "\xf0\x9f\x98", "\u0085", "<>&", "12345678", "\t\n\r", "~ "}
	rng := rand.New(rand.NewSource(1))
	for n := 0; n < 200000; n++ {
		var s []byte
		for k := rng.Intn(12); k >= 0; k-- {
			if rng.Intn(4) == 0 {
				s = append(s, byte(rng.Intn(256)))
				continue
			}
			s = append(s, pieces[rng.Intn(len(pieces))]...)
		}
		for pad := 0; pad < 8; pad++ {
			text := "abcdefgh"[:pad] + string(s)
			if got, want := string(appendString(nil, text)), string(oldAppendString(nil, text)); got != want {
				t.Fatalf("%+q encodes to %s, was %s", text, got, want)
			}
		}
	}
}

func oldAppendStringField(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}
func oldAppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != 0x7f && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if escapedRune(r) {
			b = append(b, s[start:i]...)
			if r > 0xffff {
				hi, lo := utf16.EncodeRune(r)
				b = appendRuneEscape(b, hi)
				b = appendRuneEscape(b, lo)
			} else {
				b = appendRuneEscape(b, r)
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
