package sqlguard

import (
	"fmt"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// Limits on what reaches pg_query's parser, from any caller: the
// rewriter, and the audit writer's fingerprints. Its C code recurses once
// per level of a nested expression (a chain of binary operators, casts,
// COLLATE or AT TIME ZONE, nested parentheses or brackets) when it writes
// the tree out; a deep enough statement overflows the thread's stack and
// ends the process (30,000 AT TIME ZONE did). Deparsing a tree crashes
// sooner (about 4,900 levels of +): the rewriter also checks the depth of
// the tree it parsed (rewrite.maxTreeDepth) before deparsing anything.
//
// Its cost grows with the tokens too: a text of a million "1," takes the
// parser 2.6 s and 212 MB of Go memory for the tree, and one of 64 MB
// (listen.max_message_size) would take minutes and more memory than the
// machine has; the rewrite of what it parsed costs more again (several
// microseconds a token). Strings cost little (16 MB of one literal:
// 0.4 s).
//
// NOTE: maxTokens and maxText bound what one statement may cost pgveil,
// whatever the client: with them a statement takes at most a few hundred
// milliseconds of a parse slot (rewrite.Engine). The largest statements
// of the BI query sets (internal/compat/testdata/bi) and of the golden
// inputs have 270 tokens and 4.5 KiB: maxTokens leaves them more than a
// hundredfold, and still passes an IN list of 20,000 values (0.1 s).
const (
	maxOperators  = 10000
	maxParenDepth = 1000
	maxTokens     = 50000
	// maxText bounds a text handed to pg_query at all: over 200 times
	// the largest BI statement measured; a long string literal costs
	// little.
	maxText = 1 << 20
	// scanFrom is the length from which the counts are taken from
	// pg_query's own scanner: a text shorter than that cannot hold a
	// chain deep enough to crash the parser (one level takes a byte at
	// least), so pgveil's quicker scan, which may misread some corner of
	// the lexer, decides alone there.
	scanFrom = 8 << 10
)

// Counts are what Check measures of a text: the operators (and the
// keywords that chain like them), the deepest nesting of parentheses and
// brackets, and the tokens.
type Counts struct {
	Ops, Depth, Tokens int
}

// Check returns why sql is refused before parsing, or "", and whether
// that is a syntax error: a string, quoted identifier, dollar quote or
// block comment that never ends (PostgreSQL refuses it too).
func Check(sql string) (why string, syntax bool) {
	_, why, syntax = Measure(sql)
	return why, syntax
}

// Oversized returns why sql is refused for its length alone, or "": what
// Check refuses first, without reading the text.
func Oversized(sql string) string {
	if len(sql) > maxText {
		return fmt.Sprintf("the statement is longer than %d bytes", maxText)
	}
	return ""
}

// Measure is Check, with the counts of a text it passes.
func Measure(sql string) (c Counts, why string, syntax bool) {
	if why := Oversized(sql); why != "" {
		return c, why, false
	}
	c, why, syntax = quickCount(sql)
	if why != "" {
		return c, why, syntax
	}
	if len(sql) >= scanFrom {
		// NOTE: words counted ignoring quotes bound the real tokens, so
		// the scanner's cost stays bounded whatever the quick scan
		// misread.
		if wordsAndMarks(sql) > 4*maxTokens {
			return c, fmt.Sprintf("the statement has more than %d words, numbers and punctuation marks", maxTokens), false
		}
		var err error
		if c, err = scanCount(sql); err != nil {
			return c, err.Error(), true
		}
	}
	switch {
	case c.Ops > maxOperators:
		return c, fmt.Sprintf("the statement has more than %d operators", maxOperators), false
	case c.Depth > maxParenDepth:
		return c, fmt.Sprintf("the statement nests parentheses deeper than %d", maxParenDepth), false
	case c.Ops+c.Tokens > maxTokens:
		return c, fmt.Sprintf("the statement has more than %d words, numbers and punctuation marks", maxTokens), false
	}
	return c, "", false
}

// quickCount counts sql as PostgreSQL's lexer separates literals,
// identifiers and comments from the rest (with standard_conforming_strings
// on, as pgveil pins it), counting operator characters, nesting and tokens
// outside them. It errs towards counting: what it misreads as code is
// counted. An unterminated quote or comment is a syntax error, never the
// end of the scan: the text after it would go uncounted (a review crashed
// the process with SELECT a$b$ … followed by 150,000 additions, when $b$
// inside an identifier was read as opening a dollar quote).
func quickCount(sql string) (c Counts, why string, syntax bool) {
	depth := 0
	n := len(sql)
	// ident reports that the run of identifier characters before i is
	// an identifier (it started with a letter or _), not a number: a $
	// continues an identifier, and may open a dollar quote after
	// anything else.
	ident := false
	for i := 0; i < n; i++ {
		ch := sql[i]
		if IdentChar(ch) && ch != '$' || ch == '$' && i > 0 && ident && IdentChar(sql[i-1]) {
			if i == 0 || !IdentChar(sql[i-1]) {
				c.Tokens++
				ident = !(ch >= '0' && ch <= '9')
			}
			continue
		}
		ident = false
		switch {
		case ch == '\'' || ch == '"':
			// A string or a quoted identifier; doubled quotes escape, and
			// so does a backslash in an E'…' string. A string followed by
			// white space holding a newline and another quote goes on
			// there, in the same mode.
			escapes := ch == '\'' && i > 0 && (sql[i-1] == 'E' || sql[i-1] == 'e') && (i < 2 || !IdentChar(sql[i-2]))
			c.Tokens++
			for {
				end, ok := quoted(sql, i, ch, escapes)
				if !ok {
					return c, "unterminated quoted string or identifier", true
				}
				i = end
				if ch != '\'' {
					break
				}
				next, cont := continuation(sql, i+1)
				if !cont {
					break
				}
				i = next
			}
		case ch == '-' && i+1 < n && sql[i+1] == '-':
			for i < n && sql[i] != '\n' && sql[i] != '\r' {
				i++
			}
		case ch == '/' && i+1 < n && sql[i+1] == '*':
			end, ok := blockComment(sql, i)
			if !ok {
				return c, "unterminated /* comment", true
			}
			i = end
		case ch == '$':
			// A dollar-quoted string ($tag$ … $tag$), or a parameter ($1).
			j := i + 1
			for j < n && (sql[j] == '_' || sql[j] >= 'a' && sql[j] <= 'z' || sql[j] >= 'A' && sql[j] <= 'Z' || sql[j] >= 0x80 || sql[j] >= '0' && sql[j] <= '9' && j > i+1) {
				j++
			}
			if j < n && sql[j] == '$' {
				tag := sql[i : j+1]
				k := strings.Index(sql[j+1:], tag)
				if k < 0 {
					return c, "unterminated dollar-quoted string", true
				}
				i = j + 1 + k + len(tag) - 1
				c.Tokens++
			}
		case ch == '(' || ch == '[':
			c.Tokens++
			depth++
			c.Depth = max(c.Depth, depth)
		case ch == ')' || ch == ']':
			depth--
		case ch == ',' || ch == '.' || ch == ';':
			c.Tokens++
		case ch == '+' || ch == '-' || ch == '*' || ch == '/' || ch == '%' || ch == '^' || ch == '|' ||
			ch == '&' || ch == '<' || ch == '>' || ch == '=' || ch == '~' || ch == '!' || ch == '@' || ch == '#' || ch == '?' || ch == ':':
			c.Ops++
		}
	}
	return c, "", false
}

// quoted returns the index of the quote that closes the string or quoted
// identifier opened by q at sql[i], and whether there is one.
func quoted(sql string, i int, q byte, escapes bool) (int, bool) {
	for i++; i < len(sql); i++ {
		if escapes && sql[i] == '\\' {
			i++
			continue
		}
		if sql[i] == q {
			if i+1 < len(sql) && sql[i+1] == q {
				i++
				continue
			}
			return i, true
		}
	}
	return 0, false
}

// continuation reports whether, from i, white space holding a newline
// leads to a quote that continues the string before i, as pg_query's
// scanner (PostgreSQL 17's) reads it, and returns that quote's index. A
// comment in between ends the string there (checked against the scanner
// by TestCheck).
func continuation(sql string, i int) (int, bool) {
	newline := false
	for i < len(sql) {
		switch ch := sql[i]; {
		case ch == '\n' || ch == '\r':
			newline = true
			i++
		case ch == ' ' || ch == '\t' || ch == '\f' || ch == '\v':
			i++
		case ch == '\'' && newline:
			return i, true
		default:
			return 0, false
		}
	}
	return 0, false
}

// blockComment returns the index of the / that ends the comment opened at
// sql[i] (comments nest), and whether there is one.
func blockComment(sql string, i int) (int, bool) {
	nest := 0
	for ; i+1 < len(sql); i++ {
		if sql[i] == '/' && sql[i+1] == '*' {
			nest++
			i++
		} else if sql[i] == '*' && sql[i+1] == '/' {
			nest--
			i++
			if nest == 0 {
				return i, true
			}
		}
	}
	return 0, false
}

// wordsAndMarks counts, ignoring quotes and comments, the runs of
// identifier characters and the other non-space bytes of sql: more than
// the tokens PostgreSQL's scanner makes of it.
func wordsAndMarks(sql string) int {
	n := 0
	for i := 0; i < len(sql); i++ {
		ch := sql[i]
		switch {
		case IdentChar(ch):
			if i == 0 || !IdentChar(sql[i-1]) {
				n++
			}
		case ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r':
			n++
		}
	}
	return n
}

// scanCount counts sql from pg_query's scanner, PostgreSQL's own lexer.
func scanCount(sql string) (Counts, error) {
	var c Counts
	res, err := pg_query.Scan(sql)
	if err != nil {
		return c, err
	}
	depth := 0
	for _, t := range res.Tokens {
		switch t.Token {
		case pg_query.Token_SQL_COMMENT, pg_query.Token_C_COMMENT:
			continue
		case pg_query.Token_ASCII_40, pg_query.Token_ASCII_91:
			depth++
			c.Depth = max(c.Depth, depth)
		case pg_query.Token_ASCII_41, pg_query.Token_ASCII_93:
			depth--
		default:
			if chains[t.Token] {
				c.Ops++
				continue
			}
		}
		c.Tokens++
	}
	return c, nil
}

// chains are the tokens that may nest an expression in the one beside
// it: operators, casts, and the keywords that build on an expression.
var chains = map[pg_query.Token]bool{
	pg_query.Token_Op: true, pg_query.Token_ASCII_37: true, pg_query.Token_ASCII_42: true, pg_query.Token_ASCII_43: true,
	pg_query.Token_ASCII_45: true, pg_query.Token_ASCII_47: true, pg_query.Token_ASCII_58: true, pg_query.Token_ASCII_60: true,
	pg_query.Token_ASCII_61: true, pg_query.Token_ASCII_62: true, pg_query.Token_ASCII_94: true,
	pg_query.Token_TYPECAST: true, pg_query.Token_LESS_EQUALS: true, pg_query.Token_GREATER_EQUALS: true,
	pg_query.Token_NOT_EQUALS: true, pg_query.Token_EQUALS_GREATER: true, pg_query.Token_OPERATOR: true,
	pg_query.Token_COLLATE: true, pg_query.Token_AT: true, pg_query.Token_NOT: true, pg_query.Token_IS: true,
	pg_query.Token_ISNULL: true, pg_query.Token_NOTNULL: true, pg_query.Token_LIKE: true, pg_query.Token_ILIKE: true,
	pg_query.Token_SIMILAR: true, pg_query.Token_BETWEEN: true, pg_query.Token_IN_P: true,
	pg_query.Token_OVERLAPS: true, pg_query.Token_CASE: true, pg_query.Token_ESCAPE: true,
	// Set operations and joins nest to the left: each UNION a SELECT
	// statement, each JOIN a join (a review crashed the parser with
	// 100,000 UNION and 25,000 CROSS JOIN).
	pg_query.Token_UNION: true, pg_query.Token_INTERSECT: true, pg_query.Token_EXCEPT: true, pg_query.Token_JOIN: true,
}

// Shallow reports whether sql passes Check with at most maxOps
// operators and nesting, counted by pg_query's own scanner whatever the
// length: a tree no deeper than that, which any pg_query call may walk
// (the audit writer's fingerprints and normalisation, whose C code
// recurses like Deparse's).
func Shallow(sql string, maxOps int) bool {
	if _, why, _ := Measure(sql); why != "" {
		return false
	}
	c, err := scanCount(sql)
	return err == nil && c.Ops <= maxOps && c.Depth <= maxOps
}

// IdentChar reports whether c can continue an identifier: an E right
// after one is part of it, not the prefix of an E'…' string.
func IdentChar(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}
