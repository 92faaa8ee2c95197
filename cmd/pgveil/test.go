package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/jackc/pgx/v5/pgconn"
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/rewrite"
)

// testStatementTimeout bounds each test statement run upstream.
const testStatementTimeout = "60s"

// shownRows caps the rows a failure message shows.
const shownRows = 10

// cmdTest runs the configuration's test blocks. Without --upstream it
// checks what the rewrite alone decides (refusals and masked columns),
// with the user blocks as the only identities and the exactly named
// table blocks as the only relations, and skips what needs the live
// database; with --upstream it loads identities and catalog as serve does
// and runs each accepted SELECT, rewritten, in a read-only transaction
// as the service account. Exit status 1 when a test fails.
func cmdTest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file or directory of *.hcl files (required)")
	upstream := fs.Bool("upstream", false, "load identities and catalog upstream and run the statements (read-only)")
	runPattern := fs.String("run", "", "run only the tests whose name matches this regular expression")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pgveil test --config FILE [--upstream] [--run REGEXP]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *configPath == "" || fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	var filter *regexp.Regexp
	if *runPattern != "" {
		var err error
		if filter, err = regexp.Compile(*runPattern); err != nil {
			fmt.Fprintf(stderr, "pgveil test: --run: %v\n", err)
			return 2
		}
	}
	cfg, files, ok := loadConfigFiles(*configPath, stderr)
	if !ok {
		return 1
	}
	var tests []*policy.Test
	for _, t := range cfg.Tests {
		if filter == nil || filter.MatchString(t.Name) {
			tests = append(tests, t)
		}
	}
	if len(tests) == 0 {
		fmt.Fprintf(stderr, "pgveil test: no test blocks to run in %s\n", *configPath)
		fmt.Fprintln(stdout, "0 passed, 0 failed")
		return 0
	}

	ctx := context.Background()
	env := &testEnv{ctx: ctx, cfg: cfg}
	if *upstream {
		conn, err := proxy.ConnectService(ctx, cfg, "test")
		if err != nil {
			fmt.Fprintf(stderr, "pgveil test: connecting upstream to %s/%s as %s: %v\n",
				cfg.Upstream.Address, cfg.Upstream.Database, cfg.Upstream.User, err)
			return 1
		}
		defer conn.Close(context.Background())
		ids, diags := cfg.LoadIdentities(ctx, conn)
		writeDiags(stderr, files, diags)
		if diags.HasErrors() || ids == nil {
			return 1
		}
		cat, err := rewrite.LoadCatalog(ctx, conn, proxy.SearchPath(cfg.Upstream.SearchPath))
		if err != nil {
			fmt.Fprintf(stderr, "pgveil test: loading the catalog: %v\n", err)
			return 1
		}
		env.conn, env.ids, env.cat = conn, ids, cat
		var userDiags hcl.Diagnostics
		for _, t := range tests {
			if d := cfg.CheckTestUser(t, ids); d != nil {
				userDiags = append(userDiags, d)
			}
		}
		writeDiags(stderr, files, userDiags)
	} else {
		env.ids, env.cat = cfg.HCLIdentities(), offlineCatalog(cfg)
	}

	passed, failed, skipped := 0, 0, 0
	for _, t := range tests {
		o := env.run(t)
		switch o.status {
		case statusPass:
			passed++
		case statusFail:
			failed++
		case statusSkip:
			skipped++
		}
		line := o.status + " " + t.Name
		if o.reason != "" {
			line += ": " + o.reason
		}
		fmt.Fprintln(stdout, line)
		if env.broken {
			fmt.Fprintln(stderr, "pgveil test: the upstream connection failed; stopping")
			failed += len(tests) - passed - failed - skipped
			break
		}
	}
	if skipped > 0 {
		fmt.Fprintf(stdout, "%d skipped: they need the live database; run pgveil test --upstream\n", skipped)
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}

// Test statuses, as printed.
const (
	statusPass = "PASS"
	statusFail = "FAIL"
	statusSkip = "SKIP"
)

// outcome is the result of one test.
type outcome struct {
	status string
	reason string
}

func pass(format string, args ...any) outcome {
	return outcome{statusPass, fmt.Sprintf(format, args...)}
}

func fail(format string, args ...any) outcome {
	return outcome{statusFail, fmt.Sprintf(format, args...)}
}

func skip(format string, args ...any) outcome {
	return outcome{statusSkip, fmt.Sprintf(format, args...)}
}

// testEnv is what tests run against: identities and a catalog, and the
// service-account connection with --upstream (nil offline).
type testEnv struct {
	ctx  context.Context
	cfg  *policy.Config
	ids  *policy.Identities
	cat  *rewrite.Catalog
	conn *pgconn.PgConn
	// broken is set when the upstream connection failed.
	broken bool
}

