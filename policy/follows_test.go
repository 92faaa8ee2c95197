package policy

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// followsPolicy governs public.responses by team subtree and agent, and
// public.tags, which has no team column, by following responses.
const followsPolicy = `
team "HQ" {
  id = 1
}
team "France" {
  id     = 2
  parent = "HQ"
}
user "paul" {
  password = "VERIFIER"
  roles    = ["manager"]
  team     = 2
}
user "tom" {
  password = "VERIFIER"
  roles    = ["agent"]
}
user "cora" {
  password = "VERIFIER"
  roles    = ["central"]
}
role "manager" {
  statements = ["select"]
  scope      = "team_subtree"
}
role "agent" {
  statements = ["select"]
  scope      = "self"
}
role "central" {
  statements = ["select"]
}
table "public.responses" {
  owner_column = "agent_login"
  team_column  = "team_id"
  column "email" {
    class = "pii"
  }
}
table "public.tags" {
  follows = { table = "public.responses", column = "response_id", key = "id" }
}
rule "managed" {
  tables = ["public.responses"]
  roles  = ["manager"]
  scope  = "team_subtree"
}
rule "handled" {
  tables = ["public.responses"]
  roles  = ["agent"]
  scope  = "self"
}
rule "everything" {
  tables = ["public.responses"]
  roles  = ["central"]
  scope  = "all"
}
`

// followsCatalog is a snapshot holding responses and tags.
func followsCatalog() (*rewrite.Catalog, *rewrite.Relation) {
	tags := relation("public", "tags", []string{"response_id", "tag"})
	cat := &rewrite.Catalog{Relations: map[rewrite.QName]*rewrite.Relation{
		responses.QName: responses, tags.QName: tags,
	}}
	return cat, tags
}

