package rewrite_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/policy/live"
	"github.com/pgveil/pgveil/rewrite"
)

// updateGolden rewrites the want, rules, masked and upstream sections of
// testdata/rewrite/*.txtar from what the rewriter does now:
//
//	go test ./rewrite -run TestGolden -update
var updateGolden = flag.Bool("update", false, "rewrite the expected sections of testdata/rewrite/*.txtar")

// TestGolden runs every testdata/rewrite/*.txtar case: the statement of
// section sql, rewritten for the demo user of section user under
// configs/demo.hcl (with pushdown = false on every table when the case has
// a section nopushdown, and followed by the text of section config when
// the case has one), must give section want (the rewritten text, or
// "REFUSED <code> <rule>: <message>"), and, when present, the rules that
// fired (section rules), the masked columns (section masked) and what
// PostgreSQL answered when the output ran on the demo data as the service
// account, in a read-only transaction rolled back afterwards (section
// upstream).
//
// Every output must parse again and pass verifyOutput: no governed or
// denied relation is read but through the rewriter's own subquery.
func TestGolden(t *testing.T) {
	env := demoEnvironment(t)
	files, err := filepath.Glob(filepath.Join("testdata", "rewrite", "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden files in testdata/rewrite")
	}
	up := newUpstream(t)
	splicer := rewrite.NewSplicer()
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txtar")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			ar, err := parseTxtar(raw)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if ar.has("skip") {
				// A case that crashes or misbehaves: documented, not run.
				t.Skip("KNOWN BUG: " + strings.TrimSpace(ar.get("skip")))
			}
			user := strings.TrimSpace(ar.get("user"))
			sql := strings.TrimSpace(ar.get("sql"))
			if user == "" || sql == "" {
				t.Fatalf("%s: sections user and sql are required", file)
			}
			env := env
			if ar.has("config") {
				env = env.with(t, ar.get("config"))
			}
			pol := env.policy(t, user)
			if ar.has("grant") {
				g := &grantPolicy{Policy: pol, kinds: map[rewrite.StatementKind]bool{}}
				for _, k := range strings.Fields(ar.get("grant")) {
					g.kinds[rewrite.StatementKind(k)] = true
				}
				pol = g
			}
			if ar.has("nopushdown") {
				// The table blocks say pushdown = false.
				pol = subqueryOnly(pol)
			}
			res, err := rewrite.Rewrite(sql, env.cat, pol)
			got := outcome(res, err)

			var rules, masked, upstream string
			if err == nil {
				rules, masked = lines(res.Rules), lines(res.Masked)
				tree, perr := pg_query.Parse(res.SQL)
				if perr != nil {
					t.Errorf("the output does not parse: %v\n%s", perr, res.SQL)
				} else if len(tree.Stmts) != len(res.Kinds) {
					t.Errorf("the output has %d statements, the input %d", len(tree.Stmts), len(res.Kinds))
				}
				for _, v := range verifyOutput(res.SQL, env.cat, pol) {
					t.Errorf("verifier: %s\n%s", v, res.SQL)
				}
				upstream = up.run(t, res)
			}
			checkSplice(t, splicer, sql, env.cat, pol, res, err, up, upstream)

			if err == nil {
				got = prettySQL(t, got)
			}
			if *updateGolden {
				ar.set("want", got)
				for _, s := range []struct{ name, val string }{{"rules", rules}, {"masked", masked}, {"upstream", upstream}} {
					if s.val != "" || ar.has(s.name) {
						ar.set(s.name, s.val)
					}
				}
				if err := os.WriteFile(file, ar.format(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if want := strings.TrimSpace(ar.get("want")); got != want {
				t.Errorf("output:\n%s\nwant:\n%s", got, want)
			}
			for _, s := range []struct{ name, val string }{{"rules", rules}, {"masked", masked}, {"upstream", upstream}} {
				if !ar.has(s.name) {
					continue
				}
				if want := strings.TrimSpace(ar.get(s.name)); s.val != want {
					t.Errorf("%s:\n%s\nwant:\n%s", s.name, s.val, want)
				}
			}
		})
	}
}

// prettySQL lays sql out for a golden file: one clause per line,
// indented by its depth in parentheses. Only the space between tokens
// changes: where sql has none there is none, where it has some there is a
// space or a line break, so a golden file still tells every byte that
// matters apart.
func prettySQL(t *testing.T, sql string) string {
	t.Helper()
	scan, err := pg_query.Scan(sql)
	if err != nil {
		t.Fatalf("scanning the output: %v", err)
	}
	var b strings.Builder
	depth, last := 0, 0
	prev := pg_query.Token_NUL
	for _, tok := range scan.Tokens {
		start, end := int(tok.Start), int(tok.End)
		gap := sql[last:start]
		if strings.TrimSpace(gap) != "" {
			t.Fatalf("text between tokens: %q", gap)
		}
		switch {
		case last > 0 && prev == pg_query.Token_ASCII_59: // ;
			b.WriteString("\n")
		case last > 0 && clauseStart(tok.Token, prev):
			b.WriteString("\n" + strings.Repeat("  ", depth))
		case gap != "":
			b.WriteByte(' ')
		}
		b.WriteString(sql[start:end])
		switch tok.Token {
		case pg_query.Token_ASCII_40:
			depth++
		case pg_query.Token_ASCII_41:
			depth--
		}
		last, prev = end, tok.Token
	}
	b.WriteString(sql[last:])
	return b.String()
}

// clauseStart reports whether token tok, after prev, starts a clause
// prettySQL puts on a line of its own.
func clauseStart(tok, prev pg_query.Token) bool {
	if prev == pg_query.Token_ASCII_40 { // (SELECT stays together
		return false
	}
	switch tok {
	case pg_query.Token_SELECT, pg_query.Token_FROM, pg_query.Token_WHERE, pg_query.Token_GROUP_P,
		pg_query.Token_HAVING, pg_query.Token_WINDOW, pg_query.Token_ORDER, pg_query.Token_LIMIT,
		pg_query.Token_OFFSET, pg_query.Token_UNION, pg_query.Token_INTERSECT, pg_query.Token_EXCEPT,
		pg_query.Token_RETURNING, pg_query.Token_VALUES, pg_query.Token_LEFT, pg_query.Token_RIGHT,
		pg_query.Token_FULL, pg_query.Token_INNER_P, pg_query.Token_CROSS, pg_query.Token_NATURAL:
		// UNION ALL SELECT, INSERT … SELECT: the arm's SELECT follows
		// its keyword on the same line.
		return !(tok == pg_query.Token_SELECT && (prev == pg_query.Token_ALL || prev == pg_query.Token_UNION ||
			prev == pg_query.Token_INTERSECT || prev == pg_query.Token_EXCEPT || prev == pg_query.Token_DISTINCT))
	case pg_query.Token_JOIN:
		switch prev {
		case pg_query.Token_LEFT, pg_query.Token_RIGHT, pg_query.Token_FULL, pg_query.Token_INNER_P,
			pg_query.Token_CROSS, pg_query.Token_NATURAL, pg_query.Token_OUTER_P:
			return false
		}
		return true
	}
	return false
}

// outcome renders what Rewrite returned the way section want holds it.
func outcome(res *rewrite.Result, err error) string {
	var r *rewrite.Refused
	var u *rewrite.UnknownRelationError
	switch {
	case err == nil:
		return res.SQL
	case errors.As(err, &r):
		return fmt.Sprintf("REFUSED %s %s: %s", r.Code, r.Rule, r.Message)
	case errors.As(err, &u):
		return "UNKNOWN RELATION: " + u.Error()
	}
	return "ERROR: " + err.Error()
}

func lines(s []string) string { return strings.Join(s, "\n") }

// ---------------------------------------------------------------------------
// The demo environment: the catalog snapshot of the demo database and
// configs/demo.hcl compiled per user, identities read from the database.

type demoEnv struct {
	cat *rewrite.Catalog
	cfg *policy.Config
	ids *policy.Identities

	mu       sync.Mutex
	policies map[string]rewrite.Policy
}

var (
	envOnce sync.Once
	envErr  error
	theEnv  *demoEnv
)

// demoEnvironment loads the catalog (demoCatalog), configs/demo.hcl and the
// identities of public.employees, once per test binary.
func demoEnvironment(t testing.TB) *demoEnv {
	t.Helper()
	cat := demoCatalog(t)
	envOnce.Do(func() { theEnv, envErr = loadDemoEnv(cat) })
	if envErr != nil {
		t.Fatal(envErr)
	}
	return theEnv
}

func loadDemoEnv(cat *rewrite.Catalog) (*demoEnv, error) {
	for name, val := range map[string]string{
		"PGVEIL_DEMO_UPSTREAM":          "127.0.0.1:5432",
		"PGVEIL_DEMO_UPSTREAM_PASSWORD": "demo",
		"PGVEIL_DEMO_LISTEN":            "127.0.0.1:6432",
	} {
		if _, ok := os.LookupEnv(name); !ok {
			os.Setenv(name, val)
		}
	}
	return loadEnvFrom(cat, "../configs/demo.hcl")
}

