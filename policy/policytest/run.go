package policytest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// statementTimeout bounds each test statement run upstream.
const statementTimeout = "60s"

// shownRows caps the rows a failure message shows.
const shownRows = 10

// Status is how a test block ended, as pgveil test prints it.
type Status string

// Statuses of a test block.
const (
	// Pass: pgveil did what the block expects.
	Pass Status = "PASS"
	// Fail: it did not, or the statement could not run.
	Fail Status = "FAIL"
	// Skip: deciding needs the live database, and the run is offline.
	Skip Status = "SKIP"
)

// Outcome is the result of one test block.
type Outcome struct {
	// Status is how the block ended.
	Status Status
	// Reason says why, "" for most passes.
	Reason string
	// Diag, when not nil, points at what in the test block the outcome
	// is about (file:line:col), with a suggestion: a relation the
	// catalog does not hold, near a name it does.
	Diag *hcl.Diagnostic
}

// String renders the outcome of the block named name as pgveil test
// prints it: "PASS name", "FAIL name: reason".
func (o Outcome) String(name string) string {
	line := string(o.Status) + " " + name
	if o.Reason != "" {
		line += ": " + o.Reason
	}
	return line
}

func pass(format string, args ...any) Outcome {
	return Outcome{Status: Pass, Reason: fmt.Sprintf(format, args...)}
}

func fail(format string, args ...any) Outcome {
	return Outcome{Status: Fail, Reason: fmt.Sprintf(format, args...)}
}

func skip(format string, args ...any) Outcome {
	return Outcome{Status: Skip, Reason: fmt.Sprintf(format, args...)}
}

// Summary counts the outcomes of a run.
type Summary struct {
	Passed, Failed, Skipped int
}

// Env is what test blocks run against: identities and a catalog, and,
// online, the service-account connection that runs accepted SELECTs.
type Env struct {
	cfg  *policy.Config
	ids  *policy.Identities
	cat  *rewrite.Catalog
	conn *pgconn.PgConn
	// broken is set when the upstream connection failed.
	broken bool
}

// Offline returns the environment of pgveil test without --upstream: the
// user blocks are the only identities and the tables table blocks name
// exactly the only relations (see OfflineCatalog), searchPath the pinned
// search_path. What needs the live database is skipped.
func Offline(cfg *policy.Config, searchPath []string) *Env {
	return &Env{cfg: cfg, ids: cfg.HCLIdentities(), cat: OfflineCatalog(cfg, searchPath)}
}

// Online returns the environment of pgveil test --upstream: ids and cat
// are loaded upstream as serve loads them, and conn, a connection as the
// service account with the pinned settings, runs each accepted SELECT,
// rewritten, in a read-only transaction rolled back afterwards.
func Online(cfg *policy.Config, ids *policy.Identities, cat *rewrite.Catalog, conn *pgconn.PgConn) *Env {
	return &Env{cfg: cfg, ids: ids, cat: cat, conn: conn}
}

// CheckUsers reports the tests whose user the loaded identities do not
// know, with a suggestion (see policy.Config.CheckTestUser).
func (env *Env) CheckUsers(tests []*policy.Test) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, t := range tests {
		if d := env.cfg.CheckTestUser(t, env.ids); d != nil {
			diags = append(diags, d)
		}
	}
	return diags
}

// Broken reports whether the upstream connection failed: no later test
// can run.
func (env *Env) Broken() bool { return env.broken }

// RunAll runs tests in order and calls report with each outcome. When
// the upstream connection fails it stops, and counts the tests left as
// failed (Broken then says so).
func (env *Env) RunAll(ctx context.Context, tests []*policy.Test, report func(*policy.Test, Outcome)) Summary {
	var sum Summary
	for _, t := range tests {
		o := env.Run(ctx, t)
		switch o.Status {
		case Pass:
			sum.Passed++
		case Fail:
			sum.Failed++
		case Skip:
			sum.Skipped++
		}
		report(t, o)
		if env.broken {
			sum.Failed += len(tests) - sum.Passed - sum.Failed - sum.Skipped
			break
		}
	}
	return sum
}

// offline reports whether tests run without the upstream.
func (env *Env) offline() bool { return env.conn == nil }

