package rewrite_test

import (
	"maps"
	"slices"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgveil/pgveil/rewrite"
)

// The fuzz targets' fixture for the rewriter's newer paths, which the
// demo's catalog and policy do not reach: a column of a checked domain's
// type (Catalog.CheckCalls, ResultCalls), a hash-masked integer column
// served as a bigint pseudonym (Access.MaskTypes), and a role that lists
// writes but not select (walker.mayRead).

// checkedFunction is the function the fixture's domain CHECKs call.
var checkedFunction = rewrite.QName{Schema: "public", Name: "known"}

// checkedCatalog returns a copy of cat in which the columns of type
// numeric (responses.score) are of a domain whose CHECK calls
// checkedFunction, as are the results of unnest.
// NOTE: a shallow copy: only CheckCalls and ResultCalls are new maps.
func checkedCatalog(cat *rewrite.Catalog) *rewrite.Catalog {
	c := *cat
	call := []rewrite.ImplicitCall{{Function: checkedFunction}}
	c.CheckCalls = maps.Clone(cat.CheckCalls)
	if c.CheckCalls == nil {
		c.CheckCalls = map[string][]rewrite.ImplicitCall{}
	}
	c.CheckCalls["numeric"] = call
	c.ResultCalls = maps.Clone(cat.ResultCalls)
	if c.ResultCalls == nil {
		c.ResultCalls = map[string][]rewrite.ImplicitCall{}
	}
	c.ResultCalls["unnest"] = call
	return &c
}

// allowChecked lets its policy call checkedFunction.
type allowChecked struct{ rewrite.Policy }

func (a allowChecked) Key() string { return a.Policy.Key() + "+known" }
func (a allowChecked) AllowFunction(schema, name string) bool {
	return (schema == checkedFunction.Schema && name == checkedFunction.Name) || a.Policy.AllowFunction(schema, name)
}

// hashedPolicy masks responses.team_id (integer) and responses.id
// (bigint) with the policy's hash pseudonym template, served as bigint.
// NOTE: masks are the policy's template spelled out; the nodes are shared
// by every call of Relation and must not be modified by the rewriter.
type hashedPolicy struct {
	rewrite.Policy
	masks map[string]*pg_query.Node
}

func newHashedPolicy(t testing.TB, p rewrite.Policy) hashedPolicy {
	h := hashedPolicy{Policy: p, masks: map[string]*pg_query.Node{}}
	for _, col := range []string{"team_id", "id"} {
		h.masks[col] = expr(t, `(('x'::pg_catalog.text || pg_catalog."left"(pgveil.mask_hash(`+col+`::pg_catalog.text, 'k1'), 16))::pg_catalog.bit(64)::pg_catalog.int8 & 9223372036854775807)`)
	}
	return h
}

func (h hashedPolicy) Key() string { return h.Policy.Key() + "+hashed" }
func (h hashedPolicy) Relation(r *rewrite.Relation) rewrite.Access {
	a := h.Policy.Relation(r)
	if a.Mode != rewrite.Governed || r.QName.String() != "public.responses" {
		return a
	}
	a.Masks = maps.Clone(a.Masks)
	if a.Masks == nil {
		a.Masks = map[string]*pg_query.Node{}
	}
	a.MaskTypes = maps.Clone(a.MaskTypes)
	if a.MaskTypes == nil {
		a.MaskTypes = map[string]*pg_query.TypeName{}
	}
	for col, m := range h.masks {
		a.Masks[col] = m
		a.MaskTypes[col] = &pg_query.TypeName{Names: []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode("int8")}, Typemod: -1}
	}
	return a
}

// noSelectPolicy lists insert, update and delete but not select nor
// copy_out: it reads no governed relation.
type noSelectPolicy struct{ rewrite.Policy }

func (w noSelectPolicy) Key() string { return w.Policy.Key() + "+writer" }
func (w noSelectPolicy) AllowStatement(k rewrite.StatementKind) (bool, string) {
	switch k {
	case rewrite.KindInsert, rewrite.KindUpdate, rewrite.KindDelete:
		return true, ""
	case rewrite.KindSelect, rewrite.KindCopyOut:
		return false, "role writer"
	}
	return w.Policy.AllowStatement(k)
}

// governedReads returns the governed relations sql reads other than as
// the target of an INSERT, UPDATE without RETURNING, DELETE without
// RETURNING or MERGE (or in the row-identity subquery that scopes it):
// for a policy without
// select, an allowed statement's output must read none.
// NOTE: an unqualified name counts only when no CTE of the statement
// bears it.
func governedReads(sql string, cat *rewrite.Catalog, pol rewrite.Policy) []string {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return []string{"output does not parse: " + err.Error()}
	}
	targets := map[*pg_query.RangeVar]bool{}
	ctes := map[string]bool{}
	// returning holds the targets of UPDATEs and DELETEs with a
	// RETURNING, which reads the rows they find.
	var rvs, returning []*pg_query.RangeVar
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		switch x := m.Interface().(type) {
		case *pg_query.InsertStmt:
			targets[x.Relation] = true
		case *pg_query.UpdateStmt:
			targets[x.Relation] = true
			if len(x.ReturningList) > 0 {
				returning = append(returning, x.Relation)
			}
		case *pg_query.DeleteStmt:
			targets[x.Relation] = true
			if len(x.ReturningList) > 0 {
				returning = append(returning, x.Relation)
			}
		case *pg_query.MergeStmt:
			targets[x.Relation] = true
		case *pg_query.SelectStmt:
			// A governed write's row-identity subquery (writeScope) reads
			// its target's rows: the target's, not a read.
			for _, t := range x.TargetList {
				if t.GetResTarget().GetName() == "pgveil_ctid" {
					for _, from := range x.FromClause {
						if rv := from.GetRangeVar(); rv != nil {
							targets[rv] = true
						}
					}
				}
			}
		case *pg_query.LockingClause:
			// FOR UPDATE OF r names a FROM item, not a relation.
			for _, n := range x.LockedRels {
				if rv := n.GetRangeVar(); rv != nil {
					targets[rv] = true
				}
			}
		case *pg_query.CommonTableExpr:
			ctes[x.Ctename] = true
		case *pg_query.RangeVar:
			rvs = append(rvs, x)
		}
		m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
			if fd.Kind() != protoreflect.MessageKind {
				return true
			}
			if fd.IsList() {
				for i := 0; i < val.List().Len(); i++ {
					walk(val.List().Get(i).Message())
				}
			} else {
				walk(val.Message())
			}
			return true
		})
	}
	for _, s := range tree.Stmts {
		walk(s.Stmt.ProtoReflect())
	}
	var out []string
	for _, rv := range rvs {
		if (targets[rv] && !slices.Contains(returning, rv)) || rv.Catalogname != "" {
			continue
		}
		schema := rv.Schemaname
		if schema == "" {
			if ctes[rv.Relname] {
				continue
			}
			schema = "public"
		}
		rel := cat.Relations[rewrite.QName{Schema: schema, Name: rv.Relname}]
		if rel != nil && pol.Relation(rel).Mode == rewrite.Governed {
			out = append(out, "reads "+rel.QName.String()+" without select")
		}
	}
	return out
}