// loadEnvFrom is loadDemoEnv with the configuration at path.
func loadEnvFrom(cat *rewrite.Catalog, path string) (*demoEnv, error) {
	l := policy.NewLoader()
	cfg, diags := l.Load(path)
	if diags.HasErrors() || cfg == nil {
		var out bytes.Buffer
		_ = policy.WriteDiagnostics(&out, l.Files(), diags)
		return nil, fmt.Errorf("%s:\n%s", path, out.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	ids, diags := cfg.LoadIdentities(ctx, live.New(conn))
	if diags.HasErrors() || ids == nil {
		return nil, fmt.Errorf("LoadIdentities: %v", diags)
	}
	return &demoEnv{cat: cat, cfg: cfg, ids: ids, policies: map[string]rewrite.Policy{}}, nil
}

// with returns the environment of configs/demo.hcl followed by extra (a
// case's section config), loaded once per text.
func (e *demoEnv) with(t testing.TB, extra string) *demoEnv {
	t.Helper()
	extraEnvs.Lock()
	defer extraEnvs.Unlock()
	if x := extraEnvs.m[extra]; x != nil {
		return x
	}
	demo, err := os.ReadFile("../configs/demo.hcl")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "demo.hcl")
	if err := os.WriteFile(path, append(demo, "\n"+extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	x, err := loadEnvFrom(e.cat, path)
	if err != nil {
		t.Fatal(err)
	}
	if extraEnvs.m == nil {
		extraEnvs.m = map[string]*demoEnv{}
	}
	extraEnvs.m[extra] = x
	return x
}

// extraEnvs are the environments demoEnv.with loaded.
var extraEnvs struct {
	sync.Mutex
	m map[string]*demoEnv
}

// policy returns login's compiled policy.
func (e *demoEnv) policy(t testing.TB, login string) rewrite.Policy {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.policies[login]; p != nil {
		return p
	}
	p, err := e.cfg.Compile(login, e.ids)
	if err != nil {
		t.Fatalf("compile %s: %v", login, err)
	}
	e.policies[login] = p
	return p
}

// ---------------------------------------------------------------------------
// Running outputs upstream.

// upstream runs rewritten texts on the demo database as pgveil_svc.
type upstream struct {
	conn *pgconn.PgConn
}

func newUpstream(t *testing.T) *upstream {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return &upstream{conn: conn}
}

// run executes res.SQL in a transaction as the service account with the
// pinned search_path, rolls it back, and describes the outcome: the
// command tags, or the error. The transaction is read-only unless the text
// writes and holds no transaction statement (which could commit).
func (u *upstream) run(t *testing.T, res *rewrite.Result) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	writes, unsafe := false, false
	for _, k := range res.Kinds {
		switch k {
		case "insert", "update", "delete":
			writes = true
		case "transaction", "copy":
			unsafe = true
		}
	}
	mode := "READ ONLY"
	if writes && !unsafe {
		mode = "READ WRITE"
	}
	setup := "BEGIN " + mode + "; SET LOCAL ROLE pgveil_svc; SET LOCAL search_path = public"
	if _, err := u.conn.Exec(ctx, setup).ReadAll(); err != nil {
		t.Fatalf("upstream setup: %v", err)
	}
	defer func() {
		if _, err := u.conn.Exec(context.Background(), "ROLLBACK").ReadAll(); err != nil {
			t.Fatalf("upstream rollback: %v", err)
		}
		if _, err := u.conn.Exec(context.Background(), "DISCARD ALL").ReadAll(); err != nil {
			t.Fatalf("upstream discard: %v", err)
		}
	}()
	isCopy := false
	for _, k := range res.Kinds {
		isCopy = isCopy || k == "copy"
	}
	if isCopy {
		if len(res.Kinds) != 1 {
			return "skipped: COPY in a multi-statement text"
		}
		if tree, err := pg_query.Parse(res.SQL); err == nil && tree.Stmts[0].Stmt.GetCopyStmt().GetIsFrom() {
			tag, err := u.conn.CopyFrom(ctx, strings.NewReader(""), res.SQL)
			if err != nil {
				return describeErr(err)
			}
			return "ok: " + tag.String()
		}
		tag, err := u.conn.CopyTo(ctx, io.Discard, res.SQL)
		if err != nil {
			return describeErr(err)
		}
		return "ok: " + tag.String()
	}
	results, err := u.conn.Exec(ctx, res.SQL).ReadAll()
	var tags []string
	for _, r := range results {
		if r.Err != nil {
			return describeErr(r.Err)
		}
		tags = append(tags, r.CommandTag.String())
	}
	if err != nil {
		return describeErr(err)
	}
	return "ok: " + strings.Join(tags, "; ")
}

func describeErr(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Sprintf("ERROR %s: %s", pe.Code, pe.Message)
	}
	return "ERROR: " + err.Error()
}

// ---------------------------------------------------------------------------
// txtar: "-- name --" lines start sections; text before the first one is a
// comment.

type txtarFile struct {
	comment  []byte
	sections []txtarSection
}

type txtarSection struct {
	name string
	data []byte
}

func parseTxtar(b []byte) (*txtarFile, error) {
	ar := &txtarFile{}
	cur := -1
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i+1], b[i+1:]
		} else {
			line, b = b, nil
		}
		if name, ok := txtarMarker(line); ok {
			for _, s := range ar.sections {
				if s.name == name {
					return nil, fmt.Errorf("section %q appears twice", name)
				}
			}
			ar.sections = append(ar.sections, txtarSection{name: name})
			cur = len(ar.sections) - 1
			continue
		}
		if cur < 0 {
			ar.comment = append(ar.comment, line...)
		} else {
			ar.sections[cur].data = append(ar.sections[cur].data, line...)
		}
	}
	return ar, nil
}

func txtarMarker(line []byte) (string, bool) {
	s := strings.TrimRight(string(line), "\r\n")
	if !strings.HasPrefix(s, "-- ") || !strings.HasSuffix(s, " --") || len(s) < 7 {
		return "", false
	}
	return strings.TrimSpace(s[3 : len(s)-3]), true
}

func (ar *txtarFile) has(name string) bool {
	for _, s := range ar.sections {
		if s.name == name {
			return true
		}
	}
	return false
}

func (ar *txtarFile) get(name string) string {
	for _, s := range ar.sections {
		if s.name == name {
			return string(s.data)
		}
	}
	return ""
}

// set replaces section name, or appends it.
func (ar *txtarFile) set(name, val string) {
	data := []byte(strings.TrimSpace(val) + "\n")
	for i := range ar.sections {
		if ar.sections[i].name == name {
			ar.sections[i].data = data
			return
		}
	}
	ar.sections = append(ar.sections, txtarSection{name: name, data: data})
}

