package audit

import (
	"bytes"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/pgveil/pgveil/internal/printable"
)

// appendSigned appends e as a line without its end: every field up to
// and including prev, the bytes the MAC covers. Fields come in a fixed
// order and zero fields are left out, so that a record always encodes
// to the same bytes.
func appendSigned(b []byte, e *Entry) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"time":"`...)
	b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendStringField(b, "chain", e.Chain)
	b = appendStringField(b, "event", e.Event)
	b = appendStringField(b, "session", e.Session)
	b = appendStringField(b, "user", e.User)
	b = appendStringField(b, "acting_for", e.ActingFor)
	b = appendStringField(b, "acting_for_before", e.ActingForBefore)
	b = appendListField(b, "roles", e.Roles)
	b = appendListField(b, "acting_roles", e.ActingRoles)
	b = appendStringField(b, "client", e.Client)
	b = appendStringField(b, "application_name", e.ApplicationName)
	b = appendStringField(b, "database", e.Database)
	b = appendIntField(b, "backend_pid", int64(e.BackendPID))
	b = appendStringField(b, "kind", e.Kind)
	b = appendStringField(b, "sql", e.SQL)
	b = appendStringField(b, "params", e.Params)
	b = appendStringField(b, "fingerprint", e.Fingerprint)
	b = appendStringField(b, "rewritten", e.Rewritten)
	b = appendStringField(b, "rewritten_sha256", e.RewrittenSHA256)
	b = appendListField(b, "tables", e.Tables)
	b = appendListField(b, "rules", e.Rules)
	b = appendListField(b, "columns", e.Columns)
	b = appendListField(b, "masked", e.Masked)
	b = appendStringField(b, "decision", e.Decision)
	b = appendStringField(b, "reason", e.Reason)
	b = appendStringField(b, "sqlstate", e.SQLState)
	b = appendStringField(b, "message", e.Message)
	b = appendIntField(b, "rows", e.Rows)
	b = appendIntField(b, "affected", e.Affected)
	b = appendIntField(b, "bytes", e.Bytes)
	if e.Duration != 0 {
		b = append(b, `,"duration_ms":`...)
		b = appendMilliseconds(b, e.Duration)
	}
	b = appendStringField(b, "upstream_error", e.UpstreamError)
	b = appendStringField(b, "policy_version", e.PolicyVersion)
	b = appendStringField(b, "old_policy_version", e.OldPolicyVersion)
	b = appendIntField(b, "count", e.Count)
	b = append(b, `,"prev":"`...)
	b = append(b, e.Prev...)
	b = append(b, '"')
	return b
}

// macField separates the signed part of a line from its MAC.
const macField = `,"mac":"`

// appendLineEnd appends the MAC field, the closing brace and the newline.
func appendLineEnd(b []byte, mac string) []byte {
	b = append(b, macField...)
	b = append(b, mac...)
	return append(b, "\"}\n"...)
}

// appendStringField appends ,"name":"value" unless value is empty.
func appendStringField(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

// appendListField appends ,"name":[…] unless the list is empty.
func appendListField(b []byte, name string, values []string) []byte {
	if len(values) == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, `":[`...)
	for i, v := range values {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, v)
	}
	return append(b, ']')
}

// appendIntField appends ,"name":n unless n is zero.
func appendIntField(b []byte, name string, n int64) []byte {
	if n == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, n, 10)
}

// appendMilliseconds appends d in milliseconds as an exact decimal:
// 1500000ns is 1.5, 1ns is 0.000001.
func appendMilliseconds(b []byte, d time.Duration) []byte {
	u := uint64(d)
	if d < 0 {
		b = append(b, '-')
		u = -u
	}
	b = strconv.AppendUint(b, u/1e6, 10)
	frac := u % 1e6
	if frac == 0 {
		return b
	}
	digits := []byte{'.', '0', '0', '0', '0', '0', '0'}
	for i := 6; i > 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	end := len(digits)
	for digits[end-1] == '0' {
		end--
	}
	return append(b, digits[:end]...)
}

