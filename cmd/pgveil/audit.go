package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/internal/printable"
)

// defaultKeyEnv is the environment variable holding the audit key, as in
// the documentation's audit block.
const defaultKeyEnv = "PGVEIL_AUDIT_KEY"

// auditUsage is the usage of pgveil audit.
const auditUsage = `usage:
  pgveil audit verify [--key-env NAME]... [--unkeyed] [--from-start] [--complete] FILE...
      check the chain of the audit files (any order, e.g. audit.log*)
  pgveil audit search [filters] [--format table|json] FILE...
      print the records that match every filter
`

// cmdAudit runs pgveil audit verify and pgveil audit search.
func cmdAudit(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return 2
	}
	switch args[0] {
	case "verify":
		return cmdAuditVerify(args[1:], stdout, stderr)
	case "search":
		return cmdAuditSearch(args[1:], time.Now(), stdout, stderr)
	case "help", "--help", "-h":
		fmt.Fprint(stdout, auditUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "pgveil audit: unknown command %q\n%s", args[0], auditUsage)
		return 2
	}
}

// keyEnvs is the --key-env flag: the environment variables holding the
// keys, in the order given; the flag may be repeated.
type keyEnvs []string

func (k *keyEnvs) String() string { return strings.Join(*k, ",") }

// Set adds a variable.
func (k *keyEnvs) Set(name string) error {
	if name == "" {
		return errors.New("want the name of an environment variable")
	}
	*k = append(*k, name)
	return nil
}

// cmdAuditVerify checks the chains of audit files (one per pgveil
// instance) and prints a summary or the problems of each, and notes; it
// exits 1 on a problem.
func cmdAuditVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var envs keyEnvs
	fs.Var(&envs, "key-env", "environment variable holding the audit HMAC key (default "+defaultKeyEnv+"); "+
		"repeat it, newest key first, to give the keys used before a key change: a record may verify under any of them, "+
		"as long as keys only change to newer ones and the newest record verifies under the first")
	unkeyed := fs.Bool("unkeyed", false, "check a chain written without hmac_key (plain SHA-256), which shows accidental damage but not forgery")
	fromStart := fs.Bool("from-start", false, "fail unless each chain is checked from its first record (seq 1): no older file may be missing, and no trail may be empty")
	complete := fs.Bool("complete", false, "also fail when a chain says it is not complete: records dropped (on_full = \"drop\"), "+
		"or pgveil started again after a run that wrote no stop record (a crash, or records cut from its end)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pgveil audit verify [--key-env NAME]... [--unkeyed] [--from-start] [--complete] FILE...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	var keys [][]byte
	if *unkeyed {
		fmt.Fprintln(stderr, "pgveil audit verify: --unkeyed: verifying a plain SHA-256 chain, "+
			"which shows accidental damage but not forgery")
	} else {
		if len(envs) == 0 {
			envs = keyEnvs{defaultKeyEnv}
		}
		for _, env := range envs {
			key := []byte(os.Getenv(env))
			if len(key) == 0 {
				// NOTE: whoever can write the files can recompute a plain
				// chain: checked without its key, a forged trail would
				// verify.
				fmt.Fprintf(stderr, "pgveil audit verify: %s is not set: without the key a rewritten trail would verify; "+
					"set it (or name another variable with --key-env), or pass --unkeyed for a trail written without hmac_key\n", env)
				return 1
			}
			keys = append(keys, key)
		}
	}
	reports, err := audit.VerifyChainsKeys(keys, fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "pgveil audit verify: %v\n", err)
		return 1
	}
	code := 0
	for _, rep := range reports {
		prefix := ""
		if len(reports) > 1 {
			// Several pgveil instances, a chain each.
			prefix = fmt.Sprintf("chain %s: ", printableText(rep.Chain))
			if rep.Chain == "" && len(rep.Files) > 0 {
				prefix = fmt.Sprintf("%s: ", printableText(rep.Files[0]))
			}
		}
		if !printVerifyReport(stdout, prefix, rep, *fromStart, *complete) {
			code = 1
		}
	}
	return code
}