// offline reports whether tests run without the upstream.
func (env *testEnv) offline() bool { return env.conn == nil }

// run runs one test.
func (env *testEnv) run(t *policy.Test) outcome {
	cfg := env.cfg
	if env.offline() {
		if cfg.Users[t.User] == nil {
			hint := ""
			for _, login := range slices.Sorted(maps.Keys(cfg.Users)) {
				if levenshtein.Distance(t.User, login, nil) < 3 {
					hint = fmt.Sprintf("; did you mean %q?", login)
					break
				}
			}
			return skip("no user block defines %s, identity rows may (needs --upstream)%s", t.User, hint)
		}
		if !cfg.RolesFromFiles(t.User) {
			return skip("the roles of %s come from identity rows (needs --upstream)", t.User)
		}
	} else if d := cfg.CheckTestUser(t, env.ids); d != nil {
		return fail("%s", d.Detail)
	}

	// What pgveil does with the statement, as the engine decides it.
	var res *rewrite.Result
	var refused *rewrite.Refused
	pol, err := cfg.Compile(t.User, env.ids)
	if err != nil {
		refused = &rewrite.Refused{Code: rewrite.CodeInsufficientPrivilege, Rule: "no_policy", Message: err.Error()}
	} else {
		cat := env.cat
		if env.offline() {
			var why string
			if cat, why = offlineQueryCatalog(cfg, cat, t.Query); why != "" {
				return skip("%s (needs --upstream)", why)
			}
		}
		res, err = rewrite.Rewrite(t.Query, cat, pol)
		var unknown *rewrite.UnknownRelationError
		switch {
		case err == nil:
		case errors.As(err, &unknown):
			if env.offline() {
				return skip("no table block names %s exactly: only the live catalog knows it (needs --upstream)", unknown.Name)
			}
			refused = &rewrite.Refused{Code: rewrite.CodeUndefinedTable, Rule: "unknown_relation", Message: unknown.Error()}
		case errors.As(err, &refused):
		default:
			refused = &rewrite.Refused{Code: rewrite.CodeInsufficientPrivilege, Rule: "rewrite", Message: err.Error()}
		}
	}

	if t.ExpectsDenied() {
		switch {
		case refused == nil:
			want := "a refusal"
			if t.Rule != "" {
				want += " by firewall rule " + t.Rule
			}
			return fail("accepted, expected %s", want)
		case t.Rule != "" && refused.Rule != t.Rule:
			return fail("refused by firewall rule %s, expected rule %s (%s)", refused.Rule, t.Rule, refused.Message)
		}
		return pass("")
	}
	if refused != nil {
		return fail("refused by firewall rule %s: %s", refused.Rule, refused.Message)
	}
	if t.ExpectMasked {
		want, got := sortedCopy(t.Masked), sortedCopy(res.Masked)
		if !slices.Equal(want, got) {
			return fail("masked columns: expected %s, got %s", quotedList(want), quotedList(got))
		}
	}
	if env.offline() {
		if t.NeedsData() {
			what, masks := "rows", ""
			if !t.ExpectRows {
				what = "the row count"
			}
			if t.ExpectMasked {
				masks = ", with the expected masked columns"
			}
			return skip("comparing %s needs --upstream (offline, pgveil accepts the statement%s)", what, masks)
		}
		return pass("")
	}
	return env.execute(t, res)
}

// execute runs the rewritten statement upstream as the service account,
// in a read-only transaction rolled back afterwards, and compares its
// (last) result with the test's rows or row_count.
func (env *testEnv) execute(t *policy.Test, res *rewrite.Result) outcome {
	for _, k := range res.Kinds {
		if k != "select" {
			if t.NeedsData() {
				return fail("pgveil test runs only SELECT statements upstream, and this one is %s", strings.Join(res.Kinds, ", "))
			}
			return pass("") // NOTE: accepted as expected; not run.
		}
	}
	ctx := env.ctx
	if _, err := env.conn.Exec(ctx, "BEGIN TRANSACTION READ ONLY; SET LOCAL statement_timeout = '"+testStatementTimeout+"'").ReadAll(); err != nil {
		return env.connFailure(err)
	}
	// NOTE: a closure, so that ROLLBACK is sent after the statement.
	defer func() {
		if _, err := env.conn.Exec(context.WithoutCancel(ctx), "ROLLBACK").ReadAll(); err != nil {
			env.broken = true
		}
	}()

	keep := shownRows
	if t.ExpectRows {
		keep = max(keep, len(t.Rows))
	}
	var rows [][]*string
	count := 0
	mrr := env.conn.Exec(ctx, res.SQL)
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		rows, count = nil, 0
		for rr.NextRow() {
			count++
			if count <= keep {
				vals := rr.Values()
				row := make([]*string, len(vals))
				for i, v := range vals {
					if v != nil {
						s := string(v)
						row[i] = &s
					}
				}
				rows = append(rows, row)
			}
		}
		if _, err := rr.Close(); err != nil {
			break // NOTE: mrr.Close returns the error.
		}
	}
	if err := mrr.Close(); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			return env.connFailure(err)
		}
		return fail("the statement pgveil forwards failed upstream: %s (SQLSTATE %s)", pgErr.Message, pgErr.Code)
	}

	if t.RowCount != nil && int64(count) != *t.RowCount {
		return fail("row_count: expected %d, got %d", *t.RowCount, count)
	}
	if t.ExpectRows {
		if count != len(t.Rows) {
			return fail("rows: expected %s, got %s", formatRows(t.Rows, len(t.Rows)), formatRows(rows, count))
		}
		want, got := t.Rows, rows
		if t.Unordered {
			want, got = sortedRows(want), sortedRows(got)
		}
		if !slices.EqualFunc(want, got, equalRow) {
			return fail("rows: expected %s, got %s", formatRows(t.Rows, len(t.Rows)), formatRows(rows, count))
		}
	}
	return pass("")
}

