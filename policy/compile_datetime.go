package policy

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/rewrite"
)

// Date and time constants of a policy must select the same rows whatever
// the client SETs: DateStyle decides how '01/02/2025' reads, TimeZone
// which instant '2025-01-02 10:00' (or the date '2025-01-02' compared
// with a timestamptz) is, IntervalStyle the sign of '-1 2:00:00'. So:
//
//   - at load, a string constant that looks like a date must be ISO 8601
//     (YYYY-MM-DD…), an interval constant may not be negative, and
//     CURRENT_DATE, CURRENT_TIME, LOCALTIME and LOCALTIMESTAMP (the
//     session's local date or time) are refused (see exprChecker);
//   - when a governed relation's filter is built, a string constant
//     compared with a date, timestamp or timestamptz column (written in
//     the rule, or an attribute bound from me.<name>) is rendered anew as
//     a typed constant of the column's type in a form every setting reads
//     alike: '2025-01-02'::date, '2025-01-02 10:00:00'::timestamp,
//     '2025-01-02 10:00:00+00'::timestamptz. A time without a UTC offset
//     is UTC, a date compared with a timestamptz its midnight UTC. A
//     constant that is not ISO 8601 makes the comparison NULL: it
//     selects no row (fail closed), whatever NOT or OR surrounds it.
//
// NOTE: what cannot be pinned this way is documented in configs/README.md:
// now() is an instant, but arithmetic with days or months on it, date_trunc,
// casts of timestamptz to date or text and to_char follow TimeZone and
// DateStyle. Policies should compare columns with constants.

// dateLikeRE matches strings PostgreSQL's date parser reads as a date
// written with digits: 2025-01-02, 01/02/2025, 2.1.2025.
var dateLikeRE = regexp.MustCompile(`^\s*[0-9]{1,4}[-/.][0-9]{1,2}[-/.][0-9]{1,4}`)

// isoRE matches the ISO 8601 forms a policy constant may take: a date,
// optionally a time (with seconds and fraction optional), optionally a
// UTC offset.
var isoRE = regexp.MustCompile(`^([0-9]{4})-([0-9]{2})-([0-9]{2})` +
	`(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,6}))?)?)?` +
	`\s*(Z|z|[+-][0-9]{2}(?::?[0-9]{2})?)?$`)

// isoDateTime is a parsed ISO 8601 constant.
type isoDateTime struct {
	// wall is the date and time as written, in UTC's location.
	wall time.Time
	// offset is the UTC offset in seconds, when one is written.
	offset    int
	hasOffset bool
}

// parseISO parses s when it is one of the forms isoRE accepts and names a
// valid date and time.
func parseISO(s string) (isoDateTime, bool) {
	m := isoRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return isoDateTime{}, false
	}
	num := func(s string) int {
		n, _ := strconv.Atoi(s)
		return n
	}
	frac := 0
	if m[7] != "" {
		frac = num((m[7] + "00000")[:6])
	}
	y, mo, d, h, mi, sec := num(m[1]), num(m[2]), num(m[3]), num(m[4]), num(m[5]), num(m[6])
	wall := time.Date(y, time.Month(mo), d, h, mi, sec, frac*1000, time.UTC)
	if wall.Year() != y || int(wall.Month()) != mo || wall.Day() != d || h > 23 || mi > 59 || sec > 59 {
		return isoDateTime{}, false
	}
	v := isoDateTime{wall: wall}
	if z := m[8]; z != "" {
		v.hasOffset = true
		if z != "Z" && z != "z" {
			digits := strings.ReplaceAll(z[1:], ":", "")
			oh, om := num(digits[:2]), 0
			if len(digits) == 4 {
				om = num(digits[2:])
			}
			if oh > 15 || om > 59 {
				return isoDateTime{}, false
			}
			v.offset = oh*3600 + om*60
			if z[0] == '-' {
				v.offset = -v.offset
			}
		}
	}
	return v, true
}

// datetimeKinds maps format_type's names of the pinned column types,
// without modifiers, to the type the constant is rendered as.
var datetimeKinds = map[string]string{
	"date":                        "date",
	"timestamp without time zone": "timestamp",
	"timestamp with time zone":    "timestamptz",
}

