package proxy

import (
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// scrubError removes values from an error of class 22 or 23 and reports
// whether it did. The SQLSTATE, the severity and the message's wording
// stay, so clients still know what went wrong.
func scrubError(er *pgproto3.ErrorResponse) bool {
	if !strings.HasPrefix(er.Code, "22") && !strings.HasPrefix(er.Code, "23") {
		return false
	}
	er.Detail, er.Where, er.InternalQuery = "", "", ""
	er.Message = scrubQuoted(er.Message)
	return true
}

// scrubQuoted replaces the content of every double-quoted part of msg
// with an ellipsis: PostgreSQL quotes the values it echoes.
func scrubQuoted(msg string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(msg, '"')
		if i < 0 {
			b.WriteString(msg)
			return b.String()
		}
		j := strings.IndexByte(msg[i+1:], '"')
		if j < 0 {
			// An unterminated quote: drop the rest, it may be a value.
			b.WriteString(msg[:i])
			b.WriteString(`"…"`)
			return b.String()
		}
		b.WriteString(msg[:i])
		b.WriteString(`"…"`)
		msg = msg[i+1+j+1:]
	}
}
