package policy

import (
	"time"

	"github.com/hashicorp/hcl/v2"
	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// identitySchema is the body of an identity block.
var identitySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "query", Required: true},
		{Name: "refresh"},
	},
}

// defaultIdentityRefresh is how often serve reads an identity block's
// rows again when the block does not say: as often as the catalog
// (upstream.catalog_refresh), so that an employee who left loses access
// within a minute without anyone reloading pgveil.
const defaultIdentityRefresh = time.Minute

// decodeIdentity decodes one identity block into IdentitySources.
func (d *decoder) decodeIdentity(b *hcl.Block) {
	name := b.Labels[0]
	c := d.content(b.Body, identitySchema, "identity."+name)
	if !d.validLabel(b, "identity") {
		return
	}
	for _, prev := range d.cfg.IdentitySources {
		if prev.Name == name {
			d.duplicate(b, "identity", name, prev.DeclRange)
			return
		}
	}
	refresh := defaultIdentityRefresh
	if a := c.Attributes["refresh"]; a != nil {
		var ok bool
		if refresh, ok = d.positiveDuration(a, "identity."+name+".refresh",
			"The identity rows cannot go unread while pgveil serves: a longer refresh (\"24h\") reads them rarely, and a reload (SIGHUP) reads them at once."); !ok {
			return
		}
	}
	a := c.Attributes["query"]
	if a == nil {
		return
	}
	query, ok := d.nonEmptyString(a, "query")
	if !ok {
		return
	}
	tree, at := d.parseSQL(a, query, "", "The identity query is not valid SQL")
	if tree == nil {
		return
	}
	if problem, loc := readOnlySelect(tree); problem != "" {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid identity query",
			Detail:   "The identity query must be one SELECT that only reads: " + problem + ".",
			Subject:  at(loc, tokenLen(query, loc)),
			Context:  a.Range.Ptr(),
		})
		return
	}
	d.cfg.IdentitySources = append(d.cfg.IdentitySources, &IdentitySource{
		Name: name, Query: query, Refresh: refresh, DeclRange: b.DefRange, QueryRange: a.Expr.Range(),
	})
}

// readOnlySelect checks that tree is one SELECT statement that cannot
// write or lock: no INTO, no FOR UPDATE/SHARE, no data-modifying WITH. It
// returns what is wrong and where (-1: the whole query).
//
// NOTE: LoadIdentities also runs the query in a READ ONLY transaction;
// this check only makes the mistake a load-time diagnostic.
func readOnlySelect(tree *pg_query.ParseResult) (string, int) {
	if len(tree.Stmts) != 1 {
		return "it holds more than one statement", -1
	}
	if tree.Stmts[0].Stmt.GetSelectStmt() == nil {
		return "it is not a SELECT", int(tree.Stmts[0].StmtLocation)
	}
	problem, loc := "", -1
	walkNodes(tree.Stmts[0].Stmt, func(n *pg_query.Node) {
		if problem != "" {
			return
		}
		switch x := n.Node.(type) {
		case *pg_query.Node_SelectStmt:
			if x.SelectStmt.IntoClause != nil {
				problem = "it has an INTO clause"
			}
			if len(x.SelectStmt.LockingClause) > 0 {
				problem = "it locks rows (FOR UPDATE/SHARE)"
			}
		case *pg_query.Node_CommonTableExpr:
			if x.CommonTableExpr.Ctequery.GetSelectStmt() == nil {
				problem, loc = "its WITH clause modifies data", int(x.CommonTableExpr.Location)
			}
		}
	})
	return problem, loc
}