func TestFollowsScopesAChildByItsParent(t *testing.T) {
	cat, tags := followsCatalog()
	for _, c := range []struct{ name, policy, login, where string }{
		{"a manager sees the tags of the responses of her subtree", followsPolicy, "paul",
			"response_id OPERATOR(pg_catalog.=) ANY (SELECT responses.id FROM public.responses WHERE " +
				"responses.team_id OPERATOR(pg_catalog.=) ANY(ARRAY[2]) AND responses.team_id OPERATOR(pg_catalog.=) ANY(ARRAY[2]))"},
		{"an agent sees the tags of his own responses", followsPolicy, "tom",
			"response_id OPERATOR(pg_catalog.=) ANY (SELECT responses.id FROM public.responses WHERE " +
				"responses.agent_login OPERATOR(pg_catalog.=) 'tom' AND responses.agent_login OPERATOR(pg_catalog.=) 'tom')"},
		{"a user seeing every response still sees only tags that have a response", followsPolicy, "cora",
			"response_id OPERATOR(pg_catalog.=) ANY (SELECT responses.id FROM public.responses)"},
		{"a rule of the child adds rows", followsPolicy + `
rule "tag_spam" {
  tables = ["public.tags"]
  roles  = ["central"]
  where  = "tag = 'spam'"
}`, "cora", "response_id OPERATOR(pg_catalog.=) ANY (SELECT responses.id FROM public.responses) OR tag OPERATOR(pg_catalog.=) 'spam'"},
		{"a rule of the child adds no row past the child's own ceiling", followsPolicy + `
rule "tag_spam" {
  tables = ["public.tags"]
  roles  = ["manager"]
  where  = "tag = 'spam'"
}`, "paul", "response_id OPERATOR(pg_catalog.=) ANY (SELECT responses.id FROM public.responses WHERE " +
			"responses.team_id OPERATOR(pg_catalog.=) ANY(ARRAY[2]) AND responses.team_id OPERATOR(pg_catalog.=) ANY(ARRAY[2]))"},
		{"a restrictive rule of the child restricts the followed rows", followsPolicy + `
rule "no_spam" {
  tables = ["public.tags"]
  roles  = ["central"]
  kind   = "restrictive"
  where  = "tag <> 'spam'"
}`, "cora", "response_id OPERATOR(pg_catalog.=) ANY (SELECT responses.id FROM public.responses) AND tag OPERATOR(pg_catalog.<>) 'spam'"},
		{"a child of a child follows the chain", strings.Replace(followsPolicy, `rule "managed"`, `table "public.tag_votes" {
  follows = { table = "public.tags", column = "tag_id", key = "response_id" }
}
rule "managed"`, 1), "tom", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := compile(t, c.policy, c.login)
			if strings.Contains(c.name, "chain") {
				votes := relation("public", "tag_votes", []string{"tag_id"})
				cat.Relations[votes.QName] = votes
				defer delete(cat.Relations, votes.QName)
				got := whereOf(t, votes, p.RelationIn(cat, votes))
				want := "tag_id OPERATOR(pg_catalog.=) ANY (SELECT tags.response_id FROM public.tags WHERE tags.response_id " +
					"OPERATOR(pg_catalog.=) ANY (SELECT responses.id FROM public.responses WHERE responses.agent_login " +
					"OPERATOR(pg_catalog.=) 'tom' AND responses.agent_login OPERATOR(pg_catalog.=) 'tom'))"
				if got != want {
					t.Errorf("filter\n got: %s\nwant: %s", got, want)
				}
				return
			}
			if got := whereOf(t, tags, p.RelationIn(cat, tags)); got != c.where {
				t.Errorf("filter\n got: %s\nwant: %s", got, c.where)
			}
		})
	}
	t.Run("a parent's restrictive rules, ceiling and own rows deparse back into the tree", func(t *testing.T) {
		p := compile(t, followsPolicy+`
role "lead" {
  statements = ["select"]
  scope      = "own_team"
  own_rows   = true
}
user "lea" {
  password = "VERIFIER"
  roles    = ["lead"]
  team     = 11
}
rule "lead_team" {
  tables = ["public.responses"]
  roles  = ["lead"]
  scope  = "own_team"
}
rule "lead_low" {
  tables = ["public.responses"]
  roles  = ["lead"]
  where  = "score <= 3"
}
rule "lead_surveys" {
  tables = ["public.responses"]
  roles  = ["lead"]
  kind   = "restrictive"
  where  = "email IS NOT NULL OR country IN (SELECT c.name FROM public.countries c WHERE c.team = me.team)"
}
rule "lead_tags" {
  tables = ["public.tags"]
  roles  = ["lead"]
  where  = "tag = 'x' AND tag <> 'y'"
}
rule "lead_tags_restricted" {
  tables = ["public.tags"]
  roles  = ["lead"]
  kind   = "restrictive"
  where  = "tag <> 'z' OR tag IS NULL"
}
`, "lea")
		// NOTE: whereOf fails unless the deparse parses back into the
		// same tree: PostgreSQL merges a left-nested AND or OR.
		got := whereOf(t, tags, p.RelationIn(cat, tags))
		for _, want := range []string{"OR responses.agent_login OPERATOR(pg_catalog.=) 'lea')", "responses.country OPERATOR(pg_catalog.=) ANY (SELECT c.name"} {
			if !strings.Contains(got, want) {
				t.Errorf("filter %s lacks %s", got, want)
			}
		}
	})
	t.Run("without the snapshot the child shows no row", func(t *testing.T) {
		p := compile(t, followsPolicy, "cora")
		if got := whereOf(t, tags, p.Relation(tags)); got != "false" {
			t.Errorf("filter %s, want false", got)
		}
	})
	t.Run("a parent missing from the snapshot shows no row", func(t *testing.T) {
		p := compile(t, followsPolicy, "cora")
		cat := &rewrite.Catalog{Relations: map[rewrite.QName]*rewrite.Relation{tags.QName: tags}}
		if got := whereOf(t, tags, p.RelationIn(cat, tags)); got != "false" {
			t.Errorf("filter %s, want false", got)
		}
	})
	t.Run("a child lacking the column shows no row", func(t *testing.T) {
		p := compile(t, followsPolicy, "cora")
		other := relation("public", "tags", []string{"tag"})
		if got := whereOf(t, other, p.RelationIn(cat, other)); got != "false" {
			t.Errorf("filter %s, want false", got)
		}
	})
	t.Run("the follow and the parent's rules are named among the rules for the audit", func(t *testing.T) {
		p := compile(t, followsPolicy, "paul")
		got := strings.Join(p.RelationIn(cat, tags).Rules, ",")
		for _, want := range []string{"follows.public.responses", "managed", "role.manager.scope"} {
			if !strings.Contains(got, want) {
				t.Errorf("rules %v lack %s", got, want)
			}
		}
	})
}