func (ar *txtarFile) format() []byte {
	var out bytes.Buffer
	out.Write(ar.comment)
	for _, s := range ar.sections {
		fmt.Fprintf(&out, "-- %s --\n", s.name)
		out.Write(s.data)
		if len(s.data) > 0 && s.data[len(s.data)-1] != '\n' {
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}

// ---------------------------------------------------------------------------
// The output verifier, shared with FuzzRewrite.

// verifyOutput parses sql (a text Rewrite returned) and reports every
// relation reference that reads governed or denied data other than
// through the rewriter's own subquery:
//
//	(SELECT [rel.tableoid AS pgveil_tableoid, rel.ctid AS pgveil_ctid,]
//	        <the relation's columns, masked as the policy says>
//	 FROM schema.rel WHERE <the policy's filter> [AND <rel.col op const>…]
//	 OFFSET 0) alias
//
// where every column of the relation, in the targets, masks, filter and
// comparisons, is qualified by rel (as is the filter of a direct read or
// write by its FROM item's name): bare, a column renamed upstream would
// resolve to one of the client's enclosing query.
//
// Inside such a subquery the filter is checked to be exactly the policy's
// (it may read tables the user may not, e.g. public.team_surveys, or
// governed ones unwrapped, e.g. public.teams for paul) and the extra
// conjuncts to be comparisons of a visible column with a constant or a
// parameter. The row-identity form is accepted only where UPDATE and
// DELETE on a governed target find their rows:
//
//	WHERE (tableoid, ctid) IN (SELECT a.pgveil_tableoid, a.pgveil_ctid
//	                           FROM (<subquery>) a [WHERE <user's where>])
//
// and such writes must be allowed to the user, read no masked column in
// SET or RETURNING and set no column the scope reads; INSERT into a
// governed target needs a policy without filter. pg_catalog.pg_class is
// wrapped by the firewall itself, its statistics columns masked.
//
// Names resolve as in PostgreSQL: a CTE in scope first, then pg_catalog
// and the catalog's search path.
func verifyOutput(sql string, cat *rewrite.Catalog, pol rewrite.Policy) []string {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return []string{"output does not parse: " + err.Error()}
	}
	v := &verifier{cat: cat, pol: pol, direct: map[*pg_query.RangeVar]bool{}, policyConds: map[*pg_query.Node]bool{}}
	for _, raw := range tree.Stmts {
		if sel := raw.Stmt.GetSelectStmt(); sel != nil {
			v.directRead(sel)
		}
		v.node(raw.Stmt)
	}
	return v.problems
}

type verifier struct {
	cat      *rewrite.Catalog
	pol      rewrite.Policy
	ctes     []map[string]bool
	problems []string
	// direct holds the FROM items directRead found governed relations
	// may be read through directly.
	direct map[*pg_query.RangeVar]bool
	// policyConds holds the conjuncts of a direct read's WHERE that are
	// the policy's filter (clientConjuncts), read as the service
	// account: a follower's reads its parent, a team_subtree the teams.
	policyConds map[*pg_query.Node]bool
}

// directRead accepts the one form in which the output may read a
// governed relation outside the rewriter's subquery (rewrite/flatten.go),
// checking it on its own terms: a top-level SELECT whose only FROM item
// is the schema-qualified relation, for a user with no masked column on
// it, whose WHERE is the policy's filter followed by comparisons of a
// column with a constant through pg_catalog's operators, with no
// sublink, WITH, HAVING or locking, and whose every column reference is
// one of the relation's columns, bare or qualified by the FROM item's
// name.
func (v *verifier) directRead(sel *pg_query.SelectStmt) {
	if len(sel.FromClause) != 1 {
		return
	}
	rv := sel.FromClause[0].GetRangeVar()
	if rv == nil || rv.Schemaname == "" || rv.Catalogname != "" || rv.Alias == nil || len(rv.Alias.Colnames) > 0 {
		return
	}
	rel := v.cat.Relations[rewrite.QName{Schema: rv.Schemaname, Name: rv.Relname}]
	if rel == nil || rel.Schema == "pg_catalog" {
		return
	}
	acc := rewrite.AccessIn(v.pol, v.cat, rel)
	if acc.Mode != rewrite.Governed || len(acc.Masks) > 0 || acc.NoPushdown {
		return
	}
	if sel.Op != pg_query.SetOperation_SETOP_NONE || sel.WithClause != nil || sel.HavingClause != nil ||
		len(sel.LockingClause) > 0 || sel.IntoClause != nil {
		return
	}
	client, ok := clientConjuncts(sel.WhereClause, rel, acc, rv.Alias.Aliasname)
	if !ok {
		return
	}
	// ORDER BY the bare name of an output column reads that column.
	outputs := map[string]bool{}
	for _, t := range sel.TargetList {
		if rt := t.GetResTarget(); rt != nil && rt.Name != "" {
			outputs[rt.Name] = true
		}
	}
	sorts := map[*pg_query.SortBy]bool{}
	for _, n := range sel.SortClause {
		if cr := n.GetSortBy().GetNode().GetColumnRef(); cr != nil && len(cr.Fields) == 1 && outputs[cr.Fields[0].GetString_().GetSval()] {
			sorts[n.GetSortBy()] = true
		}
	}
	cols := columnsOf(rel)
	// The policy's filter is the policy's: only the client's part counts.
	where := sel.WhereClause
	sel.WhereClause = nil
	ok = onlyColumns(sel.ProtoReflect(), rv.Alias.Aliasname, cols, sorts, false)
	sel.WhereClause = where
	for _, c := range client {
		ok = ok && onlyColumns(c.ProtoReflect(), rv.Alias.Aliasname, cols, nil, false)
	}
	if ok {
		v.direct[rv] = true
		if conds := andArgs(where); len(conds) > len(client) {
			for _, c := range conds[:len(conds)-len(client)] {
				v.policyConds[c] = true
			}
		}
	}
}

// clientConjuncts checks that the WHERE of a direct read or write of rel,
// known as alias, is the policy's filter followed by comparisons of a
// column with a constant through pg_catalog's operators, every column
// qualified by alias, and returns those.
func clientConjuncts(where *pg_query.Node, rel *rewrite.Relation, acc rewrite.Access, alias string) ([]*pg_query.Node, bool) {
	var have, need []*pg_query.Node
	if where != nil {
		have = andArgs(where)
	}
	if acc.Filter != nil {
		need = andArgs(qualifiedExpr(acc.Filter, alias))
	}
	if len(have) < len(need) {
		return nil, false
	}
	for i := range need {
		if exprSQL(have[i]) != exprSQL(need[i]) {
			return nil, false
		}
	}
	for _, c := range have[len(need):] {
		if pushedProblem(c, rel, acc, alias) != "" || hasParam(c) {
			return nil, false
		}
	}
	return have[len(need):], true
}

// columnsOf returns the names of rel's columns.
func columnsOf(rel *rewrite.Relation) map[string]bool {
	cols := map[string]bool{}
	for _, c := range rel.Columns {
		cols[c.Name] = true
	}
	return cols
}

// onlyColumns reports whether m holds no sublink (and, with noParams, no
// parameter) and names no column but cols, bare or qualified by alias;
// the ORDER BY items of skip are not looked into.
func onlyColumns(m protoreflect.Message, alias string, cols map[string]bool, skip map[*pg_query.SortBy]bool, noParams bool) bool {
	ok := true
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		switch x := m.Interface().(type) {
		case *pg_query.SortBy:
			if skip[x] {
				return
			}
		case *pg_query.SubLink:
			ok = false
			return
		case *pg_query.ParamRef:
			ok = ok && !noParams
			return
		case *pg_query.ColumnRef:
			var names []string
			for _, f := range x.Fields {
				if f.GetString_() == nil {
					ok = false
					return
				}
				names = append(names, f.GetString_().Sval)
			}
			ok = ok && ((len(names) == 1 && cols[names[0]]) ||
				(len(names) == 2 && names[0] == alias && cols[names[1]]))
			return
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
			return ok
		})
	}
	walk(m)
	return ok
}

// hasParam reports whether n holds a parameter reference.
func hasParam(n *pg_query.Node) bool {
	found := false
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		if _, ok := m.Interface().(*pg_query.ParamRef); ok {
			found = true
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
			if fd.Kind() == protoreflect.MessageKind {
				if fd.IsList() {
					for i := 0; i < val.List().Len(); i++ {
						walk(val.List().Get(i).Message())
					}
				} else {
					walk(val.Message())
				}
			}
			return !found
		})
	}
	walk(n.ProtoReflect())
	return found
}

func (v *verifier) problem(format string, args ...any) {
	v.problems = append(v.problems, fmt.Sprintf(format, args...))
}

// message walks any message.
func (v *verifier) message(m protoreflect.Message) {
	switch x := m.Interface().(type) {
	case *pg_query.Node:
		v.node(x)
		return
	case *pg_query.RangeVar:
		v.rangeVar(x)
		return
	case *pg_query.SelectStmt:
		v.withScope(x.WithClause, func() { v.fields(m, "with_clause") })
		return
	case *pg_query.InsertStmt:
		v.withScope(x.WithClause, func() { v.insert(x) })
		return
	case *pg_query.UpdateStmt:
		v.withScope(x.WithClause, func() { v.update(x) })
		return
	case *pg_query.DeleteStmt:
		v.withScope(x.WithClause, func() { v.delete(x) })
		return
	case *pg_query.MergeStmt:
		v.withScope(x.WithClause, func() { v.fields(m, "with_clause") })
		return
	case *pg_query.CopyStmt:
		if x.Relation != nil && x.IsFrom {
			v.writeTarget(rewrite.KindInsert, x.Relation)
			v.fields(m, "relation")
			return
		}
	case *pg_query.LockingClause:
		// FOR UPDATE OF names FROM items by their alias, not relations.
		for _, r := range x.LockedRels {
			if r.GetRangeVar() == nil {
				v.problem("FOR … OF lists a %T", r.Node)
			}
		}
		return
	case *pg_query.RangeSubselect:
		if rel, ok := v.wrapper(x, false); ok || rel != nil {
			return
		}
	}
	v.fields(m, "")
}

func (v *verifier) node(n *pg_query.Node) {
	if n == nil || n.Node == nil || v.policyConds[n] {
		return
	}
	// NOTE: the Node wrapper's one set field is the node itself.
	v.fields(n.ProtoReflect(), "")
}

func (v *verifier) nodes(ns []*pg_query.Node) {
	for _, n := range ns {
		v.node(n)
	}
}

// fields walks every message field of m but those named in skip.
func (v *verifier) fields(m protoreflect.Message, skip ...protoreflect.Name) {
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind {
			return true
		}
		for _, s := range skip {
			if fd.Name() == s {
				return true
			}
		}
		if fd.IsList() {
			l := val.List()
			for i := 0; i < l.Len(); i++ {
				v.message(l.Get(i).Message())
			}
			return true
		}
		v.message(val.Message())
		return true
	})
}