// printVerifyReport prints what Verify found in one chain, each line
// after prefix, and reports whether the chain checked out: every problem
// on a FAILED line of its own, then the notes. With fromStart, a chain
// that does not begin at seq 1, or holds no record at all, fails; with
// complete, one that dropped records or ended a run without a stop
// record.
func printVerifyReport(stdout io.Writer, prefix string, rep *audit.Report, fromStart, complete bool) bool {
	ok := rep.OK
	switch {
	case fromStart && rep.Records == 0:
		// NOTE: an emptied trail must not pass: there is no record to
		// prove anything by.
		fmt.Fprintf(stdout, "%sFAILED: --from-start: no record in %d files: the trail is empty\n", prefix, len(rep.Files))
		ok = false
	case fromStart && !rep.FromStart:
		fmt.Fprintf(stdout, "%sFAILED: --from-start: the chain begins at seq %d, not 1 (%d records from there verified)\n",
			prefix, rep.FirstSeq, rep.Records)
		ok = false
	}
	if complete && rep.Dropped > 0 {
		fmt.Fprintf(stdout, "%sFAILED: --complete: the trail says %d records were dropped (see the notes)\n", prefix, rep.Dropped)
		ok = false
	}
	if complete && rep.Unclean > 0 {
		fmt.Fprintf(stdout, "%sFAILED: --complete: %d runs of pgveil ended without a stop record: their last records may be missing (see the notes)\n", prefix, rep.Unclean)
		ok = false
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(stdout, "%sFAILED: %s\n", prefix, printableText(p))
	}
	if rep.MoreProblems > 0 {
		fmt.Fprintf(stdout, "%sFAILED: and %d more problems\n", prefix, rep.MoreProblems)
	}
	switch {
	case !rep.OK && rep.Records > 0:
		fmt.Fprintf(stdout, "%s%d records verified around the problems, seq %d..%d\n", prefix, rep.Records, rep.FirstSeq, rep.LastSeq)
	case !ok:
	case rep.Records == 0:
		fmt.Fprintf(stdout, "%sOK: 0 records in %d files\n", prefix, len(rep.Files))
	default:
		fmt.Fprintf(stdout, "%sOK: %d records in %d files, seq %d..%d, %s..%s\n", prefix, rep.Records, len(rep.Files),
			rep.FirstSeq, rep.LastSeq, rep.FirstTime.Format(time.RFC3339Nano), rep.LastTime.Format(time.RFC3339Nano))
		if !rep.FromStart {
			fmt.Fprintf(stdout, "%snote: the chain began before seq %d; older files were not given (or were removed)\n", prefix, rep.FirstSeq)
		}
		if rep.Open {
			// NOTE: records cut from the end of the newest file leave
			// no trace in the chain: only a seq kept elsewhere shows
			// them.
			fmt.Fprintf(stdout, "%snote: the chain ends at seq %d (%s) without a stop record: pgveil was still running, or stopped uncleanly, "+
				"or records after it were removed; compare with the instance's metric pgveil_audit_last_seq\n",
				prefix, rep.LastSeq, rep.LastTime.Format(time.RFC3339Nano))
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(stdout, "%snote: %s\n", prefix, printableText(n))
	}
	if rep.MoreNotes > 0 {
		fmt.Fprintf(stdout, "%snote: and %d more notes\n", prefix, rep.MoreNotes)
	}
	return ok
}

// searchFilter is what pgveil audit search keeps: every set field must
// match.
type searchFilter struct {
	// user matches the user, acting_for or acting_for_before field
	// exactly: a BI service's login, or the end user it acted for (an
	// act_for record names the one it stopped acting for too). session, event and decision
	// match those fields exactly. rule matches a policy rule that fired,
	// or the firewall rule behind a denial (its reason).
	user, session, event, decision, rule string
	// role matches one of the record's roles or acting_roles exactly:
	// the login's roles, or those of the end user a BI service acted
	// for, which decided what the statement read.
	role string
	// kind matches one of the record's statement kinds (its kind field,
	// comma-separated), old and new spellings alike (kindAliases).
	kind string
	// table, column and masked must be among the record's Tables, Columns
	// and Masked (schema.table, schema.table.column); given with fewer
	// parts (responses, responses.email, email), they match the names
	// that end with them: the table in any schema, the column in any
	// table.
	table, column, masked string
	// since and until bound the record's time: since <= time < until.
	since, until time.Time
	// minAffected, when above 0, keeps the records of writes that
	// changed at least that many rows (affected).
	minAffected int64
}

// matches reports whether e passes every filter.
func (f *searchFilter) matches(e *audit.Entry) bool {
	switch {
	case f.user != "" && e.User != f.user && e.ActingFor != f.user && e.ActingForBefore != f.user,
		f.session != "" && e.Session != f.session,
		f.event != "" && e.Event != f.event,
		f.decision != "" && e.Decision != f.decision,
		f.role != "" && !slices.Contains(e.Roles, f.role) && !slices.Contains(e.ActingRoles, f.role),
		f.kind != "" && !hasKind(e.Kind, f.kind),
		f.rule != "" && !slices.Contains(e.Rules, f.rule) && !(e.Decision == audit.DecisionDenied && e.Reason == f.rule),
		f.table != "" && !containsName(e.Tables, f.table),
		f.column != "" && !containsName(e.Columns, f.column),
		f.masked != "" && !containsName(e.Masked, f.masked),
		!f.since.IsZero() && e.Time.Before(f.since),
		!f.until.IsZero() && !e.Time.Before(f.until),
		f.minAffected > 0 && e.Affected < f.minAffected:
		return false
	}
	return true
}

// containsName reports whether names holds name, or a name that ends
// with "." and name: an unqualified table (responses) matches it in any
// schema, a column without its schema or table in any table.
func containsName(names []string, name string) bool {
	for _, n := range names {
		if n == name || strings.HasSuffix(n, name) && n[len(n)-len(name)-1] == '.' {
			return true
		}
	}
	return false
}

// kindAliases maps the statement kinds the audit trail wrote before
// 2026-12 as pg_query node names to the kinds it writes now, so that
// --kind finds a kind in trails of either age under either spelling.
var kindAliases = map[string]string{
	"deallocatestmt":     "deallocate",
	"fetchstmt":          "fetch",
	"closeportalstmt":    "close",
	"constraintssetstmt": "set_constraints",
	"variableshowstmt":   "show",
	"unlistenstmt":       "unlisten",
}

// normalKind returns the kind k, lower case, under its current spelling.
func normalKind(k string) string {
	k = strings.ToLower(strings.TrimSpace(k))
	if n, ok := kindAliases[k]; ok {
		return n
	}
	return k
}

// hasKind reports whether kinds, a record's comma-separated kind field,
// holds kind. An old FetchStmt stood for MOVE too: --kind move matches
// it, as --kind fetch does, and --kind FetchStmt matches a new move as
// it does a new fetch.
func hasKind(kinds, kind string) bool {
	want := normalKind(kind)
	oldFetch := strings.EqualFold(strings.TrimSpace(kind), "FetchStmt")
	for _, k := range strings.Split(kinds, ",") {
		if k == "" {
			continue
		}
		got := normalKind(k)
		if got == want || want == "move" && strings.EqualFold(strings.TrimSpace(k), "FetchStmt") || oldFetch && got == "move" {
			return true
		}
	}
	return false
}

// decisions are the values of --decision.
var decisions = []string{audit.DecisionAllowed, audit.DecisionRewritten, audit.DecisionDenied}

// cmdAuditSearch prints the records of the audit files that match every
// filter, reading the files in chain order one line at a time. It exits
// 0 when a record matched, 1 when none did (as grep does).
func cmdAuditSearch(args []string, now time.Time, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit search", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f searchFilter
	fs.StringVar(&f.user, "user", "", "the login, or the end user a BI service acted for")
	fs.StringVar(&f.session, "session", "", "the session id")
	fs.StringVar(&f.event, "event", "", "the event: statement, connect, auth_failure, disconnect, reload, …")
	fs.StringVar(&f.decision, "decision", "", "allowed, rewritten or denied")
	fs.StringVar(&f.role, "role", "", "a role of the login, or of the end user a BI service acted for (acting_roles)")
	fs.StringVar(&f.kind, "kind", "", "a statement kind: select, insert, update, delete, copy, set, show, fetch, move, prepare, execute, transaction, … (older spellings such as VariableShowStmt too)")
	fs.StringVar(&f.table, "table", "", "a governed table the statement touched, schema.table (without schema: in any schema)")
	fs.StringVar(&f.column, "column", "", "a column the statement could read unmasked, schema.table.column (or table.column, column: in any schema or table)")
	fs.StringVar(&f.masked, "masked-column", "", "a column the statement read masked, schema.table.column (or table.column, column)")
	fs.StringVar(&f.rule, "rule", "", "a policy rule that fired, or the firewall rule that denied the statement (e.g. ungoverned_table)")
	fs.Int64Var(&f.minAffected, "min-affected", 0, "writes that changed at least this many rows (INSERT, UPDATE, DELETE, COPY FROM, as their tags said; 1: any row)")
	since := fs.String("since", "", "records at or after: RFC 3339, YYYY-MM-DD (UTC), or an age such as 7d or 24h")
	until := fs.String("until", "", "records before: RFC 3339, YYYY-MM-DD (UTC, the whole day included), or an age")
	format := fs.String("format", "table", "table or json (the lines as written)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pgveil audit search [filters] [--format table|json] FILE...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 || (*format != "table" && *format != "json") {
		fs.Usage()
		return 2
	}
	if f.minAffected < 0 {
		fmt.Fprintf(stderr, "pgveil audit search: --min-affected %d: want a count of rows, 0 or more\n", f.minAffected)
		return 2
	}
	if f.decision != "" && !slices.Contains(decisions, f.decision) {
		fmt.Fprintf(stderr, "pgveil audit search: --decision %q: want one of %s\n", f.decision, strings.Join(decisions, ", "))
		return 2
	}
	for _, name := range []struct{ flag, value, example string }{
		{"--table", f.table, "public.responses or responses"},
		{"--column", f.column, "public.responses.email or email"},
		{"--masked-column", f.masked, "public.responses.email or email"},
	} {
		if strings.HasPrefix(name.value, ".") || strings.HasSuffix(name.value, ".") {
			fmt.Fprintf(stderr, "pgveil audit search: %s %q: want a name such as %s\n", name.flag, name.value, name.example)
			return 2
		}
	}
	var err error
	if f.since, err = parseWhen(*since, now, false); err != nil {
		fmt.Fprintf(stderr, "pgveil audit search: --since: %v\n", err)
		return 2
	}
	if f.until, err = parseWhen(*until, now, true); err != nil {
		fmt.Fprintf(stderr, "pgveil audit search: --until: %v\n", err)
		return 2
	}
	files, err := audit.OrderFiles(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "pgveil audit search: %v\n", err)
		return 1
	}
	if *format == "table" {
		fmt.Fprintf(stdout, "%-20s  %-*s  %-10s  %8s  %8s  %-11s  %-80s  %s\n", "TIME", userColumnWidth, "USER", "DECISION", "ROWS", "CHANGED", "KIND", "SQL", "WHY DENIED / ERROR")
	}
	matched, skipped := 0, 0
	gaps := gapWatch{last: map[string]uint64{}}
	for _, file := range files {
		err := audit.ReadLines(file, func(n int, line []byte) error {
			e, err := audit.ParseLine(line)
			if err != nil {
				skipped++
				fmt.Fprintf(stderr, "%s:%d: skipped: %v\n", file, n, err)
				return nil
			}
			gaps.see(stderr, file, n, e)
			if !f.matches(e) {
				return nil
			}
			matched++
			if *format == "json" {
				// NOTE: a line written before the trail escaped C1,
				// format and filler characters holds them raw.
				_, err = fmt.Fprintf(stdout, "%s\n", audit.InertLine(line))
			} else {
				_, err = fmt.Fprintln(stdout, tableRow(e))
			}
			return err
		})
		if err != nil {
			fmt.Fprintf(stderr, "pgveil audit search: %v\n", err)
			return 1
		}
	}
	if skipped > 0 {
		fmt.Fprintf(stderr, "pgveil audit search: %d lines could not be read; run pgveil audit verify\n", skipped)
	}
	if gaps.missing > 0 {
		fmt.Fprintf(stderr, "pgveil audit search: %d records missing from the files given (seq gaps: %d); "+
			"their statements are not searched: run pgveil audit verify\n", gaps.missing, gaps.gaps)
	}
	if matched == 0 {
		return 1
	}
	return 0
}