func TestFollowsMistakesArePointedAt(t *testing.T) {
	for _, c := range []struct{ name, old, new, want string }{
		{"a misspelt parent suggests the governed table",
			`table = "public.responses", column`, `table = "public.respones", column`,
			`pgveil.hcl:50:13: error: Unknown follows table; No table block names public.respones exactly: a table can only follow a governed table, whose rules decide which of its rows a user sees. Did you mean "public.responses"?`},
		{"an ungoverned parent is refused",
			`table = "public.responses", column`, `table = "public.surveys", column`,
			`error: Unknown follows table; No table block names public.surveys exactly`},
		{"a pattern parent is refused",
			`table = "public.responses", column`, `table = "public.*", column`,
			`error: Invalid follows; follows.table must name one table exactly`},
		{"a classified key is refused",
			`key = "id" }`, `key = "email" }`,
			`error: Masked follows key; Column email of public.responses is classified "pii"`},
		{"a table following itself is a loop",
			`table = "public.responses", column`, `table = "public.tags", column`,
			`error: Follows loop; public.tags follows public.tags: no table would ever show a row`},
		{"two tables following each other are a loop",
			"table \"public.responses\" {\n  owner_column", "table \"public.responses\" {\n  follows = { table = \"public.tags\", column = \"id\", key = \"response_id\" }\n  owner_column",
			`error: Follows loop; public.tags follows public.responses follows public.tags`},
		{"a follows without key is refused",
			`, key = "id" }`, ` }`,
			`error: Incorrect attribute value type; Inappropriate value for argument "follows": attribute "key" is required.`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(followsPolicy, c.old) {
				t.Fatalf("the policy has no %q", c.old)
			}
			path := writePolicy(t, strings.Replace(followsPolicy, c.old, c.new, 1))
			t.Chdir(strings.TrimSuffix(path, "/pgveil.hcl"))
			l := NewLoader()
			_, diags := l.Load("pgveil.hcl")
			var out bytes.Buffer
			_ = WriteDiagnostics(&out, l.Files(), diags)
			got := strings.Join(strings.Fields(out.String()), " ")
			for _, w := range strings.Split(c.want, "; ") {
				if !strings.Contains(got, strings.Join(strings.Fields(w), " ")) {
					t.Errorf("diagnostics lack %q:\n%s", w, out.String())
				}
			}
		})
	}
	t.Run("the base policy loads", func(t *testing.T) { loadPolicy(t, followsPolicy) })
}

func TestFollowsWritesOfTheChild(t *testing.T) {
	cat, _ := followsCatalog()
	cat.SearchPath = []string{"public"}
	policy := strings.Replace(followsPolicy, `role "manager" {
  statements = ["select"]`, `role "manager" {
  statements = ["select", "insert", "update", "delete"]`, 1)
	p := compile(t, policy, "paul")
	for _, c := range []struct{ name, sql, want string }{
		{"moving a tag to another response is refused: it could move it out of scope",
			"UPDATE public.tags SET response_id = 3 WHERE tag = 'x'", "write_scope"},
		{"an insert is refused: new rows cannot be checked against the scope",
			"INSERT INTO public.tags VALUES (3, 'x')", "write_scope"},
		{"an update of another column is scoped by the follow",
			"UPDATE public.tags SET tag = 'y' WHERE tag = 'x'", "response_id OPERATOR(pg_catalog.=) ANY (SELECT responses.id FROM public.responses WHERE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := rewrite.Rewrite(c.sql, cat, p)
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				got = res.SQL
			}
			if !strings.Contains(got, c.want) {
				t.Errorf("%s:\n got: %s\nwant: …%s…", c.sql, got, c.want)
			}
		})
	}
}