// hexDigits are the digits of \u escapes.
const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as encoding/json does; control characters (DEL and C1 ones too), format
// characters (bidirectional overrides and isolates, zero-width ones, tag
// characters), blank fillers (U+3164…), U+2028 and U+2029 are escaped; nothing else is (no HTML
// escaping).
//
// NOTE: the escapes keep the values exact (a JSON reader decodes them to
// what the client sent) while the line itself stays inert on the
// terminal of an operator who reads the trail with tail, less or audit
// search --format json. Lines written before escaped fewer characters;
// readers and the MAC, which covers the bytes as written, accept both.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	// NOTE: words are tried again only from wordAt, 8 bytes past the
	// word that failed, so that a text of accented letters is not
	// checked a word per byte.
	wordAt := 0
	for i := 0; i < len(s); {
		if i >= wordAt {
			// Eight bytes at a time while none is escaped or starts a
			// multi-byte character: most of a statement's text.
			for i+8 <= len(s) && plainWord(s[i:i+8]) {
				i += 8
			}
			if i >= len(s) {
				break
			}
			wordAt = i + 8
		}
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

// plainWord reports whether each of the 8 bytes of w is one appendString
// copies as is without decoding it: ASCII from 0x20 to 0x7e but the
// double quote and the backslash.
//
// NOTE: SWAR: (x - 0x01…01*n) &^ x & 0x80…80 is nonzero exactly when a
// byte of x is below n (n <= 0x80), and (v - 0x01…01) &^ v & 0x80…80
// when a byte of v is zero; a byte of x equal to c is a zero byte of
// x ^ (0x01…01*c). FuzzAppendString holds the result to encoding/json's.
func plainWord(w string) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	_ = w[7]
	x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
		uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
	zero := func(v uint64) uint64 { return (v - ones) &^ v & highs }
	bad := x&highs | (x-ones*0x20)&^x&highs | zero(x^(ones*'"')) | zero(x^(ones*'\\')) | zero(x^(ones*0x7f))
	return bad == 0
}

// escapedRune reports whether appendString escapes r, a character of
// U+0080 or above: what a terminal would act on rather than print, or
// prints blank (the default-ignorable fillers such as U+3164).
func escapedRune(r rune) bool { return printable.Unprintable(r) }

// appendRuneEscape appends \uXXXX for r, at most U+FFFF (a surrogate half
// of a pair included).
func appendRuneEscape(b []byte, r rune) []byte {
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// InertLine returns a line of the trail that parsed (ParseLine), with
// what a terminal would act on written as the escapes today's writer
// writes; the line itself when it holds none, as every line written
// since the writer escapes them does. It decodes to the same record; a
// line's own final newline is kept.
//
// NOTE: lines written before held C1, format and filler characters raw
// (and a hand-edited line may hold anything JSON accepts): audit search
// prints lines to an auditor's terminal. In a line that parsed, a
// character of U+0080 or above, DEL or an invalid byte can only be
// inside a string, where the escape means the same; a C0 control can
// only be the whitespace between tokens (a raw one inside a string is
// not JSON), which a space replaces. The MAC covers the bytes as
// written: audit verify reads the files, never this.
func InertLine(line []byte) []byte {
	body, nl := bytes.CutSuffix(line, []byte("\n"))
	if shown, changed := inertLine(body); changed {
		if nl {
			shown = append(shown, '\n')
		}
		return shown
	}
	return line
}

// inertLine is InertLine without the final newline; changed is false
// when line is returned as it is.
func inertLine(line []byte) (shown []byte, changed bool) {
	i := 0
	for i < len(line) {
		c := line[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				break
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(line[i:])
		if r == utf8.RuneError && size == 1 || printable.Unprintable(r) {
			break
		}
		i += size
	}
	if i == len(line) {
		return line, false
	}
	b := append(make([]byte, 0, len(line)+16), line[:i]...)
	for i < len(line) {
		c := line[i]
		if c < utf8.RuneSelf {
			switch {
			case c < 0x20:
				b = append(b, ' ')
			case c == 0x7f:
				b = appendRuneEscape(b, rune(c))
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(line[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case printable.Unprintable(r) && r > 0xffff:
			hi, lo := utf16.EncodeRune(r)
			b = appendRuneEscape(appendRuneEscape(b, hi), lo)
		case printable.Unprintable(r):
			b = appendRuneEscape(b, r)
		default:
			b = append(b, line[i:i+size]...)
		}
		i += size
	}
	return b, true
}
