package scrub

import "strings"

// Quoted replaces everything from the first double quote of msg to its
// last with one quoted ellipsis, and drops what follows an unterminated
// quote.
//
// NOTE: PostgreSQL does not escape the double quotes of a value it
// echoes: a literal 'a" secret "b' makes a message of three quoted
// parts, and scrubbing each pair would keep the middle of the literal.
// Two values in one message are scrubbed with the text between them.
// NOTE: idempotent: a scrubbed message is scrubbed again without change.
func Quoted(msg string) string {
	i := strings.IndexByte(msg, '"')
	if i < 0 {
		return msg
	}
	j := strings.LastIndexByte(msg, '"')
	if j == i {
		return msg[:i] + `"…"`
	}
	return msg[:i] + `"…"` + msg[j+1:]
}