// TestFollowsKeepsTheParentsFence: a parent with pushdown = false keeps
// the client's comparisons away from its hidden rows; a child following
// it must too, or a comparison of the child's column pushed into the
// child's scope would reach the parent's key through the follow (an
// equivalence PostgreSQL derives), and the plan and duration would tell
// which hidden parent rows hold a key. A parent a child follows has
// its keys in FollowedKeys, which a scoped UPDATE may not write.
func TestFollowsKeepsTheParentsFence(t *testing.T) {
	cat, tags := followsCatalog()
	fenced := strings.Replace(followsPolicy, `  team_column  = "team_id"
`, `  team_column  = "team_id"
  pushdown     = false
`, 1)
	for _, c := range []struct {
		name, policy string
		fence        bool
	}{
		{"a child of a fenced parent is fenced", fenced, true},
		{"a child of a parent with pushdown is not", followsPolicy, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, login := range []string{"paul", "tom", "cora"} {
				if got := compile(t, c.policy, login).RelationIn(cat, tags).NoPushdown; got != c.fence {
					t.Errorf("%s: NoPushdown %v, want %v", login, got, c.fence)
				}
			}
		})
	}
	t.Run("the parent's key is followed, the child's column is not", func(t *testing.T) {
		p := compile(t, followsPolicy, "paul")
		if got := p.RelationIn(cat, responses).FollowedKeys; !got["id"] || len(got) != 1 {
			t.Errorf("responses: FollowedKeys %v, want id", got)
		}
		if got := p.RelationIn(cat, tags).FollowedKeys; len(got) != 0 {
			t.Errorf("tags: FollowedKeys %v, want none", got)
		}
		part := relation("public", "responses_2026", []string{"id", "team_id", "agent_login"})
		part.Ancestors = []rewrite.QName{responses.QName}
		if got := p.RelationIn(cat, part).FollowedKeys; !got["id"] {
			t.Errorf("a partition of responses: FollowedKeys %v, want id", got)
		}
	})
}

// TestFollowsKeyOfAFollowedPartitionIsTheRootsToo: a follow of a
// partition (or inheritance child) reads rows an UPDATE of its root
// writes: a scoped writer of the root may not move the key either, nor
// move a row into the partition by its partition key.
func TestFollowsKeyOfAFollowedPartitionIsTheRootsToo(t *testing.T) {
	cat, _ := followsCatalog()
	part := relation("public", "responses_2026", []string{"id", "team_id", "agent_login"}, responses.QName)
	cat.Relations[part.QName] = part
	part.BoundBy = []string{"created"}
	policy := strings.Replace(followsPolicy, `table "public.tags" {
  follows = { table = "public.responses", column = "response_id", key = "id" }`, `table "public.responses_2026" {
  team_column = "team_id"
}
table "public.tags" {
  follows = { table = "public.responses_2026", column = "response_id", key = "id" }`, 1)
	p := compile(t, policy, "paul")
	for _, rel := range []*rewrite.Relation{part, responses} {
		if got := p.RelationIn(cat, rel).FollowedKeys; !got["id"] {
			t.Errorf("%s: FollowedKeys %v, want id", rel.QName, got)
		}
	}
	// An UPDATE of the root's partition key moves a row, key and all,
	// into the followed partition.
	if got := p.RelationIn(cat, responses).FollowedKeys; !got["created"] {
		t.Errorf("%s: FollowedKeys %v, want the partition key created too", responses.QName, got)
	}
}

// TestFollowsFenceReachesTheEndOfAChain: a follower of a follower of a
// fenced parent is fenced, whatever its own pushdown says.
func TestFollowsFenceReachesTheEndOfAChain(t *testing.T) {
	cat, _ := followsCatalog()
	notes := relation("public", "tag_notes", []string{"tag", "note"})
	cat.Relations[notes.QName] = notes
	policy := strings.Replace(followsPolicy, `  team_column  = "team_id"
`, `  team_column  = "team_id"
  pushdown     = false
`, 1) + `
table "public.tag_notes" {
  pushdown = true
  follows  = { table = "public.tags", column = "tag", key = "tag" }
}
`
	for _, login := range []string{"paul", "tom", "cora"} {
		if acc := compile(t, policy, login).RelationIn(cat, notes); acc.Mode != rewrite.Governed || !acc.NoPushdown {
			t.Errorf("%s: tag_notes %v, NoPushdown %v, want a fenced follow", login, modeName(acc.Mode), acc.NoPushdown)
		}
	}
}

// TestFollowsNoPairComparedByACast: a snapshot whose column and key
// PostgreSQL compares by a cast (a type changed since load) scopes the
// child to no row; types compared by an operator of their own follow.
func TestFollowsNoPairComparedByACast(t *testing.T) {
	for _, c := range []struct {
		column, key string
		follows     bool
	}{
		{"double precision", "numeric", false},
		{"numeric", "double precision", false},
		{"integer", "text", false},
		{"integer", "integer", true},
	} {
		t.Run(c.column+" against a "+c.key+" key", func(t *testing.T) {
			cat, tags := followsCatalog()
			parent := *cat.Relations[responses.QName]
			parent.Columns = slices.Clone(parent.Columns)
			for i := range parent.Columns {
				if parent.Columns[i].Name == "id" {
					parent.Columns[i].Type = c.key
				}
			}
			cat.Relations[responses.QName] = &parent
			tags.Columns[0].Type = c.column
			where := accessSQL(t, tags, compile(t, followsPolicy, "cora").RelationIn(cat, tags))
			if got := strings.Contains(where, "SELECT responses.id"); got != c.follows {
				t.Errorf("follows %v, want %v: %s", got, c.follows, where)
			}
		})
	}
}