// typmodRE matches the modifiers of a type name, "(3)".
var typmodRE = regexp.MustCompile(`\([0-9, ]*\)`)

// datetimeKind returns the pinned kind of a column type, "" for others.
func datetimeKind(typ string) string {
	return datetimeKinds[strings.Join(strings.Fields(typmodRE.ReplaceAllString(typ, "")), " ")]
}

// renderDatetime returns the constant s, compared with a column of kind,
// as a typed constant every DateStyle and TimeZone reads alike; false
// when s is not ISO 8601.
func renderDatetime(s, kind string) (*pg_query.Node, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "infinity", "-infinity":
		return typeCast(pg_query.MakeAConstStrNode(strings.ToLower(strings.TrimSpace(s)), -1), scalarType(kind)), true
	}
	v, ok := parseISO(s)
	if !ok {
		return nil, false
	}
	var text string
	switch kind {
	case "date":
		text = v.wall.Format("2006-01-02")
	case "timestamp":
		text = v.wall.Format("2006-01-02 15:04:05.999999")
	case "timestamptz":
		t := v.wall.Add(-time.Duration(v.offset) * time.Second)
		text = t.Format("2006-01-02 15:04:05.999999") + "+00"
	default:
		return nil, false
	}
	return typeCast(pg_query.MakeAConstStrNode(text, -1), scalarType(kind)), true
}

// pinnedComparisons are the operators whose string operand pinDatetimes
// renders anew.
var pinnedComparisons = map[string]bool{"=": true, "<>": true, "<": true, "<=": true, ">": true, ">=": true}

// pinDatetimes returns filter, or a copy of it in which every string
// constant compared with a date, timestamp or timestamptz column of rel
// (directly, through a cast to a date/time type, or as an element of =
// ANY(ARRAY[…])) is rendered by renderDatetime, and every comparison with
// a constant that is not ISO 8601 is NULL, as is a date or timestamp
// cast of one, or a negative interval cast, anywhere else in filter; ok
// is false when there was one.
//
// NOTE: the NULL only keeps a comparison from being true: a caller given
// ok false must drop the whole expression (a rule grants no row, a mask
// shows NULL), since COALESCE or a CASE's ELSE reads past a NULL. The
// load-time checks refuse such constants in the files: only an attribute
// value (me.since = "03/02/2025", "now") can be one.
func pinDatetimes(filter *pg_query.Node, rel *rewrite.Relation) (pinned *pg_query.Node, ok bool) {
	kinds := map[string]string{}
	for _, c := range rel.Columns {
		if k := datetimeKind(c.Type); k != "" {
			kinds[c.Name] = k
		}
	}
	if filter == nil {
		return filter, true
	}
	n := proto.Clone(filter).(*pg_query.Node)
	ok = true
	walkNodes(n, func(x *pg_query.Node) {
		if tc := x.GetTypeCast(); tc != nil && typeKind(tc.TypeName) == "timestamptz" {
			// NOTE: anywhere else, a timestamptz constant without offset
			// would be read in the session's TimeZone; one that is not
			// ISO 8601 is NULL, as a missing attribute would be.
			if c := tc.Arg.GetAConst(); c != nil && c.GetSval() != nil {
				r, read := renderDatetime(c.GetSval().GetSval(), "timestamptz")
				if !read {
					r = typeCast(nullConst(), scalarType("timestamptz"))
					ok = false
				}
				x.Node = r.Node
			}
			return
		}
		if tc := x.GetTypeCast(); tc != nil {
			// NOTE: a date or timestamp constant read outside a
			// comparison with a column (me.since::date + 1) is not
			// rendered anew, but DateStyle decides how one that is not
			// ISO 8601 reads, and IntervalStyle a negative interval: as
			// the load-time checks refuse such constants in the files
			// (constantProblem), one an attribute's value brings is NULL
			// and fails the expression (ok false).
			c := tc.Arg.GetAConst()
			if c == nil || c.GetSval() == nil {
				return
			}
			s := c.GetSval().GetSval()
			switch k := typeKind(tc.TypeName); {
			case k != "":
				if _, read := renderDatetime(s, k); !read {
					x.Node = typeCast(nullConst(), scalarType(k)).Node
					ok = false
				}
			case isIntervalType(tc.TypeName) && constantProblem(s, "interval") != "":
				x.Node = typeCast(nullConst(), scalarType("interval")).Node
				ok = false
			}
			return
		}
		e := x.GetAExpr()
		if e == nil || len(e.Name) != 2 || !pinnedComparisons[e.Name[1].GetString_().GetSval()] {
			return
		}
		read := true
		switch e.Kind {
		case pg_query.A_Expr_Kind_AEXPR_OP:
			if k := columnKind(e.Lexpr, kinds); k != "" {
				read = pinOperand(e.Rexpr, k)
			} else if k := columnKind(e.Rexpr, kinds); k != "" {
				read = pinOperand(e.Lexpr, k)
			}
		case pg_query.A_Expr_Kind_AEXPR_OP_ANY, pg_query.A_Expr_Kind_AEXPR_OP_ALL:
			if k := columnKind(e.Lexpr, kinds); k != "" {
				if arr := e.Rexpr.GetAArrayExpr(); arr != nil {
					for _, el := range arr.Elements {
						read = pinOperand(el, k) && read
					}
				}
			}
		}
		if !read {
			x.Node = typeCast(nullConst(), scalarType("bool")).Node
			ok = false
		}
	})
	return n, ok
}