// withScope walks the CTEs of wc and then body with their names visible,
// as PostgreSQL scopes them.
func (v *verifier) withScope(wc *pg_query.WithClause, body func()) {
	if wc == nil {
		body()
		return
	}
	frame := map[string]bool{}
	v.ctes = append(v.ctes, frame)
	defer func() { v.ctes = v.ctes[:len(v.ctes)-1] }()
	if wc.Recursive {
		for _, c := range wc.Ctes {
			frame[c.GetCommonTableExpr().GetCtename()] = true
		}
	}
	for _, c := range wc.Ctes {
		if cte := c.GetCommonTableExpr(); cte != nil {
			v.fields(cte.ProtoReflect())
			frame[cte.Ctename] = true
		}
	}
	body()
}

func (v *verifier) isCTE(name string) bool {
	for i := len(v.ctes) - 1; i >= 0; i-- {
		if v.ctes[i][name] {
			return true
		}
	}
	return false
}

// lookup resolves a relation name; nil for a CTE (when ctes). unknown
// reports a name that is neither.
func (v *verifier) lookup(rv *pg_query.RangeVar, ctes bool) (rel *rewrite.Relation, unknown bool) {
	if rv.Schemaname != "" {
		rel = v.cat.Relations[rewrite.QName{Schema: rv.Schemaname, Name: rv.Relname}]
		return rel, rel == nil
	}
	if ctes && v.isCTE(rv.Relname) {
		return nil, false
	}
	path := v.cat.SearchPath
	hasCatalog := false
	for _, s := range path {
		hasCatalog = hasCatalog || s == "pg_catalog"
	}
	if !hasCatalog {
		path = append([]string{"pg_catalog"}, path...)
	}
	for _, s := range path {
		if rel := v.cat.Relations[rewrite.QName{Schema: s, Name: rv.Relname}]; rel != nil {
			return rel, false
		}
	}
	return nil, true
}

// catalogDenied lists the catalog relations the firewall itself denies
// (rewrite/relations.tsv).
func catalogDenied(name string) bool {
	switch name {
	case "pg_stats", "pg_stats_ext", "pg_stats_ext_exprs", "pg_statistic", "pg_statistic_ext_data",
		"pg_locks", "pg_prepared_xacts", "pg_largeobject", "pg_largeobject_metadata", "pg_file_settings",
		"pg_hba_file_rules", "pg_ident_file_rules", "pg_authid", "pg_shadow", "pg_user_mappings":
		return true
	}
	return strings.HasPrefix(name, "pg_stat_") || strings.HasPrefix(name, "pg_statio_")
}

// pgClassStats are the pg_class columns that estimate the size of
// relations, and the file node: the firewall masks them.
var pgClassStats = map[string]bool{"reltuples": true, "relpages": true, "relallvisible": true, "relfilenode": true}

func isPgClass(rel *rewrite.Relation) bool {
	return rel.Schema == "pg_catalog" && rel.Name == "pg_class"
}

// statTableViews are the per-table statistics views the firewall serves
// with every column but statTableKeys NULL.
var statTableViews = map[string]bool{
	"pg_stat_all_tables": true, "pg_stat_user_tables": true, "pg_stat_sys_tables": true,
	"pg_statio_all_tables": true, "pg_statio_user_tables": true, "pg_statio_sys_tables": true,
}

// statTableKeys are the columns of statTableViews that only name a table.
var statTableKeys = map[string]bool{"relid": true, "schemaname": true, "relname": true}

func isStatTableView(rel *rewrite.Relation) bool {
	return rel.Schema == "pg_catalog" && statTableViews[rel.Name]
}

// access is how the output may read rel: pg_class and the statistics
// views of statTableViews through the firewall's wrapper (Governed, masks
// checked by wrapper), denied catalog relations never, the rest as the
// policy says.
func (v *verifier) access(rel *rewrite.Relation) rewrite.Access {
	if isPgClass(rel) {
		return rewrite.Access{Mode: rewrite.Governed}
	}
	if isStatTableView(rel) {
		masks := map[string]*pg_query.Node{}
		for _, col := range rel.Columns {
			if !statTableKeys[col.Name] {
				masks[col.Name] = nil
			}
		}
		return rewrite.Access{Mode: rewrite.Governed, Masks: masks}
	}
	if (rel.Schema == "pg_catalog" || rel.Schema == "information_schema") && catalogDenied(rel.Name) {
		return rewrite.Access{Mode: rewrite.Denied}
	}
	return rewrite.AccessIn(v.pol, v.cat, rel)
}

// rangeVar checks a relation reference outside any rewriter subquery.
func (v *verifier) rangeVar(rv *pg_query.RangeVar) {
	if v.direct[rv] {
		return
	}
	if rv.Catalogname != "" {
		v.problem("reference to another database: %s.%s.%s", rv.Catalogname, rv.Schemaname, rv.Relname)
		return
	}
	rel, unknown := v.lookup(rv, true)
	if unknown {
		v.problem("reference to a relation missing from the catalog: %s", rangeVarName(rv))
		return
	}
	if rel == nil {
		return // a CTE
	}
	switch v.access(rel).Mode {
	case rewrite.Governed:
		v.problem("the governed relation %s is read outside the rewriter's subquery (as %s)", rel.QName, rangeVarName(rv))
	case rewrite.Denied:
		v.problem("the denied relation %s is read (as %s)", rel.QName, rangeVarName(rv))
	}
}

func rangeVarName(rv *pg_query.RangeVar) string {
	if rv.Schemaname != "" {
		return rv.Schemaname + "." + rv.Relname
	}
	return rv.Relname
}

// wrapper checks whether rs is the rewriter's subquery around a governed
// relation (with the row identity columns first when rowID) and returns
// that relation. ok false with a relation means it has the shape but not
// the right content (already reported); rel nil means an ordinary
// subquery to walk.
//
// For a relation whose policy says NoPushdown the subquery must stand
// behind the planner's statistics fence (rewrite/subst.go, fenced):
//
//	(<subquery without OFFSET 0> UNION ALL <the same, WHERE false>
//	 OFFSET 0) alias
func (v *verifier) wrapper(rs *pg_query.RangeSubselect, rowID bool) (rel *rewrite.Relation, ok bool) {
	s := rs.GetSubquery().GetSelectStmt()
	if s == nil {
		return nil, false
	}
	off := s.LimitOffset.GetAConst()
	if off == nil || off.GetIval() == nil || off.GetIval().Ival != 0 {
		return nil, false
	}
	if s.Op == pg_query.SetOperation_SETOP_UNION {
		return v.fencedWrapper(rs, s, rowID)
	}
	if len(s.FromClause) != 1 {
		return nil, false
	}
	rel, ok = v.arm(rs, s, rowID)
	if rel != nil && v.access(rel).NoPushdown {
		v.problem("the subquery around %s, whose policy says pushdown = false, is not behind the statistics fence", rel.QName)
		return rel, false
	}
	return rel, ok
}

// fencedWrapper checks s, a UNION with OFFSET 0, as the statistics fence
// around the rewriter's subquery (see wrapper); rel nil means an ordinary
// subquery to walk.
func (v *verifier) fencedWrapper(rs *pg_query.RangeSubselect, s *pg_query.SelectStmt, rowID bool) (rel *rewrite.Relation, ok bool) {
	if !s.All || s.Larg == nil || s.Rarg == nil || s.Larg.Op != pg_query.SetOperation_SETOP_NONE || len(s.Larg.FromClause) != 1 {
		return nil, false
	}
	// The first arm must be the rewriter's subquery, OFFSET 0 aside.
	first := proto.Clone(s.Larg).(*pg_query.SelectStmt)
	if first.LimitOffset != nil {
		return nil, false
	}
	first.LimitOffset = s.LimitOffset
	first.LimitOption = s.LimitOption
	rel, ok = v.arm(rs, first, rowID)
	if rel == nil {
		return nil, false
	}
	n := len(v.problems)
	if s.WithClause != nil || s.LimitCount != nil || len(s.SortClause) > 0 || len(s.LockingClause) > 0 || s.IntoClause != nil {
		v.problem("the statistics fence around %s has clauses the rewriter never writes", rel.QName)
	}
	// The second arm is the first with WHERE false: it reads no row.
	empty := proto.Clone(s.Larg).(*pg_query.SelectStmt)
	empty.WhereClause = &pg_query.Node{Node: &pg_query.Node_AConst{AConst: &pg_query.A_Const{
		Val: &pg_query.A_Const_Boolval{Boolval: &pg_query.Boolean{Boolval: false}}}}}
	if deparseSelect(empty) != deparseSelect(s.Rarg) {
		v.problem("the second arm of the statistics fence around %s is not the first with WHERE false: %s", rel.QName, deparseSelect(s.Rarg))
	}
	return rel, ok && len(v.problems) == n
}

