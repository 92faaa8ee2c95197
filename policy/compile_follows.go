package policy

import (
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/rewrite"
)

// follower is what relation needs to scope a table that follows another
// (Table.Follows): the snapshot the parent is read from, and the parents
// already on the way down a chain of follows.
//
// NOTE: a zero follower (no snapshot) scopes every follower to no row:
// fail closed where the parent cannot be seen.
type follower struct {
	cat     *rewrite.Catalog
	parents []*rewrite.Relation
}

// predicate returns the follow of f for the user as an expression over
// the child's columns, bare:
//
//	column OPERATOR(pg_catalog.=) ANY (SELECT parent.key FROM schema.parent WHERE <parent's scope>)
//
// the parent's scope being its filter exactly as a read of the parent by
// the user applies it (its rules, ceilings, restrictive rules, own rows,
// and its own follows), its columns qualified by the parent's name. A
// NULL column matches no parent row. FALSE (no row) when the parent is
// not in the snapshot, is a view or materialized view (followable), is
// not governed for the user (denied, open), lacks
// the key column, masks it for the user, or is already on the chain, and
// when the key's type is not one column (the child's) compares with
// without a cast (followComparable).
// rules are the parent's rules that apply to the user (its Access.Rules),
// which decide the child's rows too: the audit and explain name them;
// fence is the parent's NoPushdown (its own parent's, up the chain),
// which the child keeps.
func (fw *follower) predicate(p *UserPolicy, f *Follows, column *rewrite.Column) (pred *pg_query.Node, rules []string, fence bool) {
	if fw == nil || fw.cat == nil {
		return boolConst(false), nil, false
	}
	parent := fw.cat.Relations[f.Table]
	if parent == nil || !followable(parent) {
		return boolConst(false), nil, false
	}
	for _, seen := range fw.parents {
		if seen == parent {
			return boolConst(false), nil, false
		}
	}
	key := columnOf(parent, f.Key)
	if key == nil || column == nil || !followComparable(*column, *key) {
		return boolConst(false), nil, false
	}
	acc := p.relation(parent, nil, &follower{cat: fw.cat, parents: append(fw.parents[:len(fw.parents):len(fw.parents)], parent)})
	if acc.Mode != rewrite.Governed {
		return boolConst(false), nil, false
	}
	if _, masked := acc.Masks[f.Key]; masked {
		// NOTE: load refuses a classified key; a masked one here would
		// be compared by its real value.
		return boolConst(false), nil, false
	}
	return followNode(f, parent.Name, acc.Filter), acc.Rules, acc.NoPushdown
}

// followable tells whether rel may be followed: a table (partitioned or
// not) or a foreign table, whose key pgveil guards where it is written
// (FollowedKeys), not a view or a materialized view.
//
// NOTE: a view's key is a column of its base tables, which a writer under
// a row scope may UPDATE without the view's FollowedKeys being asked: a
// visible row given the key of a hidden one (or of orphans) would show
// their children through the view's row (a materialized view at its next
// REFRESH).
func followable(rel *rewrite.Relation) bool {
	return rel.Kind != 'v' && rel.Kind != 'm'
}

// followComparable tells whether PostgreSQL compares column with key by
// an operator of their own types, casting neither (through domains, which
// it reads as their base types): the same type, two integer types (a
// cross-type operator), or text and varchar (the same representation);
// and under one equality: the same nondeterministic collation, or
// deterministic ones on both sides (which compare bytes alike), one of
// them the database's default or both the same (PostgreSQL chooses no
// collation between two others).
//
// NOTE: any other pair is compared by casting one side, on every row of
// that side, before the parent's scope has decided anything (the child's
// rows are the ones the follow decides; the parent's, wherever the
// planner evaluates the join clause): a cast that can fail, numeric to
// float8 out of its range, would raise an error on a hidden row and tell
// it. No such pair is followed, and pgveil check --upstream says so.
func followComparable(column, key rewrite.Column) bool {
	if column.Nondeterministic != key.Nondeterministic {
		// NOTE: PostgreSQL compares the two under the non-default
		// collation of either: the child's case-insensitive column
		// would match 'b-3', a visible key, for 'B-3', a hidden one's
		// (the key is unique under its own collation only).
		return false
	}
	if column.Collation != "" && key.Collation != "" && column.Collation != key.Collation {
		// NOTE: PostgreSQL can choose neither, and fails the
		// comparison (42P22) when a child row, a hidden one too,
		// meets a visible parent row: the error would tell that the
		// child holds rows.
		return false
	}
	c, k := followType(column), followType(key)
	if c == k {
		return true
	}
	for _, family := range [][]string{
		{"pg_catalog.int2", "pg_catalog.int4", "pg_catalog.int8"},
		{"text", "pg_catalog.text", "pg_catalog.varchar"},
	} {
		if slices.Contains(family, c) && slices.Contains(family, k) {
			return true
		}
	}
	return false
}

// followType is the name of c's type, its domains replaced by their base
// types and without modifiers (numeric(5,2) compares as numeric), with
// "[]" for each array dimension; c.Type when the catalog parsed none.
func followType(c rewrite.Column) string {
	tn := c.MaskTypeName
	if tn == nil {
		tn = c.TypeName
	}
	if tn == nil {
		return c.Type
	}
	var names []string
	for _, n := range tn.Names {
		names = append(names, n.GetString_().GetSval())
	}
	return strings.Join(names, ".") + strings.Repeat("[]", len(tn.ArrayBounds))
}

// followNode returns followTemplate for f, the parent's FROM item known
// by its name parentName, with scope (nil for none), qualified by that
// name, as its WHERE.
func followNode(f *Follows, parentName string, scope *pg_query.Node) *pg_query.Node {
	n := proto.Clone(followTemplate).(*pg_query.Node)
	walkNodes(n, func(x *pg_query.Node) {
		if rv := x.GetRangeVar(); rv != nil && rv.Relname == "pgveil_parent" {
			rv.Schemaname, rv.Relname = f.Table.Schema, f.Table.Name
			return
		}
		if ref := x.GetColumnRef(); ref != nil {
			for _, fl := range ref.Fields {
				if s := fl.GetString_(); s != nil {
					switch s.Sval {
					case "pgveil_column":
						s.Sval = f.Column
					case "pgveil_key":
						s.Sval = f.Key
					case "pgveil_parent":
						s.Sval = parentName
					}
				}
			}
		}
	})
	sel := n.GetSubLink().GetSubselect().GetSelectStmt()
	sel.WhereClause = nil
	if scope != nil {
		sel.WhereClause = rewrite.QualifiedCopy(scope, parentName)
	}
	return n
}

// followTemplate is a follow (follower.predicate); placeholders (pgveil_*)
// are replaced by AST fields, and the WHERE by the parent's scope.
var followTemplate = mustParseExpr(`pgveil_column IN (SELECT pgveil_parent.pgveil_key FROM pgveil_schema.pgveil_parent WHERE true)`)