// gapWatch notices, while pgveil audit search reads the files in chain
// order, the records missing between two it read: a search that finds
// nothing must not read as "nothing happened" when the trail has holes
// (records removed, a rotated file not given).
//
// NOTE: it only counts seq numbers, per chain (one per pgveil instance):
// it verifies no MAC, and a record that goes back (a new chain, a line
// out of order) is left to pgveil audit verify.
type gapWatch struct {
	// last is the seq of the last record read of each chain.
	last map[string]uint64
	// missing and gaps count the records missing and the holes.
	missing, gaps uint64
}

// maxGapLines bounds the gaps gapWatch names one by one.
const maxGapLines = 10

// see takes e, the record at line n of file, and names on stderr the
// records missing before it in its chain.
func (g *gapWatch) see(stderr io.Writer, file string, n int, e *audit.Entry) {
	last, ok := g.last[e.Chain]
	if ok && e.Seq <= last && e.Seq != 1 {
		// A line repeated or moved: the next goes on from last.
		return
	}
	g.last[e.Chain] = e.Seq
	if !ok || e.Seq <= last+1 {
		return
	}
	g.gaps++
	g.missing += e.Seq - last - 1
	if g.gaps <= maxGapLines {
		fmt.Fprintf(stderr, "%s:%d: %d records missing before seq %d (the one before was seq %d)\n",
			file, n, e.Seq-last-1, e.Seq, last)
	}
}