// arm checks s, the SELECT of rs, as the rewriter's subquery around a
// governed relation (see wrapper), the statistics fence aside.
func (v *verifier) arm(rs *pg_query.RangeSubselect, s *pg_query.SelectStmt, rowID bool) (rel *rewrite.Relation, ok bool) {
	rv := s.FromClause[0].GetRangeVar()
	if rv == nil || rv.Schemaname == "" || rv.Catalogname != "" || rv.Alias != nil {
		return nil, false
	}
	rel = v.cat.Relations[rewrite.QName{Schema: rv.Schemaname, Name: rv.Relname}]
	if rel == nil {
		return nil, false
	}
	acc := v.access(rel)
	if acc.Mode != rewrite.Governed {
		return nil, false
	}
	// From here on this has the rewriter's shape around a governed table:
	// everything else must be exactly what the policy says.
	n := len(v.problems)
	if s.WithClause != nil || s.LimitCount != nil || len(s.GroupClause) > 0 || s.HavingClause != nil ||
		len(s.DistinctClause) > 0 || len(s.WindowClause) > 0 || len(s.SortClause) > 0 || len(s.LockingClause) > 0 ||
		s.Op != pg_query.SetOperation_SETOP_NONE || s.IntoClause != nil || len(s.ValuesLists) > 0 {
		v.problem("a subquery around %s has clauses the rewriter never writes", rel.QName)
		return rel, false
	}
	if rs.Alias == nil {
		v.problem("the subquery around %s has no alias", rel.QName)
	}
	// Every column of the relation is qualified by its name, which only
	// the subquery's own FROM item answers to: a column the table no
	// longer has is then an error, never one of the client's query.
	q := rv.Relname
	tl := s.TargetList
	if rowID {
		want := targetsSQL([]*pg_query.Node{target("pgveil_tableoid", qualRef(q, "tableoid")), target("pgveil_ctid", qualRef(q, "ctid"))})
		if len(tl) < 2 || targetsSQL(tl[:2]) != want {
			v.problem("the row-identity subquery around %s does not start with %s", rel.QName, want)
			return rel, false
		}
		tl = tl[2:]
	}
	if isPgClass(rel) {
		v.pgClassTargets(tl, rel, q)
	} else if isStatTableView(rel) {
		// Every column but the table's name and oid NULL, cast to its
		// type: what policyTargets checks for these masks.
		v.policyTargets(tl, rel, acc, q)
	} else {
		v.policyTargets(tl, rel, acc, q)
	}
	// Filter: the policy's conjuncts, then pushed comparisons.
	var have []*pg_query.Node
	if s.WhereClause != nil {
		have = andArgs(s.WhereClause)
	}
	var need []*pg_query.Node
	if acc.Filter != nil {
		need = andArgs(qualifiedExpr(acc.Filter, q))
	}
	if len(have) < len(need) {
		v.problem("the subquery around %s lacks the policy filter: WHERE %s, want %s", rel.QName, exprSQL(s.WhereClause), exprSQL(qualifiedExpr(acc.Filter, q)))
		return rel, false
	}
	for i := range need {
		if g, w := exprSQL(have[i]), exprSQL(need[i]); g != w {
			v.problem("the subquery around %s filters with %s where the policy says %s", rel.QName, g, w)
		}
	}
	// An UPDATE's or DELETE's row-identity subquery takes the same
	// pushed comparisons as a SELECT's.
	for _, c := range have[len(need):] {
		if why := pushedProblem(c, rel, acc, q); why != "" {
			v.problem("the subquery around %s has the extra condition %s: %s", rel.QName, exprSQL(c), why)
		}
	}
	return rel, len(v.problems) == n
}

// policyTargets checks that tl lists rel's columns in order, qualified
// by q, the masked ones replaced by their mask (its columns qualified by
// q) cast to the column's type, or to the one Access.MaskTypes names.
func (v *verifier) policyTargets(tl []*pg_query.Node, rel *rewrite.Relation, acc rewrite.Access, q string) {
	want := make([]*pg_query.Node, 0, len(rel.Columns))
	for _, col := range rel.Columns {
		mask, masked := acc.Masks[col.Name]
		if !masked {
			want = append(want, target("", qualRef(q, col.Name)))
			continue
		}
		if mask == nil {
			mask = &pg_query.Node{Node: &pg_query.Node_AConst{AConst: &pg_query.A_Const{Isnull: true}}}
		} else {
			mask = qualifiedExpr(mask, q)
		}
		typ := col.TypeName
		if t := acc.MaskTypes[col.Name]; t != nil {
			typ = t // a hash pseudonym's type (Access.MaskTypes)
		}
		want = append(want, target(col.Name, &pg_query.Node{Node: &pg_query.Node_TypeCast{TypeCast: &pg_query.TypeCast{
			Arg: mask, TypeName: typ}}}))
	}
	if got, exp := targetsSQL(tl), targetsSQL(want); got != exp {
		v.problem("the columns of the subquery around %s are\n  %s\nwant\n  %s", rel.QName, got, exp)
	}
}

// pgClassTargets checks the firewall's own view of pg_class: every column
// in order, the statistics columns replaced by a CASE on relnamespace
// alone whose ELSE is a constant, cast back to the column's type; and
// xmin after them, for a statement that reads it. Every column is
// qualified by q.
func (v *verifier) pgClassTargets(tl []*pg_query.Node, rel *rewrite.Relation, q string) {
	if n := len(tl); n == len(rel.Columns)+1 && targetsSQL(tl[n-1:]) == targetsSQL([]*pg_query.Node{target("", qualRef(q, "xmin"))}) {
		tl = tl[:n-1]
	}
	if len(tl) != len(rel.Columns) {
		v.problem("the subquery around pg_class has %d columns, want %d", len(tl), len(rel.Columns))
		return
	}
	for i, col := range rel.Columns {
		rt := tl[i].GetResTarget()
		if !pgClassStats[col.Name] {
			if targetsSQL(tl[i:i+1]) != targetsSQL([]*pg_query.Node{target("", qualRef(q, col.Name))}) {
				v.problem("pg_class column %d is %s, want %s", i, targetsSQL(tl[i:i+1]), col.Name)
			}
			continue
		}
		tc := rt.GetVal().GetTypeCast()
		ce := tc.GetArg().GetCaseExpr()
		if rt.GetName() != col.Name || ce == nil || ce.Arg != nil || ce.Defresult.GetAConst() == nil {
			v.problem("pg_class.%s is not masked: %s", col.Name, targetsSQL(tl[i:i+1]))
			continue
		}
		for _, w := range ce.Args {
			cw := w.GetCaseWhen()
			ok := cw != nil
			if ok {
				visitColumnRefs(cw.Expr, func(cr *pg_query.ColumnRef) {
					ok = ok && len(cr.Fields) == 2 && cr.Fields[0].GetString_().GetSval() == q &&
						cr.Fields[1].GetString_().GetSval() == "relnamespace"
				})
			}
			if !ok {
				v.problem("pg_class.%s is masked with a condition on more than relnamespace: %s", col.Name, targetsSQL(tl[i:i+1]))
			}
		}
	}
}

// pushedProblem explains why c is not a comparison the rewriter may copy
// into a subquery, or returns "": its column must be qualified by q, the
// name of the FROM item reading rel.
func pushedProblem(c *pg_query.Node, rel *rewrite.Relation, acc rewrite.Access, q string) string {
	if be := c.GetBoolExpr(); be != nil {
		// An IN list's copy: equalities of one column, ORed.
		if be.Boolop != pg_query.BoolExprType_OR_EXPR || len(be.Args) < 2 {
			return "not an OR of equalities"
		}
		col := ""
		for _, a := range be.Args {
			e := a.GetAExpr()
			if e == nil || len(e.Name) != 2 || e.Name[1].GetString_().GetSval() != "=" {
				return "an OR arm that is not an equality"
			}
			if why := pushedProblem(a, rel, acc, q); why != "" {
				return "an OR arm: " + why
			}
			name := exprSQL(e.Lexpr)
			if e.Lexpr.GetColumnRef() == nil {
				name = exprSQL(e.Rexpr)
			}
			if col != "" && name != col {
				return "an OR of equalities of different columns"
			}
			col = name
		}
		return ""
	}
	e := c.GetAExpr()
	if e == nil || e.Kind != pg_query.A_Expr_Kind_AEXPR_OP || len(e.Name) != 2 ||
		e.Name[0].GetString_().GetSval() != "pg_catalog" {
		return "not an OPERATOR(pg_catalog.…)"
	}
	switch e.Name[1].GetString_().GetSval() {
	case "=", "<", ">", "<=", ">=", "<>":
	default:
		return "not a comparison"
	}
	col, other := e.Lexpr, e.Rexpr
	if col.GetColumnRef() == nil {
		col, other = other, col
	}
	cr := col.GetColumnRef()
	if cr == nil || len(cr.Fields) != 2 || cr.Fields[0].GetString_().GetSval() != q || cr.Fields[1].GetString_() == nil {
		return "no column qualified by " + q
	}
	if tc := other.GetTypeCast(); tc != nil && tc.Arg.GetParamRef() != nil && len(tc.TypeName.GetNames()) == 2 &&
		tc.TypeName.Names[0].GetString_().GetSval() == "pg_catalog" && len(tc.TypeName.ArrayBounds) == 0 {
		other = tc.Arg
	} else if other.GetParamRef() != nil {
		return "a parameter not cast to the column's type"
	}
	if !(other.GetParamRef() != nil || (other.GetAConst() != nil && !other.GetAConst().Isnull)) {
		return "not compared with a constant or a parameter"
	}
	name := cr.Fields[1].GetString_().Sval
	if _, masked := acc.Masks[name]; masked {
		return "the column " + name + " is masked"
	}
	for _, rc := range rel.Columns {
		if rc.Name == name {
			return ""
		}
	}
	return "no column " + name
}

