package policytest

import (
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
)

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

// numberTextHint explains a failure where an expected number equals the
// value got but for its text (75000 against numeric's "75000.00"):
// numbers in rows are compared as written in decimal, which a DBA
// copying a value from psql does not expect. "" when no cell is so.
func numberTextHint(want, got [][]*string) string {
	for i := range min(len(want), len(got)) {
		for j := range min(len(want[i]), len(got[i])) {
			w, g := want[i][j], got[i][j]
			if w == nil || g == nil || *w == *g {
				continue
			}
			var a, b big.Rat
			if _, ok := a.SetString(*w); !ok {
				continue
			}
			if _, ok := b.SetString(*g); ok && a.Cmp(&b) == 0 {
				return fmt.Sprintf(" (values are compared as PostgreSQL prints them: write %q, a string, not %s)", *g, *w)
			}
		}
	}
	return ""
}