// Run runs one test block.
func (env *Env) Run(ctx context.Context, t *policy.Test) (out Outcome) {
	cfg := env.cfg
	// NOTE: a login no block names logs in through the directory with
	// groups; offline, identity rows may still name it (with a password).
	directoryOnly := t.Groups != nil && len(cfg.IdentitySources) == 0 && env.ids.LogsInThroughDirectory(t.User)
	if env.offline() && !directoryOnly {
		if cfg.Users[t.User] == nil {
			hint := ""
			if login := policy.Suggest(t.User, slices.Sorted(maps.Keys(cfg.Users))); login != "" {
				hint = fmt.Sprintf("; did you mean %q?", login)
			}
			return skip("no user block defines %s, identity rows may (needs --upstream)%s", t.User, hint)
		}
		if !cfg.RolesFromFiles(t.User) {
			return skip("the roles of %s come from identity rows (needs --upstream)", t.User)
		}
	} else if !env.offline() {
		if d := cfg.CheckTestUser(t, env.ids); d != nil {
			return fail("%s", d.Detail)
		}
	}
	if t.Groups != nil && !env.ids.LogsInThroughDirectory(t.User) {
		return fail("groups: %s does not log in through the directory (its user block or identity rows give it a password or another authentication), so directory groups give it nothing", t.User)
	}

	// What pgveil does with the statement, as the engine decides it.
	var res *rewrite.Result
	var refused *rewrite.Refused
	pol, err := env.compile(t)
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
		case err == nil && res.Act != nil:
			// NOTE: the rewriter accepts any SET ROLE; serve refuses
			// those of a login that may not act for its target.
			if why := env.ids.SwitchRefusal(t.User, res.Act.Login); why != nil {
				refused = actRefusal(why)
			}
		case err == nil:
		case errors.As(err, &unknown):
			if env.offline() {
				o := skip("no table block names %s exactly: only the live catalog knows it (needs --upstream)", unknown.Name)
				o.Diag = env.unknownRelation(t, unknown)
				return o
			}
			refused = unknown.Refusal()
			// NOTE: only a failing test shows it: denied = true may be
			// about a relation that does not exist.
			defer func() {
				if out.Status == Fail {
					out.Diag = env.unknownRelation(t, unknown)
				}
			}()
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
	return env.execute(ctx, t, res)
}

// compile compiles the policy of t's user: with t's directory groups,
// as serve compiles a person the directory authenticated, when t gives
// them.
func (env *Env) compile(t *policy.Test) (rewrite.Policy, error) {
	if t.Groups == nil {
		return env.cfg.Compile(t.User, env.ids)
	}
	u, ok := env.ids.DirectoryUser(t.User, t.Groups)
	if !ok {
		return nil, fmt.Errorf("%w: its directory groups give %s no role", policy.ErrNoAccess, t.User)
	}
	return env.cfg.CompileUser(u, env.ids)
}

// execute runs the rewritten statement upstream as the service account,
// in a read-only transaction rolled back afterwards, and compares its
// (last) result with the test's rows or row_count.
func (env *Env) execute(ctx context.Context, t *policy.Test, res *rewrite.Result) Outcome {
	for _, k := range res.Kinds {
		if k != "select" {
			if t.NeedsData() {
				return fail("pgveil test runs only SELECT statements upstream, and this one is %s", strings.Join(res.Kinds, ", "))
			}
			return pass("") // NOTE: accepted as expected; not run.
		}
	}
	if _, err := env.conn.Exec(ctx, "BEGIN TRANSACTION READ ONLY; SET LOCAL statement_timeout = '"+statementTimeout+"'").ReadAll(); err != nil {
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
			return fail("rows: expected %s, got %s%s", formatRows(t.Rows, len(t.Rows)), formatRows(rows, count), numberTextHint(want, got))
		}
	}
	return pass("")
}

// connFailure reports a test that could not run because the connection
// failed, and stops the run.
func (env *Env) connFailure(err error) Outcome {
	env.broken = true
	return fail("the upstream connection failed: %v", err)
}

// unknownRelation is the diagnostic of a test whose query names a
// relation the catalog does not hold, at the test's query, suggesting
// the near miss (policy.Suggest) of a relation the catalog does hold,
// qualified as the query qualifies it. nil for an unknown operator, type
// or column, and offline (a warning then) when there is no near miss: a
// relation no table block names is usual offline, a near miss of one
// likely a typo.
func (env *Env) unknownRelation(t *policy.Test, unknown *rewrite.UnknownRelationError) *hcl.Diagnostic {
	if unknown.Kind != "" {
		return nil
	}
	d := &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Unknown relation",
		Detail:   fmt.Sprintf("Test %q's query names %s, which the catalog does not hold.", t.Name, unknown.Name),
		Subject:  t.QueryRange.Ptr(),
	}
	if env.offline() {
		d.Severity = hcl.DiagWarning
		d.Detail = fmt.Sprintf("Test %q's query names %s, which no table block names exactly.", t.Name, unknown.Name)
	}
	s := policy.Suggest(unknown.Name, relationNames(env.cat, strings.Contains(unknown.Name, ".")))
	if s == "" && env.offline() {
		return nil
	}
	if s != "" {
		d.Detail += fmt.Sprintf(" Did you mean %q?", s)
	}
	return d
}

// relationNames lists the relations of cat: schema.name when qualified,
// else the names of those in a schema of its search_path, sorted.
func relationNames(cat *rewrite.Catalog, qualified bool) []string {
	inPath := map[string]bool{}
	for _, s := range cat.SearchPath {
		inPath[s] = true
	}
	var names []string
	for q := range cat.Relations {
		switch {
		case qualified:
			names = append(names, q.String())
		case inPath[q.Schema]:
			names = append(names, q.Name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// actRefusal is the proxy's refusal of a change of the acting user
// (proxy.ActRefusal), which the rewriter leaves to the proxy.
func actRefusal(why error) *rewrite.Refused {
	return &rewrite.Refused{Code: rewrite.CodeInsufficientPrivilege, Rule: "act_for",
		Message: "pgveil refused the statement: " + why.Error() + " (firewall rule act_for)"}
}