// writeTarget checks the target of a write and returns it with its
// access when it is governed (nil otherwise).
func (v *verifier) writeTarget(k rewrite.StatementKind, rv *pg_query.RangeVar) (*rewrite.Relation, rewrite.Access) {
	if rv.Catalogname != "" {
		v.problem("write to another database: %s", rv.Catalogname)
		return nil, rewrite.Access{}
	}
	// NOTE: the target of a write is always a table, never a CTE.
	rel, unknown := v.lookup(rv, false)
	if unknown || rel == nil {
		v.problem("write to a relation missing from the catalog: %s", rangeVarName(rv))
		return nil, rewrite.Access{}
	}
	acc := v.access(rel)
	if ok, _ := v.pol.AllowStatement(k); !ok {
		v.problem("%s on %s, which the user may not run", k, rel.QName)
	}
	switch acc.Mode {
	case rewrite.Denied:
		v.problem("%s on the denied relation %s", k, rel.QName)
	case rewrite.Governed:
		return rel, acc
	}
	return nil, acc
}

func aliasOf(rv *pg_query.RangeVar) string {
	if rv.Alias != nil {
		return rv.Alias.Aliasname
	}
	return rv.Relname
}

func (v *verifier) insert(x *pg_query.InsertStmt) {
	rel, acc := v.writeTarget(rewrite.KindInsert, x.Relation)
	if rel != nil {
		if acc.Filter != nil {
			v.problem("INSERT into %s under a row scope", rel.QName)
		}
		if x.OnConflictClause != nil {
			v.problem("INSERT … ON CONFLICT into the governed %s", rel.QName)
		}
		v.readsMasked(x.ReturningList, aliasOf(x.Relation), rel, acc, "RETURNING")
	}
	v.fields(x.ProtoReflect(), "with_clause", "relation")
}

func (v *verifier) delete(x *pg_query.DeleteStmt) {
	rel, acc := v.writeTarget(rewrite.KindDelete, x.Relation)
	if rel == nil {
		v.fields(x.ProtoReflect(), "with_clause", "relation")
		return
	}
	if len(x.UsingClause) > 0 {
		v.problem("DELETE … USING on the governed %s", rel.QName)
	}
	v.readsMasked(x.ReturningList, aliasOf(x.Relation), rel, acc, "RETURNING")
	if !v.directWrite(x.Relation, rel, acc, x.WhereClause, x.WithClause, x.ReturningList) {
		v.scopedWhere(x.WhereClause, aliasOf(x.Relation), rel)
	}
	v.nodes(x.UsingClause)
	v.nodes(x.ReturningList)
}

func (v *verifier) update(x *pg_query.UpdateStmt) {
	rel, acc := v.writeTarget(rewrite.KindUpdate, x.Relation)
	if rel == nil {
		v.fields(x.ProtoReflect(), "with_clause", "relation")
		return
	}
	if len(x.FromClause) > 0 {
		v.problem("UPDATE … FROM on the governed %s", rel.QName)
	}
	scope := map[string]bool{}
	if acc.Filter != nil {
		visitColumnRefs(acc.Filter, func(cr *pg_query.ColumnRef) {
			if len(cr.Fields) == 1 {
				scope[cr.Fields[0].GetString_().GetSval()] = true
			}
		})
	}
	var values []*pg_query.Node
	for _, t := range x.TargetList {
		rt := t.GetResTarget()
		if rt == nil {
			v.problem("UPDATE of %s with a SET item %T", rel.QName, t.Node)
			continue
		}
		if scope[rt.Name] {
			v.problem("UPDATE sets %s.%s, which the row scope reads", rel.QName, rt.Name)
		}
		values = append(values, rt.Val)
	}
	alias := aliasOf(x.Relation)
	v.readsMasked(values, alias, rel, acc, "SET")
	v.readsMasked(x.ReturningList, alias, rel, acc, "RETURNING")
	if !v.directWrite(x.Relation, rel, acc, x.WhereClause, x.WithClause, append(values, x.ReturningList...)) {
		v.scopedWhere(x.WhereClause, alias, rel)
	}
	v.nodes(x.TargetList)
	v.nodes(x.FromClause)
	v.nodes(x.ReturningList)
}

// directWrite accepts the one form in which an UPDATE or DELETE on the
// governed rel may find its rows other than through the row-identity
// subquery (rewrite/flatten.go), checking it on its own terms: the
// target schema qualified and aliased, for a user with no masked column
// on it, no WITH, a WHERE that is the policy's filter followed by
// comparisons of a column with a constant through pg_catalog's
// operators, and SET values and RETURNING (exprs) with no sublink and no
// parameter, whose every column reference is one of the relation's
// columns, bare or qualified by the alias.
func (v *verifier) directWrite(rv *pg_query.RangeVar, rel *rewrite.Relation, acc rewrite.Access, where *pg_query.Node, with *pg_query.WithClause, exprs []*pg_query.Node) bool {
	if rv.Schemaname != rel.Schema || rv.Alias == nil || len(rv.Alias.Colnames) > 0 || with != nil ||
		rel.Schema == "pg_catalog" || len(acc.Masks) > 0 || acc.NoPushdown {
		return false
	}
	client, ok := clientConjuncts(where, rel, acc, rv.Alias.Aliasname)
	if !ok {
		return false
	}
	cols := columnsOf(rel)
	for _, e := range append(exprs, client...) {
		ok = ok && onlyColumns(e.ProtoReflect(), rv.Alias.Aliasname, cols, nil, true)
	}
	return ok
}

// scopedWhere checks the WHERE of an UPDATE or DELETE on the governed rel:
// (tableoid, ctid) IN (SELECT alias.pgveil_tableoid, alias.pgveil_ctid
// FROM (<row-identity subquery>) alias [WHERE …]).
func (v *verifier) scopedWhere(where *pg_query.Node, alias string, rel *rewrite.Relation) {
	sl := where.GetSubLink()
	row := sl.GetTestexpr().GetRowExpr()
	keys := sl.GetSubselect().GetSelectStmt()
	shape := sl != nil && sl.SubLinkType == pg_query.SubLinkType_ANY_SUBLINK && len(sl.OperName) == 0 &&
		row != nil && len(row.Args) == 2 && keys != nil && len(keys.FromClause) == 1 &&
		keys.WithClause == nil && keys.Op == pg_query.SetOperation_SETOP_NONE && keys.LimitCount == nil &&
		keys.LimitOffset == nil && len(keys.GroupClause) == 0 && keys.HavingClause == nil &&
		len(keys.DistinctClause) == 0 && len(keys.LockingClause) == 0
	if shape {
		shape = targetsSQL(row.Args) == targetsSQL([]*pg_query.Node{colRef("tableoid"), colRef("ctid")}) &&
			targetsSQL(keys.TargetList) == targetsSQL([]*pg_query.Node{
				target("", qualRef(alias, "pgveil_tableoid")), target("", qualRef(alias, "pgveil_ctid"))})
	}
	if !shape {
		v.problem("the WHERE of the write on %s is not the scoped row-identity subquery: %s", rel.QName, exprSQL(where))
		v.node(where)
		return
	}
	rs := keys.FromClause[0].GetRangeSubselect()
	if rs == nil || rs.Alias == nil || rs.Alias.Aliasname != alias {
		v.problem("the row-identity subquery of the write on %s is not aliased %s", rel.QName, alias)
		v.node(where)
		return
	}
	got, _ := v.wrapper(rs, true)
	if got != rel {
		v.problem("the row-identity subquery of the write on %s is not the rewriter's", rel.QName)
		v.node(where)
		return
	}
	// The user's WHERE, over the masked rows.
	v.node(keys.WhereClause)
	v.nodes(keys.SortClause)
}

// readsMasked reports expressions reading a masked column of the write
// target, its whole row or *, where the real row is visible.
func (v *verifier) readsMasked(exprs []*pg_query.Node, alias string, rel *rewrite.Relation, acc rewrite.Access, clause string) {
	if len(acc.Masks) == 0 {
		return
	}
	for _, e := range exprs {
		visitColumnRefs(e, func(cr *pg_query.ColumnRef) {
			var names []string
			for _, f := range cr.Fields {
				if f.GetAStar() != nil {
					v.problem("%s of the write on %s reads *", clause, rel.QName)
					return
				}
				names = append(names, f.GetString_().GetSval())
			}
			switch {
			case len(names) == 1 && names[0] == alias:
				v.problem("%s of the write on %s reads the whole row", clause, rel.QName)
			case len(names) >= 1:
				if _, masked := acc.Masks[names[len(names)-1]]; masked {
					v.problem("%s of the write on %s reads the masked column %s", clause, rel.QName, names[len(names)-1])
				}
			}
		})
	}
}

