package rewrite

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// sessionTagger is a Policy that names its user in the upstream
// session's application_name, so that the upstream's own views and logs
// (pg_stat_activity, log_line_prefix %a) attribute each session to the
// person behind pgveil's service account.
type sessionTagger interface {
	// ApplicationNamePrefix is what every application_name of the user
	// starts with upstream, e.g. "pgveil:marie:".
	ApplicationNamePrefix() string
}

// isApplicationName reports whether a setting name is application_name
// (PostgreSQL ignores the case of setting names).
func isApplicationName(name string) bool { return strings.EqualFold(name, "application_name") }

// tagSet prefixes the value SET gives application_name with the policy's
// prefix: a client may name its application, never pose as another user
// or hide who it is. RESET and SET … TO DEFAULT restore the startup
// value, which pgveil wrote with the prefix.
func (w *walker) tagSet(s *pg_query.VariableSetStmt) error {
	t, ok := w.pol.(sessionTagger)
	if !ok || s.Kind != pg_query.VariableSetKind_VAR_SET_VALUE {
		return nil
	}
	if len(s.Args) != 1 {
		return deny("pinned_settings", "application_name takes one value")
	}
	c := s.Args[0].GetAConst()
	var v string
	switch {
	case c == nil || c.Isnull:
		return deny("pinned_settings", "application_name must be set to a constant")
	case c.GetSval() != nil:
		v = c.GetSval().Sval
	case c.GetIval() != nil:
		v = strconv.FormatInt(int64(c.GetIval().Ival), 10)
	case c.GetFval() != nil:
		v = c.GetFval().Fval
	case c.GetBoolval() != nil:
		v = strconv.FormatBool(c.GetBoolval().Boolval)
	default:
		return deny("pinned_settings", "application_name must be set to a constant")
	}
	s.Args[0] = stringConst(t.ApplicationNamePrefix() + v)
	w.changed = true
	return nil
}

// tagSetConfig makes set_config('application_name', value, is_local)
// set pg_catalog.concat(prefix, value) instead, for the reason tagSet
// gives. fc has passed setConfigProblem.
func (w *walker) tagSetConfig(fc *pg_query.FuncCall) {
	t, ok := w.pol.(sessionTagger)
	if !ok || !isApplicationName(fc.Args[0].GetAConst().GetSval().GetSval()) {
		return
	}
	fc.Args[1] = &pg_query.Node{Node: &pg_query.Node_FuncCall{FuncCall: &pg_query.FuncCall{
		Funcname:   []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode("concat")},
		Args:       []*pg_query.Node{stringConst(t.ApplicationNamePrefix()), fc.Args[1]},
		Funcformat: pg_query.CoercionForm_COERCE_EXPLICIT_CALL,
		Location:   -1,
	}}}
	w.changed = true
}

func stringConst(s string) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_AConst{AConst: &pg_query.A_Const{
		Val: &pg_query.A_Const_Sval{Sval: &pg_query.String{Sval: s}}, Location: -1,
	}}}
}

// ApplicationNameSQL returns the statement that sets application_name to
// value: SET application_name = 'value', made on the syntax tree with
// value as its constant, for a transaction-mode session to name its user
// on each upstream connection it takes.
func ApplicationNameSQL(value string) (string, error) {
	tree, err := pg_query.Parse("SET application_name = ''")
	if err != nil {
		panic("pgveil: parsing a fixed SET: " + err.Error())
	}
	tree.Stmts[0].Stmt.GetVariableSetStmt().Args[0] = stringConst(value)
	out, err := pg_query.Deparse(tree)
	if err != nil {
		return "", fmt.Errorf("making SET application_name: %w", err)
	}
	if !deparsedFaithfully(out, tree) {
		return "", errors.New("making SET application_name: the statement did not re-parse")
	}
	return out, nil
}
