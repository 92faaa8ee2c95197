package rewrite

import (
	"errors"
	"fmt"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/internal/pgtree"
)

// deparsedFaithfully reports whether out, the deparse of tree, parses
// back into tree, locations aside: what reaches the upstream is the
// statement the rewriter checked and built. pg_query's deparser is not
// faithful to every tree (0 LIKE (0 = 0) is deparsed 0 LIKE 0 = 0, which
// reads otherwise): such a statement is refused, unless wrapping the
// operand (parenthesizeOperands) makes its deparse faithful.
//
// NOTE: it costs a parse of the output: the engine deparses only what it
// cannot splice (writes, COPY, a few catalog forms) and statement
// templates when it makes them.
func deparsedFaithfully(out string, tree *pg_query.ParseResult) bool {
	if !utf8.ValidString(out) {
		return false
	}
	back, err := pg_query.Parse(out)
	return err == nil && pgtree.Equal(back, tree)
}

// ErrDeparsedOtherwise is DeparseStatement's error when no workaround
// makes the deparser print the statement as its tree: the rewriter
// refuses every statement such an expression goes into.
var ErrDeparsedOtherwise = errors.New("the deparser prints it as another statement")

// DeparseStatement deparses stmt, a statement tree built outside the
// rewriter (the policy's type checks), as the rewriter deparses its own:
// with the deparser's workarounds (deparsefix.go), and only into text
// that parses back into the tree it printed. version is the tree's
// parse-tree version.
//
// NOTE: the checks feed policy expressions (a rule's where, a mask) to
// PostgreSQL through it: a deparse that reads otherwise would type-check
// another expression than the one the rewriter forwards, and accept it
// or reject it wrongly. It works on a copy: stmt may share nodes with a
// compiled policy that serves statements meanwhile.
func DeparseStatement(stmt *pg_query.Node, version int32) (string, error) {
	tree := &pg_query.ParseResult{Version: version, Stmts: []*pg_query.RawStmt{{
		Stmt: proto.Clone(stmt).(*pg_query.Node),
	}}}
	out, faithful, err := deparseHeld(tree, 0)
	switch {
	case err != nil:
		return "", fmt.Errorf("deparse: %w", err)
	case !faithful:
		return "", ErrDeparsedOtherwise
	}
	return out, nil
}

// errDeparsedTooLong is deparseHeld's error for an output past its
// limit, which it does not parse back.
var errDeparsedTooLong = errors.New("the deparse is longer than its limit")

// deparseHeld deparses tree with the deparser's workarounds
// (deparsefix.go) applied to it, and reports whether the text parses back
// into the tree; when it does not, it wraps the operands the deparser
// printed without their parentheses (parenthesizeOperands) and tries
// once more, holding the new text to the changed tree. An output longer
// than limit (0: none) is returned with errDeparsedTooLong before it is
// parsed back: parsing a text costs time as its length does.
func deparseHeld(tree *pg_query.ParseResult, limit int) (out string, faithful bool, err error) {
	subscriptArraySublinks(tree)
	castBoolTestArgs(tree)
	for wrapped := false; ; wrapped = true {
		if out, err = pg_query.Deparse(tree); err != nil {
			return "", false, err
		}
		if limit > 0 && len(out) > limit {
			return out, false, errDeparsedTooLong
		}
		if deparsedFaithfully(out, tree) {
			return out, true, nil
		}
		if wrapped || !parenthesizeOperands(tree) {
			return out, false, nil
		}
	}
}
