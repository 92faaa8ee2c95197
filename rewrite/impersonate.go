package rewrite

import (
	"errors"
	"fmt"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// ActSetting is the setting a BI service sets to act for an end user
// (SET pgveil.act_for = 'login'); it is also what pgveil sets upstream in
// place of every change of the acting user, so that SHOW pgveil.act_for
// answers who the session acts for.
const ActSetting = "pgveil.act_for"

// Act is a change of the user a session acts for, asked by the only
// statement of a text: SET ROLE, RESET ROLE, SET pgveil.act_for or RESET
// pgveil.act_for. The proxy decides whether the session's login may make
// it; the text forwarded upstream in its place (Result.SQL) only sets
// pgveil.act_for there.
type Act struct {
	// Login is the user to act for; "" returns to the session's own login
	// (RESET ROLE, SET ROLE NONE, RESET pgveil.act_for, SET … TO DEFAULT).
	Login string
	// Via is how it was asked: "role" or "pgveil.act_for".
	Via string
}

// isActSetting reports whether a SET names the acting user: role or
// pgveil.act_for (setting names ignore case).
func isActSetting(name string) bool {
	n := strings.ToLower(name)
	return n == "role" || n == ActSetting
}

// actSet checks a SET or RESET of role or pgveil.act_for and turns it into a
// SET or RESET of pgveil.act_for upstream: the upstream session keeps the
// service account's identity, and the proxy switches the policy.
func (w *walker) actSet(s *pg_query.VariableSetStmt) error {
	via := strings.ToLower(s.Name)
	if s.IsLocal {
		return deny("act_for", "SET LOCAL %s is not supported: pgveil changes the acting user for the session, until RESET", via)
	}
	a := &Act{Via: via}
	switch s.Kind {
	case pg_query.VariableSetKind_VAR_RESET, pg_query.VariableSetKind_VAR_SET_DEFAULT:
	case pg_query.VariableSetKind_VAR_SET_VALUE:
		if len(s.Args) != 1 {
			return deny("act_for", "%s takes one login", via)
		}
		c := s.Args[0].GetAConst()
		if c == nil || c.Isnull || c.GetSval() == nil || c.GetSval().Sval == "" {
			return deny("act_for", "%s must be set to a login, written as a name or a string literal", via)
		}
		a.Login = c.GetSval().Sval
		// SET ROLE NONE is RESET ROLE (what Metabase sends after a
		// checkout); the parser gives it as the string "none".
		if via == "role" && a.Login == "none" {
			a.Login = ""
		}
	default:
		return deny("act_for", "this form of SET %s is not supported", via)
	}
	w.act = a
	s.Name, s.IsLocal = ActSetting, false
	if a.Login == "" {
		// NOTE: a SET back to the login (SET ROLE NONE, SET … TO
		// DEFAULT) becomes SET pgveil.act_for TO DEFAULT, a RESET stays
		// a RESET: both undo the setting, and the client gets the command
		// tag PostgreSQL gives what it sent (SET, or RESET).
		if s.Kind != pg_query.VariableSetKind_VAR_RESET {
			s.Kind = pg_query.VariableSetKind_VAR_SET_DEFAULT
		}
		s.Args = nil
	} else {
		s.Kind, s.Args = pg_query.VariableSetKind_VAR_SET_VALUE, []*pg_query.Node{stringConst(a.Login)}
	}
	w.changed = true
	return nil
}

// ActToLogin returns res with its switch turned back to the session's own
// login: SET ROLE <login> and SET pgveil.act_for = '<login>' from a
// service whose login that is act as it again, as SET ROLE NONE does, so
// pgveil forwards what it forwards for SET ROLE NONE, SET pgveil.act_for
// TO DEFAULT: the server log, SHOW pgveil.act_for and a transaction
// pool's replay then say the session acts for no one, as pgveil's viewer
// does. Made on the syntax tree of res.SQL (pgveil's own output: BEGIN,
// SAVEPOINT or RELEASE at most, then the SET). A copy: res is shared.
func ActToLogin(res *Result) (*Result, error) {
	if res.Act == nil || res.Act.Login == "" {
		return res, nil
	}
	tree, err := pg_query.Parse(res.SQL)
	if err != nil || len(tree.Stmts) == 0 {
		return nil, fmt.Errorf("turning a switch back to the login: parsing it: %v", err)
	}
	s := tree.Stmts[len(tree.Stmts)-1].Stmt.GetVariableSetStmt()
	if s == nil || s.Name != ActSetting || s.Kind != pg_query.VariableSetKind_VAR_SET_VALUE {
		return nil, errors.New("turning a switch back to the login: its text does not end with the SET pgveil forwards")
	}
	s.Kind, s.Args = pg_query.VariableSetKind_VAR_SET_DEFAULT, nil
	out, err := pg_query.Deparse(tree)
	if err != nil {
		return nil, fmt.Errorf("turning a switch back to the login: %w", err)
	}
	if !deparsedFaithfully(out, tree) {
		return nil, errors.New("turning a switch back to the login: the statement did not re-parse")
	}
	cp := *res
	cp.SQL, cp.Act = out, &Act{Via: res.Act.Via}
	return &cp, nil
}
