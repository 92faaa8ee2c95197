package policytest

import (
	"fmt"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/internal/pgtree"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// textType is the type offline relations give every column.
var textType = &pg_query.TypeName{
	Names:    []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode("text")},
	Typemod:  -1,
	Location: -1,
}

// OfflineCatalog is what pgveil test assumes without the upstream: the
// tables named exactly by table blocks exist, with the columns the blocks
// name (owner_column, team_column, column blocks, follows' column and
// key) or that their mask expressions and the rules naming them exactly
// read, and searchPath is the
// search_path. That is enough to decide refusals and masks, not rows.
func OfflineCatalog(cfg *policy.Config, searchPath []string) *rewrite.Catalog {
	cat := &rewrite.Catalog{
		SearchPath: searchPath,
		Relations:  map[rewrite.QName]*rewrite.Relation{},
		Functions:  map[string]map[string]bool{"pg_catalog": {}},
	}
	for _, t := range cfg.Tables {
		if !t.Pattern.Exact() {
			continue
		}
		rel := &rewrite.Relation{QName: t.Pattern.QName(), Kind: 'r'}
		var names []string
		// NOTE: a follower's column, and the key of each table another
		// follows, are columns too (Table.Follows).
		cols := []string{t.OwnerColumn, t.TeamColumn}
		if f := t.Follows; f != nil {
			cols = append(cols, f.Column)
		}
		for _, o := range cfg.Tables {
			if f := o.Follows; f != nil && f.Table == t.Pattern.QName() {
				cols = append(cols, f.Key)
			}
		}
		for _, c := range cols {
			if c != "" {
				names = append(names, c)
			}
		}
		for name, c := range t.Columns {
			names = append(names, name)
			names = append(names, c.Mask.Columns()...)
		}
		// NOTE: the columns a rule naming the table exactly reads exist
		// too (check --upstream reports one that does not): without them
		// the rule would read no column, grant no row, and an UPDATE of
		// one would pass offline where the server refuses it (write_scope).
		for _, r := range cfg.Rules {
			if slices.Contains(r.Tables, t.Pattern) {
				names = append(names, r.Columns()...)
			}
		}
		slices.Sort(names)
		for _, name := range slices.Compact(names) {
			rel.Columns = append(rel.Columns, rewrite.Column{Name: name, Type: "text", TypeName: textType})
		}
		cat.Relations[rel.QName] = rel
	}
	return cat
}

// offlineQueryCatalog returns the offline catalog for query: unqualified
// function names are taken for PostgreSQL's built-ins. It returns why the
// query cannot be decided offline instead when a name could resolve
// differently upstream: an unqualified function sharing its name with a
// function some role allows, or an unqualified relation found in a schema
// after the first of the search_path (an earlier schema may hold one of
// that name).
func offlineQueryCatalog(cfg *policy.Config, cat *rewrite.Catalog, query string) (*rewrite.Catalog, string) {
	tree, err := pg_query.Parse(query)
	if err != nil {
		return cat, "" // NOTE: a syntax error is refused whatever the catalog.
	}
	roleFuncs := map[string]string{}
	for _, r := range cfg.Roles {
		for _, f := range r.Functions {
			_, name, _ := strings.Cut(f, ".")
			roleFuncs[name] = f
		}
	}
	funcs := map[string]bool{}
	why := ""
	walkQuery(tree, func(n *pg_query.Node) {
		switch x := n.Node.(type) {
		case *pg_query.Node_FuncCall:
			if len(x.FuncCall.Funcname) != 1 {
				return
			}
			name := x.FuncCall.Funcname[0].GetString_().GetSval()
			funcs[name] = true
			if f, ok := roleFuncs[name]; ok && why == "" {
				why = fmt.Sprintf("%s() may be %s or a built-in function: only the live catalog knows", name, f)
			}
		case *pg_query.Node_RangeVar:
			rv := x.RangeVar
			if rv.Schemaname != "" || why != "" || len(cat.SearchPath) == 0 {
				return
			}
			for _, s := range cat.SearchPath {
				if cat.Relations[rewrite.QName{Schema: s, Name: rv.Relname}] == nil {
					continue
				}
				if s != cat.SearchPath[0] {
					why = fmt.Sprintf("%s is found in schema %s, after %s on the search_path: only the live catalog knows which comes first",
						rv.Relname, s, cat.SearchPath[0])
				}
				break
			}
		}
	})
	if why != "" {
		return nil, why
	}
	out := *cat
	out.Functions = map[string]map[string]bool{"pg_catalog": funcs}
	return &out, ""
}

// walkQuery calls f on every node of a parse tree.
func walkQuery(m proto.Message, f func(*pg_query.Node)) {
	pgtree.Walk(m, func(m proto.Message) bool {
		if n, ok := m.(*pg_query.Node); ok {
			f(n)
		}
		return true
	})
}