// TestFollowsNoPairUnderAnotherEquality: a snapshot whose column and key
// differ in a nondeterministic collation (a case-insensitive child
// column, changed since load) scopes the child to no row: PostgreSQL
// would compare them under it, and a child of 'B-3', a hidden key, would
// match 'b-3', a visible one. One collation on both sides follows.
func TestFollowsNoPairUnderAnotherEquality(t *testing.T) {
	for _, c := range []struct {
		name, column, key string
		follows           bool
	}{
		{"a case-insensitive column against a deterministic key", "16384", "", false},
		{"a deterministic column against a case-insensitive key", "", "16384", false},
		{"two nondeterministic collations", "16384", "16385", false},
		{"one case-insensitive collation on both sides", "16384", "16384", true},
		{"deterministic collations on both sides", "", "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cat, tags := followsCatalog()
			parent := *cat.Relations[responses.QName]
			parent.Columns = slices.Clone(parent.Columns)
			for i := range parent.Columns {
				if parent.Columns[i].Name == "id" {
					parent.Columns[i].Nondeterministic = c.key
				}
			}
			cat.Relations[responses.QName] = &parent
			tags.Columns[0].Nondeterministic = c.column
			where := accessSQL(t, tags, compile(t, followsPolicy, "cora").RelationIn(cat, tags))
			if got := strings.Contains(where, "SELECT responses.id"); got != c.follows {
				t.Errorf("follows %v, want %v: %s", got, c.follows, where)
			}
		})
	}
}

// TestFollowsNoView: a parent the snapshot says is a view or a
// materialized view (replaced since load) scopes the child to no row: its
// key is written through its base tables, where no FollowedKeys guards it.
func TestFollowsNoView(t *testing.T) {
	for _, c := range []struct {
		kind    byte
		follows bool
	}{{'v', false}, {'m', false}, {'r', true}, {'p', true}, {'f', true}} {
		t.Run("relkind "+string(c.kind), func(t *testing.T) {
			cat, tags := followsCatalog()
			parent := *cat.Relations[responses.QName]
			parent.Kind = c.kind
			cat.Relations[responses.QName] = &parent
			where := accessSQL(t, tags, compile(t, followsPolicy, "cora").RelationIn(cat, tags))
			if got := strings.Contains(where, "SELECT responses.id"); got != c.follows {
				t.Errorf("follows %v, want %v: %s", got, c.follows, where)
			}
		})
	}
}

// TestFollowsNoPairOfTwoCollations: a snapshot whose column and key have
// two deterministic collations, neither the database's default, scopes the
// child to no row: PostgreSQL cannot choose one, and fails the comparison
// (42P22) only when a child row, hidden ones included, meets a visible
// parent row, which would tell that the child holds rows. A default
// collation on either side gives way to the other.
func TestFollowsNoPairOfTwoCollations(t *testing.T) {
	for _, c := range []struct {
		name, column, key string
		follows           bool
	}{
		{"\"POSIX\" against \"C\"", "951", "950", false},
		{"\"C\" on both sides", "950", "950", true},
		{"the default against \"C\"", "", "950", true},
		{"\"C\" against the default", "950", "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cat, tags := followsCatalog()
			parent := *cat.Relations[responses.QName]
			parent.Columns = slices.Clone(parent.Columns)
			for i := range parent.Columns {
				if parent.Columns[i].Name == "id" {
					parent.Columns[i].Collation = c.key
				}
			}
			cat.Relations[responses.QName] = &parent
			tags.Columns[0].Collation = c.column
			where := accessSQL(t, tags, compile(t, followsPolicy, "cora").RelationIn(cat, tags))
			if got := strings.Contains(where, "SELECT responses.id"); got != c.follows {
				t.Errorf("follows %v, want %v: %s", got, c.follows, where)
			}
		})
	}
}