// connFailure reports a test that could not run because the connection
// failed, and stops the run.
func (env *testEnv) connFailure(err error) outcome {
	env.broken = true
	return fail("the upstream connection failed: %v", err)
}

// equalRow compares two rows value by value, NULL equal to NULL only.
func equalRow(a, b []*string) bool {
	return slices.EqualFunc(a, b, func(x, y *string) bool {
		if x == nil || y == nil {
			return x == nil && y == nil
		}
		return *x == *y
	})
}

// sortedRows returns rows sorted by their printed form.
func sortedRows(rows [][]*string) [][]*string {
	out := slices.Clone(rows)
	slices.SortStableFunc(out, func(a, b []*string) int { return strings.Compare(formatRow(a), formatRow(b)) })
	return out
}

// formatRows renders rows as HCL would write them, up to shownRows of
// them, then how many there are in all.
func formatRows(rows [][]*string, count int) string {
	parts := make([]string, 0, min(len(rows), shownRows))
	for i, r := range rows {
		if i == shownRows {
			break
		}
		parts = append(parts, formatRow(r))
	}
	s := "[" + strings.Join(parts, ", ")
	if count > len(parts) {
		s += ", …"
	}
	s += "]"
	if count > len(parts) || count != 1 {
		s += fmt.Sprintf(" (%d rows)", count)
	} else {
		s += " (1 row)"
	}
	return s
}

// formatRow renders one row: ["France", null].
func formatRow(r []*string) string {
	cells := make([]string, len(r))
	for i, v := range r {
		if v == nil {
			cells[i] = "null"
		} else {
			cells[i] = strconv.Quote(*v)
		}
	}
	return "[" + strings.Join(cells, ", ") + "]"
}

// quotedList renders ["a", "b"].
func quotedList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// sortedCopy returns a sorted copy of l, never nil.
func sortedCopy(l []string) []string {
	out := append([]string{}, l...)
	slices.Sort(out)
	return out
}

// textType is the type offline relations give every column.
var textType = &pg_query.TypeName{
	Names:    []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode("text")},
	Typemod:  -1,
	Location: -1,
}

// offlineCatalog is what pgveil test assumes without the upstream: the
// tables named exactly by table blocks exist, with the columns the blocks
// name (owner_column, team_column, column blocks). That is enough to
// decide refusals and masks, not rows.
func offlineCatalog(cfg *policy.Config) *rewrite.Catalog {
	cat := &rewrite.Catalog{
		SearchPath: proxy.SearchPath(cfg.Upstream.SearchPath),
		Relations:  map[rewrite.QName]*rewrite.Relation{},
		Functions:  map[string]map[string]bool{"pg_catalog": {}},
	}
	for _, t := range cfg.Tables {
		if !t.Pattern.Exact() {
			continue
		}
		rel := &rewrite.Relation{QName: t.Pattern.QName(), Kind: 'r'}
		var names []string
		for _, c := range []string{t.OwnerColumn, t.TeamColumn} {
			if c != "" {
				names = append(names, c)
			}
		}
		for name := range t.Columns {
			names = append(names, name)
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
	var visit func(protoreflect.Message)
	visit = func(m protoreflect.Message) {
		if n, ok := m.Interface().(*pg_query.Node); ok {
			f(n)
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.Message() == nil || fd.IsMap():
			case fd.IsList():
				l := v.List()
				for i := 0; i < l.Len(); i++ {
					visit(l.Get(i).Message())
				}
			default:
				visit(v.Message())
			}
			return true
		})
	}
	visit(m.ProtoReflect())
}