// tableRow renders a record as a row of the table format.
func tableRow(e *audit.Entry) string {
	decision := e.Decision
	if decision == "" {
		decision = e.Event
	}
	rows, changed := "", ""
	if e.Event == audit.EventStatement {
		rows = strconv.FormatInt(e.Rows, 10)
	}
	if e.Affected != 0 {
		// NOTE: blank for a write that changed no row, as for a read.
		changed = strconv.FormatInt(e.Affected, 10)
	}
	user := userColumn(e.User)
	if e.ActingFor != "" {
		user += " as " + userColumn(e.ActingFor)
	}
	row := fmt.Sprintf("%-20s  %-*s  %-10s  %8s  %8s  %-11s  %s", e.Time.UTC().Format(time.RFC3339), userColumnWidth, user,
		printableText(decision), rows, changed, printableText(e.Kind), shorten(e.SQL, 80))
	if why := whyColumn(e); why != "" {
		// NOTE: padded by characters, as shorten counts them.
		if n := utf8.RuneCountInString(row); n < sqlColumnEnd {
			row += strings.Repeat(" ", sqlColumnEnd-n)
		}
		row += "  " + why
	}
	return row
}

// userColumnWidth is the width of the table format's USER column: two
// names of 12 characters joined by " as ", so that a BI service acting
// for an end user ("metabase as marie") lines up with a plain login.
// NOTE: a longer name is shown whole (maxUserColumn) and pushes its
// row's later columns right; the json format is the one to parse.
const userColumnWidth = 12 + len(" as ") + 12