// visitColumnRefs calls f for every ColumnRef below n.
func visitColumnRefs(n *pg_query.Node, f func(*pg_query.ColumnRef)) {
	if n == nil {
		return
	}
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		if cr, ok := m.Interface().(*pg_query.ColumnRef); ok {
			f(cr)
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
			if fd.Kind() != protoreflect.MessageKind {
				return true
			}
			if fd.IsList() {
				l := val.List()
				for i := 0; i < l.Len(); i++ {
					walk(l.Get(i).Message())
				}
				return true
			}
			walk(val.Message())
			return true
		})
	}
	walk(n.ProtoReflect())
}

func andArgs(n *pg_query.Node) []*pg_query.Node {
	if b := n.GetBoolExpr(); b != nil && b.Boolop == pg_query.BoolExprType_AND_EXPR {
		var out []*pg_query.Node
		for _, a := range b.Args {
			out = append(out, andArgs(a)...)
		}
		return out
	}
	return []*pg_query.Node{n}
}

// qualifiedExpr returns a copy of n, a policy's scope or mask, with each
// bare column reference outside its subqueries (the governed relation's
// columns: policy/decode_sqlexpr.go) written q.col; a sublink's test
// expression is qualified, its query is not.
func qualifiedExpr(n *pg_query.Node, q string) *pg_query.Node {
	n = proto.Clone(n).(*pg_query.Node)
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		switch x := m.Interface().(type) {
		case *pg_query.ColumnRef:
			if len(x.Fields) == 1 && x.Fields[0].GetString_() != nil {
				x.Fields = []*pg_query.Node{pg_query.MakeStrNode(q), x.Fields[0]}
			}
			return
		case *pg_query.SubLink:
			if x.Testexpr != nil {
				walk(x.Testexpr.ProtoReflect())
			}
			return
		case *pg_query.SelectStmt:
			return
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
	walk(n.ProtoReflect())
	return n
}

func colRef(name string) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_ColumnRef{ColumnRef: &pg_query.ColumnRef{
		Fields: []*pg_query.Node{pg_query.MakeStrNode(name)}}}}
}

func qualRef(rel, col string) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_ColumnRef{ColumnRef: &pg_query.ColumnRef{
		Fields: []*pg_query.Node{pg_query.MakeStrNode(rel), pg_query.MakeStrNode(col)}}}}
}

func target(name string, val *pg_query.Node) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Name: name, Val: val}}}
}

// targetsSQL deparses "SELECT <targets>", the canonical form the verifier
// compares.
func targetsSQL(tl []*pg_query.Node) string {
	for i, t := range tl {
		if t.GetResTarget() == nil {
			cp := append([]*pg_query.Node(nil), tl...)
			cp[i] = target("", t)
			tl = cp
		}
	}
	return deparseSelect(&pg_query.SelectStmt{TargetList: tl, LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT})
}

// exprSQL deparses an expression through "SELECT WHERE <e>".
func exprSQL(e *pg_query.Node) string {
	if e == nil {
		return "<none>"
	}
	return strings.TrimPrefix(deparseSelect(&pg_query.SelectStmt{WhereClause: e, LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT}), "SELECT WHERE ")
}

func deparseSelect(s *pg_query.SelectStmt) string {
	version, err := pg_query.Parse("SELECT")
	if err != nil {
		panic(err)
	}
	out, err := pg_query.Deparse(&pg_query.ParseResult{Version: version.Version, Stmts: []*pg_query.RawStmt{{
		Stmt: &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: s}}}}})
	if err != nil {
		return "<deparse error: " + err.Error() + ">"
	}
	return out
}

// ---------------------------------------------------------------------------
// Extra statement kinds for golden cases on writes.

// grantPolicy is a demo user's policy with more statement kinds allowed:
// the demo roles allow no write, and section grant of a golden case lets
// it exercise the rewrite of writes under a real row scope.
type grantPolicy struct {
	rewrite.Policy
	kinds map[rewrite.StatementKind]bool
}

func (g *grantPolicy) Key() string {
	var ks []string
	for k := range g.kinds {
		ks = append(ks, string(k))
	}
	sort.Strings(ks)
	return g.Policy.Key() + "+grant:" + strings.Join(ks, ",")
}

// RelationIn is the demo user's, so that a table that follows another
// is scoped by it (rewrite.CatalogPolicy), as in the proxy.
func (g *grantPolicy) RelationIn(cat *rewrite.Catalog, rel *rewrite.Relation) rewrite.Access {
	return rewrite.AccessIn(g.Policy, cat, rel)
}

func (g *grantPolicy) AllowStatement(k rewrite.StatementKind) (bool, string) {
	if g.kinds[k] {
		return true, ""
	}
	return g.Policy.AllowStatement(k)
}