// columnKind returns the pinned kind of n when it is a bare reference to
// one of the columns of kinds.
func columnKind(n *pg_query.Node, kinds map[string]string) string {
	ref := n.GetColumnRef()
	if ref == nil || len(ref.Fields) != 1 {
		return ""
	}
	return kinds[ref.Fields[0].GetString_().GetSval()]
}

// pinOperand renders n anew in place when it is a string constant, or a
// string constant cast to a date/time type, compared with a column of
// kind; it returns false when such a constant is not ISO 8601. Other
// operands are left alone.
func pinOperand(n *pg_query.Node, kind string) bool {
	c := n.GetAConst()
	if tc := n.GetTypeCast(); tc != nil && typeKind(tc.TypeName) != "" {
		c = tc.Arg.GetAConst()
		// NOTE: PostgreSQL compares a date with a timestamp as
		// timestamps: keep the more precise of the two types.
		if k := typeKind(tc.TypeName); kindRank[k] > kindRank[kind] {
			kind = k
		}
	}
	if c == nil || c.GetSval() == nil {
		return true
	}
	r, ok := renderDatetime(c.GetSval().GetSval(), kind)
	if !ok {
		return false
	}
	n.Node = r.Node
	return true
}

// typeKind returns the pinned kind t names (date, timestamp or
// timestamptz, however spelled, without array bounds), or "".
func typeKind(t *pg_query.TypeName) string {
	if t == nil || len(t.Names) == 0 || len(t.ArrayBounds) > 0 {
		return ""
	}
	switch k := t.Names[len(t.Names)-1].GetString_().GetSval(); k {
	case "date", "timestamp", "timestamptz":
		return k
	}
	return ""
}

// isIntervalType reports whether t names interval, however spelled,
// without array bounds.
func isIntervalType(t *pg_query.TypeName) bool {
	return t != nil && len(t.Names) > 0 && len(t.ArrayBounds) == 0 &&
		t.Names[len(t.Names)-1].GetString_().GetSval() == "interval"
}

// kindRank orders the pinned kinds by precision.
var kindRank = map[string]int{"date": 1, "timestamp": 2, "timestamptz": 3}

// constantProblem returns why the string constant s, written in a policy
// expression (cast to typ when typ is not ""), could read differently
// under another DateStyle or IntervalStyle, or "".
func constantProblem(s, typ string) string {
	if typ == "interval" && strings.Contains(s, "-") {
		return fmt.Sprintf("the interval %q is negative, and IntervalStyle decides how a negative interval reads: "+
			"write a positive interval and subtract it", s)
	}
	if dateLikeRE.MatchString(s) {
		if _, ok := parseISO(s); !ok {
			return fmt.Sprintf("%q is not an ISO 8601 date or time, so DateStyle decides how it reads: "+
				"write YYYY-MM-DD, YYYY-MM-DD HH:MM:SS, and a UTC offset (+00) for an instant "+
				"(a string that only looks like a date: cast it, '…'::text)", s)
		}
	}
	return ""
}
