package sqlguard

import (
	"fmt"
	"strings"
)

// Limits on what reaches pg_query's parser, from any caller: the
// rewriter, and the audit writer's fingerprints. Its C code recurses once per
// level of a nested expression (a long chain of binary operators, deeply
// nested parentheses); a deep enough statement overflows the thread's
// stack and ends the process. PostgreSQL guards this with
// max_stack_depth; pgveil guards it before parsing.
//
// Its cost grows with the tokens too: a text of a million "1," takes the
// parser 2.6 s and 212 MB of Go memory for the tree, and one of 64 MB
// (listen.max_message_size) would take minutes and more memory than the
// machine has. Strings cost little (16 MB of one literal: 0.4 s).
// maxTokens passes an IN list of 100,000 values (0.25 s).
const (
	maxOperators  = 10000
	maxParenDepth = 1000
	maxTokens     = 400000
)

// Check returns why sql is refused before parsing, or "", and whether
// that is a syntax error: a string, quoted identifier, dollar quote or
// block comment that never ends (PostgreSQL refuses it too). It scans the
// text the way PostgreSQL's lexer separates literals, identifiers and
// comments from the rest, counting operator characters and parenthesis
// depth outside them. The scan errs towards refusing: a statement it
// misreads is refused, never parsed unguarded.
//
// NOTE: an unterminated quote must refuse, never end the scan: the text
// after it would go uncounted to the parser (a review crashed the
// process with SELECT a$b$ … followed by 150,000 additions, when $b$
// inside an identifier was read as opening a dollar quote).
func Check(sql string) (why string, syntax bool) {
	ops, depth, maxDepth, tokens := 0, 0, 0, 0
	n := len(sql)
	for i := 0; i < n; i++ {
		c := sql[i]
		switch {
		case IdentChar(c) && c != '$':
			// A word or a number: counted once, at its start.
			if i == 0 || !IdentChar(sql[i-1]) {
				tokens++
			}
		case c == ',' || c == '.' || c == ';':
			tokens++
		case c == '\'' || c == '"':
			// A string or a quoted identifier; doubled quotes escape, and
			// so does a backslash in an E'…' string.
			escapes := c == '\'' && i > 0 && (sql[i-1] == 'E' || sql[i-1] == 'e') && (i < 2 || !IdentChar(sql[i-2]))
			closed := false
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
					closed = true
					break
				}
			}
			if !closed {
				return "unterminated quoted string or identifier", true
			}
		case c == '-' && i+1 < n && sql[i+1] == '-':
			for i < n && sql[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < n && sql[i+1] == '*':
			nest := 0
			closed := false
			for ; i+1 < n; i++ {
				if sql[i] == '/' && sql[i+1] == '*' {
					nest++
					i++
				} else if sql[i] == '*' && sql[i+1] == '/' {
					nest--
					i++
					if nest == 0 {
						closed = true
						break
					}
				}
			}
			if !closed {
				return "unterminated /* comment", true
			}
		case c == '$' && (i == 0 || !IdentChar(sql[i-1])):
			// A dollar-quoted string: $tag$ … $tag$. A $ inside an
			// identifier (a$b$) is part of it, and $1 is a parameter.
			j := i + 1
			for j < n && (sql[j] == '_' || sql[j] >= 'a' && sql[j] <= 'z' || sql[j] >= 'A' && sql[j] <= 'Z' || sql[j] >= 0x80 || sql[j] >= '0' && sql[j] <= '9' && j > i+1) {
				j++
			}
			if j < n && sql[j] == '$' {
				tag := sql[i : j+1]
				k := strings.Index(sql[j+1:], tag)
				if k < 0 {
					return "unterminated dollar-quoted string", true
				}
				i = j + 1 + k + len(tag) - 1
			}
		case c == '(':
			tokens++
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
		return fmt.Sprintf("the statement has more than %d operators", maxOperators), false
	case ops+tokens > maxTokens:
		return fmt.Sprintf("the statement has more than %d words, numbers and punctuation marks", maxTokens), false
	case maxDepth > maxParenDepth:
		return fmt.Sprintf("the statement nests parentheses deeper than %d", maxParenDepth), false
	}
	return "", false
}

// IdentChar reports whether c can continue an identifier: an E right
// after one is part of it, not the prefix of an E'…' string.
func IdentChar(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}
