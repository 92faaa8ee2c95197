package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Schemas of the teams block and of team blocks.
var (
	teamsSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "table", Required: true},
			{Name: "id_column", Required: true},
			{Name: "parent_column", Required: true},
		},
	}
	teamSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "id", Required: true},
			{Name: "parent"},
		},
	}
)

// decodeTeams decodes the team tree: one teams block, or team blocks, not
// both.
func (d *decoder) decodeTeams(tables, teams []*hcl.Block) {
	if len(tables) > 0 && len(teams) > 0 {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Teams declared twice",
			Detail: fmt.Sprintf("The team tree is read from the teams block at %s; it cannot also be declared with team "+
				"blocks. Keep one of the two forms.", position(tables[0].DefRange)),
			Subject: teams[0].DefRange.Ptr(),
		})
		return
	}
	if len(tables) > 0 {
		d.duplicateBlocks("teams", "at most", tables)
		d.decodeTeamsTable(tables[0])
		return
	}
	if len(teams) == 0 {
		return
	}
	t := &Teams{ByID: map[int64]*Team{}, DeclRange: teams[0].DefRange}
	byName := map[string]*Team{}
	parents := map[*Team]*hcl.Attribute{}
	for _, b := range teams {
		name := b.Labels[0]
		c := d.content(b.Body, teamSchema, "team."+name)
		if !d.validLabel(b, "team") {
			continue
		}
		if prev, ok := byName[name]; ok {
			d.duplicate(b, "team", name, prev.DeclRange)
			continue
		}
		tm := &Team{Name: name, DeclRange: b.DefRange}
		byName[name] = tm
		if a := c.Attributes["id"]; a != nil {
			id, ok := d.teamID(a)
			if !ok {
				continue
			}
			if prev, dup := t.ByID[id]; dup {
				d.errorAt(a, "Duplicate team id", fmt.Sprintf("Team %q already has id %d (at %s).", prev.Name, id, position(prev.DeclRange)))
				continue
			}
			tm.ID = id
			t.ByID[id] = tm
		}
		if a := c.Attributes["parent"]; a != nil {
			tm.Parent, _ = d.nonEmptyString(a, "parent")
			parents[tm] = a
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	for tm, a := range parents {
		if tm.Parent != "" && byName[tm.Parent] == nil {
			detail := fmt.Sprintf("No team block is named %q.", tm.Parent)
			if s := suggest(tm.Parent, names); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			d.errorAt(a, "Unknown parent team", detail)
			tm.Parent = ""
		}
	}
	for _, n := range names {
		if cycle := teamCycle(byName[n], byName); cycle != nil {
			d.errorAt(parents[byName[n]], "Team cycle", fmt.Sprintf("Teams must form a tree, but %s is its own ancestor: %s.",
				n, strings.Join(cycle, " → ")))
			return
		}
	}
	t.subtrees = map[int64][]int64{}
	for _, tm := range t.ByID {
		for a := tm; a != nil; a = byName[a.Parent] {
			if t.ByID[a.ID] == a {
				t.subtrees[a.ID] = append(t.subtrees[a.ID], tm.ID)
			}
		}
	}
	for id := range t.subtrees {
		slices.Sort(t.subtrees[id])
	}
	d.cfg.Teams = t
}

// teamCycle returns the names along a cycle through tm's ancestors, or
// nil.
func teamCycle(tm *Team, byName map[string]*Team) []string {
	path := []string{tm.Name}
	for a := byName[tm.Parent]; a != nil; a = byName[a.Parent] {
		path = append(path, a.Name)
		if a == tm {
			return path
		}
		if len(path) > len(byName)+1 {
			return nil // a cycle above tm, reported from one of its teams
		}
	}
	return nil
}

// decodeTeamsTable decodes a teams block: the tree lives in a table
// upstream.
func (d *decoder) decodeTeamsTable(b *hcl.Block) {
	c := d.content(b.Body, teamsSchema, "teams")
	t := &Teams{DeclRange: b.DefRange}
	ok := true
	if a := c.Attributes["table"]; a != nil {
		if s, sok := d.nonEmptyString(a, "table"); sok {
			p, problem := parsePattern(s)
			if problem == "" && !p.Exact() {
				problem = fmt.Sprintf("%q is a pattern: the teams table is one table.", s)
			}
			if problem != "" {
				d.errorAt(a, "Invalid table name", problem)
				ok = false
			} else {
				q := p.QName()
				t.Table = &q
			}
		} else {
			ok = false
		}
	}
	for _, name := range []string{"id_column", "parent_column"} {
		a := c.Attributes[name]
		if a == nil {
			ok = false
			continue
		}
		s, sok := d.nonEmptyString(a, name)
		ok = ok && sok
		if name == "id_column" {
			t.IDColumn = s
		} else {
			t.ParentColumn = s
		}
	}
	if ok {
		d.cfg.Teams = t
	}
}

// subtree returns the ids of team id and of every team below it, from
// team blocks; nil when no team block has that id.
func (t *Teams) subtree(id int64) []int64 { return t.subtrees[id] }