// maxUserColumn is the most characters of a user name the table shows:
// pgveil's longest login (256 bytes; an e-mail address may be one), so
// that a real login is never cut.
const maxUserColumn = 256

// userColumn renders a login (or the end user a BI service acted for)
// for the table: printable, its runs of spaces collapsed and cut to
// maxUserColumn characters.
//
// NOTE: a failed startup's login name is whatever the client sent: left
// as it is, hundreds of spaces and "allowed  0  select …" after a name
// would pose as the row's columns and push its real decision off the
// auditor's screen. The json format keeps the name exact.
func userColumn(s string) string {
	if r := []rune(s); len(r) > maxUserColumn {
		s = string(r[:maxUserColumn-1]) + "…"
	}
	return strings.Join(strings.FieldsFunc(printableText(s), unicode.IsSpace), " ")
}

// sqlColumnEnd is where the SQL column of the table format ends: the
// widths of the columns before it and their separators, and 80.
const sqlColumnEnd = 20 + 2 + userColumnWidth + 2 + 10 + 2 + 8 + 2 + 8 + 2 + 11 + 2 + 80

// whyColumn is the last column of the table format, shortened: for a
// denied statement, the firewall rule, its SQLSTATE and the refusal's
// message; for
// one that failed upstream, its error; for one that did not run or was
// cut short (not executed after an earlier error of its batch,
// interrupted, rolled back), what its message says; for a session event,
// its reason (and the SQLSTATE the client was sent, if any). "" otherwise:
// a row without it ran to its end.
func whyColumn(e *audit.Entry) string {
	var parts []string
	switch {
	case e.Decision == audit.DecisionDenied, e.Event != audit.EventStatement:
		why := e.Reason
		if e.SQLState != "" {
			why += " (" + e.SQLState + ")"
		}
		parts = append(parts, why)
	case e.UpstreamError != "":
		parts = append(parts, "error "+e.UpstreamError)
	}
	parts = append(parts, e.Message)
	parts = slices.DeleteFunc(parts, func(p string) bool { return p == "" })
	return shorten(strings.Join(parts, ": "), 100)
}

