package sqlguard

import "fmt"

// Limits on what reaches pg_query's parser, from any caller: the
// rewriter, and the audit writer's fingerprints. Its C code recurses once per
// level of a nested expression (a long chain of binary operators, deeply
// nested parentheses); a deep enough statement overflows the thread's
// stack and ends the process. PostgreSQL guards this with
// max_stack_depth; pgveil guards it before parsing.
const (
	maxOperators  = 10000
	maxParenDepth = 1000
)

// TooComplex returns why sql is refused before parsing, or "". It scans
// the text the way PostgreSQL's lexer separates literals, identifiers and
// comments from the rest, counting operator characters and parenthesis
// depth outside them. The scan errs towards refusing: a statement it
// misreads is refused, never parsed unguarded.
func TooComplex(sql string) string {
	ops, depth, maxDepth := 0, 0, 0
	n := len(sql)
	for i := 0; i < n; i++ {
		c := sql[i]
		switch {
		case c == '\'' || c == '"':
			// A string or a quoted identifier; doubled quotes escape, and
			// so does a backslash in an E'…' string.
			escapes := c == '\'' && i > 0 && (sql[i-1] == 'E' || sql[i-1] == 'e') && (i < 2 || !IdentChar(sql[i-2]))
			for i++; i < n; i++ {
				if escapes && sql[i] == '\\' {
					i++
					continue
				}
				if sql[i] == c {
					if i+1 < n && sql[i+1] == c {
						i++
						continue
					}
					break
				}
			}
		case c == '-' && i+1 < n && sql[i+1] == '-':
			for i < n && sql[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < n && sql[i+1] == '*':
			nest := 0
			for ; i+1 < n; i++ {
				if sql[i] == '/' && sql[i+1] == '*' {
					nest++
					i++
				} else if sql[i] == '*' && sql[i+1] == '/' {
					nest--
					i++
					if nest == 0 {
						break
					}
				}
			}
		case c == '$':
			// A dollar-quoted string: $tag$ … $tag$.
			j := i + 1
			for j < n && (sql[j] == '_' || sql[j] >= 'a' && sql[j] <= 'z' || sql[j] >= 'A' && sql[j] <= 'Z' || sql[j] >= '0' && sql[j] <= '9' && j > i+1) {
				j++
			}
			if j < n && sql[j] == '$' {
				tag := sql[i : j+1]
				k := j + 1
				for ; k+len(tag) <= n; k++ {
					if sql[k:k+len(tag)] == tag {
						break
					}
				}
				i = k + len(tag) - 1
			}
		case c == '(':
			depth++
			maxDepth = max(maxDepth, depth)
		case c == ')':
			depth--
		case c == '+' || c == '-' || c == '*' || c == '/' || c == '%' || c == '^' || c == '|' ||
			c == '&' || c == '<' || c == '>' || c == '=' || c == '~' || c == '!' || c == '@' || c == '#' || c == '?':
			ops++
		}
	}
	switch {
	case ops > maxOperators:
		return fmt.Sprintf("the statement has more than %d operators", maxOperators)
	case maxDepth > maxParenDepth:
		return fmt.Sprintf("the statement nests parentheses deeper than %d", maxParenDepth)
	}
	return ""
}

// IdentChar reports whether c can continue an identifier: an E right
// after one is part of it, not the prefix of an E'…' string.
func IdentChar(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}
