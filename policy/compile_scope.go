package policy

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// teamSubtreeTemplate is team_subtree over a teams table: the row's team
// is the user's team or below it. Placeholders (pgveil_*) are replaced by
// AST fields in teamSubtreeQuery.
//
// NOTE: UNION, not UNION ALL: should the table's parents ever loop, the
// recursion still ends, instead of running until statement_timeout.
var teamSubtreeTemplate = mustParseExpr(`pgveil_team IN (
	WITH RECURSIVE pgveil_subtree(id) AS (
		SELECT t.pgveil_id FROM pgveil_schema.pgveil_teams t WHERE t.pgveil_id = me.team
		UNION
		SELECT c.pgveil_id FROM pgveil_schema.pgveil_teams c JOIN pgveil_subtree s ON c.pgveil_parent = s.id
	)
	SELECT pgveil_subtree.id FROM pgveil_subtree
)`)

// teamSubtreeQuery returns teamSubtreeTemplate for the team column
// teamCol of a governed table, the teams table of t, and the user's team.
func teamSubtreeQuery(teamCol string, t *Teams, team Value) *pg_query.Node {
	n := proto.Clone(teamSubtreeTemplate).(*pg_query.Node)
	fields := map[string]string{"pgveil_team": teamCol, "pgveil_id": t.IDColumn, "pgveil_parent": t.ParentColumn}
	walkNodes(n, func(x *pg_query.Node) {
		if name, ok := attributeRef(x); ok && name == "team" {
			x.Node = literal(team).Node
			return
		}
		if rv := x.GetRangeVar(); rv != nil && rv.Relname == "pgveil_teams" {
			rv.Schemaname, rv.Relname = t.Table.Schema, t.Table.Name
			return
		}
		if ref := x.GetColumnRef(); ref != nil {
			for _, f := range ref.Fields {
				if s := f.GetString_(); s != nil {
					if repl, ok := fields[s.Sval]; ok {
						s.Sval = repl
					}
				}
			}
		}
	})
	return n
}

// scopeContext is what built-in scopes need to know about a governed
// relation and the user.
type scopeContext struct {
	// table is the table block governing the relation.
	table *Table
	// has reports whether the relation has a column.
	has func(column string) bool
	// p is the user's compiled policy.
	p *UserPolicy
}

// owner returns a reference to the relation's owner column, or nil when
// the table block names none or the relation lacks it.
func (sc *scopeContext) owner() *pg_query.Node {
	if c := sc.table.OwnerColumn; c != "" && sc.has(c) {
		return columnRef(c)
	}
	return nil
}

// team returns a reference to the relation's team column, or nil.
func (sc *scopeContext) team() *pg_query.Node {
	if c := sc.table.TeamColumn; c != "" && sc.has(c) {
		return columnRef(c)
	}
	return nil
}

// predicate returns the row predicate of a built-in scope. groups are
// the logins of ScopeGroups. A scope that cannot be applied (the table
// lacks the column it needs, the user has no team or group) is FALSE:
// fail closed.
func (sc *scopeContext) predicate(scope string, groups []string) *pg_query.Node {
	u := sc.p.user
	switch scope {
	case ScopeAll:
		return boolConst(true)
	case ScopeSelf:
		if col := sc.owner(); col != nil {
			return eq(col, literal(sc.p.attr("login")))
		}
	case ScopeOwnTeam:
		if col := sc.team(); col != nil && u.Team != nil {
			return eq(col, literal(intValue(*u.Team)))
		}
	case ScopeTeamSubtree:
		teams := sc.p.cfg.Teams
		col := sc.team()
		if col == nil || u.Team == nil || teams == nil {
			break
		}
		if teams.Table != nil {
			return teamSubtreeQuery(sc.table.TeamColumn, teams, intValue(*u.Team))
		}
		if ids := teams.subtree(*u.Team); len(ids) > 0 {
			elems := make([]Value, len(ids))
			for i, id := range ids {
				elems[i] = intValue(id)
			}
			list, _ := listValue(elems)
			return eqAny(col, literal(list))
		}
	case ScopeOwnGroups:
		return sc.ownerIn(sc.p.peers)
	case ScopeGroups:
		return sc.ownerIn(groups)
	}
	return boolConst(false)
}

// ownerIn returns owner = ANY(ARRAY[logins]), FALSE when logins is empty
// or the relation has no owner column.
func (sc *scopeContext) ownerIn(logins []string) *pg_query.Node {
	col := sc.owner()
	if col == nil || len(logins) == 0 {
		return boolConst(false)
	}
	return eqAny(col, literal(stringsValue(logins)))
}