// TestVerifier checks that verifyOutput is not vacuous: it accepts the
// rewriter's outputs and rejects texts that read governed data around
// them.
func TestVerifier(t *testing.T) {
	env := demoEnvironment(t)
	marie := env.policy(t, "marie")
	writer := &grantPolicy{Policy: marie, kinds: map[rewrite.StatementKind]bool{rewrite.KindUpdate: true, rewrite.KindDelete: true}}
	const cols = "responses.id, responses.survey_id, NULL::text AS contact, NULL::text AS email, responses.country, responses.branch, responses.nps, NULL::numeric(5, 2) AS score, responses.agent_login, responses.team_id, responses.tags, responses.sentiment, responses.comment, responses.submitted_at"
	// The same columns bare, as the rewriter wrote them before it qualified
	// them (a renamed column then bound to the client's outer query).
	const bare = "id, survey_id, NULL::text AS contact, NULL::text AS email, country, branch, nps, NULL::numeric(5, 2) AS score, agent_login, team_id, tags, sentiment, comment, submitted_at"
	const rid = "responses.tableoid AS pgveil_tableoid, responses.ctid AS pgveil_ctid, " + cols
	good := "(SELECT " + cols + " FROM public.responses WHERE responses.country OPERATOR(pg_catalog.=) 'France' OFFSET 0)"
	// The statistics fence of pushdown = false (subst.go, fenced).
	fence := "(SELECT " + cols + " FROM public.responses WHERE responses.country OPERATOR(pg_catalog.=) 'France' UNION ALL SELECT " + cols + " FROM public.responses WHERE false OFFSET 0)"
	nopush := subqueryOnly(marie)
	for _, tc := range []struct {
		name, sql string
		pol       rewrite.Policy
		bad       string // a substring of the first problem; "" when none
	}{
		{"the rewriter's subquery", "SELECT * FROM " + good + " r", marie, ""},
		{"with a pushed comparison", "SELECT * FROM (SELECT " + cols + " FROM public.responses WHERE responses.country OPERATOR(pg_catalog.=) 'France' AND responses.id OPERATOR(pg_catalog.=) $1::pg_catalog.int8 OFFSET 0) r", marie, ""},
		{"with a pushed comparison resolved along the search_path", "SELECT * FROM (SELECT " + cols + " FROM public.responses WHERE responses.country OPERATOR(pg_catalog.=) 'France' AND responses.id = 1 OFFSET 0) r", marie, "not an OPERATOR(pg_catalog"},
		{"with a pushed parameter of the client's type", "SELECT * FROM (SELECT " + cols + " FROM public.responses WHERE responses.country OPERATOR(pg_catalog.=) 'France' AND responses.id OPERATOR(pg_catalog.=) $1 OFFSET 0) r", marie, "not cast"},
		{"an unwrapped table", "SELECT * FROM responses", marie, "read outside the rewriter's subquery"},
		{"the statistics fence", "SELECT * FROM " + fence + " r", nopush, ""},
		{"the statistics fence, pushdown = true", "SELECT * FROM " + fence + " r", marie, ""},
		{"no statistics fence, pushdown = false", "SELECT * FROM " + good + " r", nopush, "not behind the statistics fence"},
		{"a fence whose second arm reads rows", "SELECT * FROM (SELECT " + cols + " FROM public.responses WHERE responses.country OPERATOR(pg_catalog.=) 'France' UNION ALL SELECT " + cols + " FROM public.responses WHERE true OFFSET 0) r", nopush, "not the first with WHERE false"},
		{"a fence whose second arm is another table", "SELECT * FROM (SELECT " + cols + " FROM public.responses WHERE responses.country OPERATOR(pg_catalog.=) 'France' UNION ALL SELECT " + cols + " FROM ONLY public.responses WHERE false OFFSET 0) r", nopush, "not the first with WHERE false"},
		{"a fence without the filter", "SELECT * FROM (SELECT " + cols + " FROM public.responses UNION ALL SELECT " + cols + " FROM public.responses WHERE false OFFSET 0) r", nopush, "lacks the policy filter"},
		{"a fence whose arms are not the subquery", "SELECT * FROM (SELECT 1 UNION ALL SELECT * FROM public.responses OFFSET 0) r", nopush, "read outside"},
		{"a fence with DISTINCT", "SELECT * FROM (SELECT " + cols + " FROM public.responses WHERE responses.country OPERATOR(pg_catalog.=) 'France' UNION SELECT " + cols + " FROM public.responses WHERE false OFFSET 0) r", nopush, "read outside"},
		{"an unwrapped table in a subquery", "SELECT 1 WHERE EXISTS (SELECT 1 FROM public.responses)", marie, "read outside"},
		{"an unwrapped table next to a wrapped one", "SELECT * FROM " + good + " r, responses", marie, "read outside"},
		{"a subquery without the filter", "SELECT * FROM (SELECT " + cols + " FROM public.responses OFFSET 0) r", marie, "lacks the policy filter"},
		{"a subquery with another filter", "SELECT * FROM (SELECT " + cols + " FROM public.responses WHERE responses.country OPERATOR(pg_catalog.=) 'USA' OFFSET 0) r", marie, "filters with"},
		{"a subquery with an unsafe extra condition", "SELECT * FROM (SELECT " + cols + " FROM public.responses WHERE responses.country OPERATOR(pg_catalog.=) 'France' AND responses.email OPERATOR(pg_catalog.=) 'x' OFFSET 0) r", marie, "masked"},
		{"a subquery leaking a masked column", "SELECT * FROM (SELECT " + strings.Replace(cols, "NULL::text AS email", "responses.email", 1) + " FROM public.responses WHERE responses.country OPERATOR(pg_catalog.=) 'France' OFFSET 0) r", marie, "columns of the subquery"},
		{"a subquery with bare columns", "SELECT * FROM (SELECT " + bare + " FROM public.responses WHERE responses.country OPERATOR(pg_catalog.=) 'France' OFFSET 0) r", marie, "columns of the subquery"},
		{"a subquery with a bare scope", "SELECT * FROM (SELECT " + cols + " FROM public.responses WHERE country OPERATOR(pg_catalog.=) 'France' OFFSET 0) r", marie, "filters with"},
		{"a subquery with a bare pushed comparison", "SELECT * FROM (SELECT " + cols + " FROM public.responses WHERE responses.country OPERATOR(pg_catalog.=) 'France' AND id OPERATOR(pg_catalog.=) 1 OFFSET 0) r", marie, "qualified"},
		{"a row-identity subquery with bare row identities", "DELETE FROM responses WHERE (tableoid, ctid) IN (SELECT responses.pgveil_tableoid, responses.pgveil_ctid FROM (SELECT tableoid AS pgveil_tableoid, ctid AS pgveil_ctid, " + cols + " FROM public.responses WHERE responses.country OPERATOR(pg_catalog.=) 'France' OFFSET 0) responses WHERE nps < 2)", writer, "does not start with"},
		{"a direct read with a bare scope", "SELECT code FROM public.countries c WHERE name OPERATOR(pg_catalog.=) 'France' AND c.code OPERATOR(pg_catalog.=) 'FR'", marie, "read outside"},
		{"a direct read", "SELECT code FROM public.countries c WHERE c.name OPERATOR(pg_catalog.=) 'France' AND c.code OPERATOR(pg_catalog.=) 'FR'", marie, ""},
		{"a CTE shadows the table", "WITH responses AS (SELECT 1) SELECT * FROM responses", marie, ""},
		{"a CTE does not shadow the table in its own body", "WITH responses AS (SELECT * FROM responses) SELECT * FROM responses", marie, "read outside"},
		{"a later CTE does not shadow the table in an earlier one", "WITH a AS (SELECT * FROM responses), responses AS (SELECT 1) SELECT * FROM a", marie, "read outside"},
		{"a recursive WITH sees later CTEs", "WITH RECURSIVE a AS (SELECT * FROM responses), responses AS (SELECT 1) SELECT * FROM a", marie, ""},
		{"a CTE of a subquery is not visible outside", "SELECT * FROM (WITH responses AS (SELECT 1) SELECT 1) s, responses", marie, "read outside"},
		{"a denied table", "SELECT * FROM public.employees", marie, "denied relation"},
		{"a denied catalog relation", "SELECT * FROM pg_stats", marie, "denied relation"},
		{"an unknown relation", "SELECT * FROM nosuch", marie, "missing from the catalog"},
		{"pg_class unwrapped", "SELECT reltuples FROM pg_class", marie, "read outside"},
		{"a scoped delete", "DELETE FROM responses WHERE (tableoid, ctid) IN (SELECT responses.pgveil_tableoid, responses.pgveil_ctid FROM (SELECT " + rid + " FROM public.responses WHERE responses.country OPERATOR(pg_catalog.=) 'France' OFFSET 0) responses WHERE nps < 2)", writer, ""},
		{"an unscoped delete", "DELETE FROM responses WHERE nps < 2", writer, "not the scoped row-identity subquery"},
		{"a delete the user may not run", "DELETE FROM responses WHERE (tableoid, ctid) IN (SELECT responses.pgveil_tableoid, responses.pgveil_ctid FROM (SELECT " + rid + " FROM public.responses WHERE responses.country OPERATOR(pg_catalog.=) 'France' OFFSET 0) responses)", marie, "may not run"},
		{"an update returning a masked column", "UPDATE responses SET nps = 1 WHERE (tableoid, ctid) IN (SELECT responses.pgveil_tableoid, responses.pgveil_ctid FROM (SELECT " + rid + " FROM public.responses WHERE responses.country OPERATOR(pg_catalog.=) 'France' OFFSET 0) responses) RETURNING email", writer, "masked column email"},
		{"an update of a scope column", "UPDATE responses SET country = 'USA' WHERE (tableoid, ctid) IN (SELECT responses.pgveil_tableoid, responses.pgveil_ctid FROM (SELECT " + rid + " FROM public.responses WHERE responses.country OPERATOR(pg_catalog.=) 'France' OFFSET 0) responses)", writer, "row scope reads"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems := verifyOutput(tc.sql, env.cat, tc.pol)
			switch {
			case tc.bad == "" && len(problems) > 0:
				t.Errorf("rejected: %q", problems)
			case tc.bad != "" && len(problems) == 0:
				t.Errorf("accepted, want a problem with %q", tc.bad)
			case tc.bad != "" && !strings.Contains(problems[0], tc.bad):
				t.Errorf("problems %q, want one with %q", problems, tc.bad)
			}
		})
	}
}

// checkSplice holds the engine's cold path to Rewrite's result on sql
// (res, err; upstream is what res read upstream): the same decision and
// audit, and a spliced text that is the same statement in meaning,
// reading the same rows upstream.
func checkSplice(t *testing.T, splicer *rewrite.Splicer, sql string, cat *rewrite.Catalog, pol rewrite.Policy, res *rewrite.Result, err error, up *upstream, upstream string) {
	t.Helper()
	sres, serr := splicer.Rewrite(sql, cat, pol)
	if got, want := outcome(sres, serr), outcome(res, err); (serr == nil) != (err == nil) || serr != nil && got != want {
		t.Fatalf("the cold path decides otherwise:\n%s\nRewrite:\n%s", got, want)
	}
	if err != nil || !rewrite.Spliced(sres) {
		return
	}
	for _, c := range []struct {
		name      string
		got, want []string
	}{{"tables", sres.Tables, res.Tables}, {"rules", sres.Rules, res.Rules}, {"masked", sres.Masked, res.Masked}, {"columns", sres.Columns, res.Columns}} {
		if strings.Join(c.got, ",") != strings.Join(c.want, ",") {
			t.Errorf("spliced %s %v, deparsed %v", c.name, c.got, c.want)
		}
	}
	// The cold path never reads directly (rewriteText): it is held to
	// the fenced rewrite, and both read the same rows.
	ref := res
	if rewrite.Direct(res) {
		var ferr error
		if ref, ferr = rewrite.RewriteFenced(sql, cat, pol); ferr != nil {
			t.Fatalf("the fenced rewrite refuses it: %v", ferr)
		}
	}
	same, perr := rewrite.SameStatements(sres.SQL, ref.SQL)
	if perr != nil || !same {
		t.Fatalf("the spliced rewrite is not the deparsed one (%v):\nspliced:  %s\ndeparsed: %s", perr, sres.SQL, ref.SQL)
	}
	for _, v := range verifyOutput(sres.SQL, cat, pol) {
		t.Errorf("verifier, spliced: %s\n%s", v, sres.SQL)
	}
	if got := up.run(t, sres); got != upstream {
		t.Errorf("the spliced rewrite reads otherwise upstream:\n%s\nthe deparsed one:\n%s", got, upstream)
	}
}
