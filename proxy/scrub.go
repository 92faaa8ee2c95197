package proxy

import (
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/scrub"
)

// scrubError removes from an upstream error what it may tell of data the
// user may not see, and reports whether it changed the error. The
// SQLSTATE, the severity and the message's wording stay, so clients
// still know what went wrong.
//
//   - Classes 22 (data exception) and 23 (integrity constraint
//     violation): the DETAIL, CONTEXT and internal query, and every
//     quoted part of the message, which echo values of the real row.
//   - Class 54 (program limit exceeded): the same, and the numbers of the
//     message: an index row's size counts every column the index holds,
//     masked ones included, and its DETAIL names the row's position.
//   - 40P01 (deadlock): the DETAIL, which names other backends' process
//     ids, transaction ids and relation OIDs (what server_state refuses).
//   - Any error: a row's position (ctid) in the CONTEXT of a lock wait
//     ("while updating tuple (78,29) in relation …"), which tells the
//     table's size in pages and how many hidden rows lie between the
//     user's (what write_governed refuses in SET and RETURNING).
//
// NOTE: a message scrubbed once is scrubbed again without change: every
// step is idempotent.
func scrubError(er *pgproto3.ErrorResponse) bool {
	changed := false
	switch {
	case strings.HasPrefix(er.Code, "22"), strings.HasPrefix(er.Code, "23"):
		er.Detail, er.Where, er.InternalQuery = "", "", ""
		er.Message, changed = scrub.Quoted(er.Message), true
	case strings.HasPrefix(er.Code, "54"):
		er.Detail, er.Where, er.InternalQuery = "", "", ""
		er.Message, changed = scrubNumbers(scrub.Quoted(er.Message)), true
	case er.Code == codeDeadlock:
		if er.Detail != "" {
			er.Detail, changed = "", true
		}
	}
	for _, f := range []*string{&er.Message, &er.Detail, &er.Hint, &er.Where} {
		if s := scrubTuples(*f); s != *f {
			*f, changed = s, true
		}
	}
	return changed
}

// codeDeadlock is PostgreSQL's deadlock_detected.
const codeDeadlock = "40P01"

// tuplePosition matches a row's position as PostgreSQL prints it in
// messages: "tuple (78,29)", "updated version (78,29)".
var tuplePosition = regexp.MustCompile(`(tuple|version) \(\d+,\d+\)`)

// scrubTuples replaces every row position in msg with an ellipsis.
func scrubTuples(msg string) string {
	if !strings.Contains(msg, "(") {
		return msg
	}
	return tuplePosition.ReplaceAllString(msg, "$1 (…)")
}

// digits matches a run of digits.
var digits = regexp.MustCompile(`[0-9]+`)

// scrubNumbers replaces every number in msg with an ellipsis.
func scrubNumbers(msg string) string {
	return digits.ReplaceAllString(msg, "…")
}

// scrubAll is, in a session that named a governed relation (governed),
// scrubRaised, or else scrubError: whether it changed er.
//
// NOTE: scrubRaised first: it reads the CONTEXT, which scrubError clears
// for data errors, and a trigger may raise its own text under any
// SQLSTATE (RAISE … USING ERRCODE = 'check_violation').
// A withheld message holds nothing scrubError would remove, and keeps
// its DETAIL, which says why.
func scrubAll(er *pgproto3.ErrorResponse, governed bool) bool {
	if governed && scrubRaised(er) {
		return true
	}
	if withheld(er) {
		return false
	}
	return scrubError(er)
}

// withheld reports a message scrubRaised withheld.
func withheld(er *pgproto3.ErrorResponse) bool {
	return er.Message == withheldMessage && er.Detail == withheldDetail && er.Hint == "" && er.Where == ""
}

// raisedBy matches a CONTEXT that PostgreSQL adds to a message raised
// while code of a function runs: PL/pgSQL ("PL/pgSQL function f() line
// 3 at RAISE"), any procedural language ("PL/Python function \"f\""),
// SQL functions ("SQL function \"f\" statement 1") and the statements
// they run ("SQL statement \"…\"").
//
// NOTE: anywhere in a line, not at its start only: PL/Tcl puts its
// function last, after the Tcl trace ("…\nin PL/Tcl function \"f\""),
// and PL/R writes "In PL/R function f". A value quoted in PostgreSQL's
// own CONTEXT that reads like one only withholds more (fail closed).
var raisedBy = regexp.MustCompile(`(PL/\S+ (function|anonymous code block)|SQL function|SQL statement) `)

// withheldMessage and withheldDetail replace the text of a message
// scrubRaised withholds.
const (
	withheldMessage = "pgveil withheld a message raised by a function or trigger"
	withheldDetail  = "The code that raised it ran on rows of a governed relation, where it may read values your policy masks and rows it filters: pgveil forwards only the message's SQLSTATE and severity."
)

// scrubRaised withholds the text of a message raised by code that runs
// in the server during the user's statement, and reports whether it
// changed er: a DBA's trigger or a function reads the real row, masked
// columns and filtered rows included, and what it raises ("RAISE NOTICE
// '%', NEW", "RAISE EXCEPTION 'bad %', OLD.email", an error in a
// statement it runs) may quote any of it. Such a message is one whose
// CONTEXT names a function (raisedBy), or of class P0 (PL/pgSQL's RAISE
// and ASSERT) or 38 (external routine exception: what PL/Tcl's elog
// raises, at every level, with no CONTEXT), whatever its CONTEXT says.
// Its message, DETAIL, HINT, CONTEXT, internal query and the names of
// the schema, table, column, type and constraint it concerns are
// replaced or removed; the SQLSTATE and the severity stay, so a client
// still knows what failed.
//
// NOTE: a message whose code carries no CONTEXT (a C function's) cannot
// be told apart from PostgreSQL's own: it is scrubbed by scrubError
// alone. Idempotent: a withheld message has no CONTEXT and is withheld
// again unchanged.
func scrubRaised(er *pgproto3.ErrorResponse) bool {
	if !strings.HasPrefix(er.Code, "P0") && !strings.HasPrefix(er.Code, "38") && !raisedBy.MatchString(er.Where) {
		return false
	}
	if withheld(er) {
		return false
	}
	er.Message, er.Detail, er.Hint, er.Where = withheldMessage, withheldDetail, "", ""
	er.InternalQuery, er.InternalPosition = "", 0
	er.SchemaName, er.TableName, er.ColumnName, er.DataTypeName, er.ConstraintName = "", "", "", "", ""
	return true
}