// shorten collapses the white space of s, cuts it to n characters and
// makes it printable.
func shorten(s string, n int) string {
	s = strings.Join(strings.FieldsFunc(s, unicode.IsSpace), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return printableText(s)
}

// printableText returns s with every character a terminal would act on
// rather than print written as an escape: control characters (ESC, a
// newline…), format characters (bidirectional overrides, zero-width
// ones) and invalid UTF-8. Records hold what clients sent (a login a
// failed startup gave, a statement's comments): printed raw, they could
// clear or rewrite the auditor's screen, or fake a row of the table.
func printableText(s string) string { return printable.Escape(s, nil) }

// unprintable reports whether a terminal would act on r rather than
// print it, or print nothing a reader could see: the set the audit trail
// escapes (printable.Unprintable).
func unprintable(r rune) bool { return printable.Unprintable(r) }

// parseWhen parses a --since or --until value: RFC 3339, a date (UTC
// midnight; for until, the next midnight, so that the day is included),
// or an age before now such as "7d", "24h" or "90m". "" is the zero
// time (no bound).
func parseWhen(s string, now time.Time, until bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		if until {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	var age time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if n, err = strconv.Atoi(days); err == nil {
			age = time.Duration(n) * 24 * time.Hour
		}
	} else {
		age, err = time.ParseDuration(s)
	}
	if err != nil || age < 0 {
		return time.Time{}, errors.New(`want an RFC 3339 time ("2026-11-30T02:15:00Z"), a date ("2026-11-30") or an age ("7d", "24h")`)
	}
	return now.Add(-age), nil
}
