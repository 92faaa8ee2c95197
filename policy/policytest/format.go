package policytest

import (
	"fmt"
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
