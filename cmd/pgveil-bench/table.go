package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// table is a titled grid of text, printed aligned for a terminal or as a
// Markdown table.
type table struct {
	title  string
	header []string
	rows   [][]string
}

// add appends a row.
func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

// write prints the table in the chosen format, followed by a blank line.
func (t *table) write(w io.Writer, markdown bool) {
	if markdown {
		t.writeMarkdown(w)
	} else {
		t.writeText(w)
	}
	fmt.Fprintln(w)
}

// writeText prints the title and the columns aligned with two spaces
// between them.
func (t *table) writeText(w io.Writer) {
	fmt.Fprintln(w, t.title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  "+strings.Join(t.header, "\t"))
	for _, r := range t.rows {
		fmt.Fprintln(tw, "  "+strings.Join(r, "\t"))
	}
	_ = tw.Flush() // NOTE: w is stdout; a write error has nowhere to go.
}

// writeMarkdown prints the title as a heading and the grid as a GitHub
// Markdown table.
func (t *table) writeMarkdown(w io.Writer) {
	fmt.Fprintf(w, "#### %s\n\n", t.title)
	fmt.Fprintf(w, "| %s |\n", strings.Join(escapeCells(t.header), " | "))
	seps := make([]string, len(t.header))
	for i := range seps {
		seps[i] = "---"
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(seps, " | "))
	for _, r := range t.rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(escapeCells(r), " | "))
	}
}

// escapeCells escapes the pipes that would split a Markdown cell.
func escapeCells(cells []string) []string {
	out := make([]string, len(cells))
	for i, c := range cells {
		out[i] = strings.ReplaceAll(c, "|", `\|`)
	}
	return out
}
