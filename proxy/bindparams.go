package proxy

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxParamsPeek is how much of a Bind's parameter values pgveil reads
// ahead of forwarding it, for the audit trail (audit.log_parameters): a
// Bind of listen.max_message_size is still streamed, and its values past
// this many bytes are listed as not recorded.
const maxParamsPeek = 64 << 10

// maxParamsText bounds the rendering of one Bind's parameter values:
// past it the values left are listed as not recorded.
const maxParamsText = 16 << 10

// bindParams renders the parameter values of a Bind, from b, the head of
// its body after the portal and statement names (possibly cut: the
// values it does not hold are listed as not recorded), as PostgreSQL's
// log does: $1 = 'FR', $2 = NULL. Each value keeps its first max bytes,
// "..." marking a cut one; a value sent in binary format is written in
// hex, \x0000002a, cut alike. "" when the Bind has no parameter; a
// message too short to say is "(unreadable parameters)".
func bindParams(b []byte, max int) string {
	if len(b) < 2 {
		return "(unreadable parameters)"
	}
	nfmt := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < 2*nfmt {
		// NOTE: only a cut head is shorter: the whole message is at
		// least maxParamsPeek long when it is cut.
		return "(parameters not recorded: the Bind is too long)"
	}
	formats := b[:2*nfmt]
	b = b[2*nfmt:]
	if len(b) < 2 {
		return "(parameters not recorded: the Bind is too long)"
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n == 0 {
		return ""
	}
	var s strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			s.WriteString(", ")
		}
		if s.Len() > maxParamsText || len(b) < 4 {
			fmt.Fprintf(&s, "$%d to $%d not recorded (the Bind is too long)", i+1, n)
			break
		}
		fmt.Fprintf(&s, "$%d = ", i+1)
		size := int32(binary.BigEndian.Uint32(b))
		b = b[4:]
		if size < 0 {
			s.WriteString("NULL")
			continue
		}
		have := min(int(size), len(b))
		v := b[:have]
		b = b[have:]
		binaryFormat := false
		switch {
		case nfmt == 1:
			binaryFormat = binary.BigEndian.Uint16(formats) == 1
		case i < nfmt:
			binaryFormat = binary.BigEndian.Uint16(formats[2*i:]) == 1
		}
		cut := int(size) > max
		if len(v) > max {
			v = v[:max]
		}
		if binaryFormat {
			s.WriteString(`\x`)
			s.WriteString(hex.EncodeToString(v))
		} else {
			if cut || have < int(size) {
				v = cutRune(v)
			}
			s.WriteByte('\'')
			s.WriteString(strings.ReplaceAll(string(v), "'", "''"))
			s.WriteByte('\'')
		}
		if cut || have < int(size) {
			s.WriteString("...")
		}
	}
	return s.String()
}

// cutRune drops from the end of v a character a cut left incomplete.
func cutRune(v []byte) []byte {
	for i := 1; i <= utf8.UTFMax && i <= len(v); i++ {
		if utf8.RuneStart(v[len(v)-i]) {
			if !utf8.FullRune(v[len(v)-i:]) {
				return v[:len(v)-i]
			}
			return v
		}
	}
	return v
}
