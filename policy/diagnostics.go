package policy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/pgveil/pgveil/internal/printable"
)

// diagnosticWidth is the column at which WriteDiagnostics wraps details.
const diagnosticWidth = 78

// WriteDiagnostics prints diags for the configuration author, one block
// per diagnostic, in the form compilers use so editors can jump to it:
//
//	pgveil.hcl:9:14: error: Error in function call
//	   9 |   password = env("PGVEIL_UPSTREAM_PASSWORD")
//	     |              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
//	  Call to function "env" failed: environment variable
//	  "PGVEIL_UPSTREAM_PASSWORD" is not set.
//
// files (see Loader.Files) supplies the source lines; a diagnostic whose
// file is not there is printed without them. Diagnostics come in the
// order of the files they point at, line by line, as an editor lists
// them (those pointing nowhere last, in the order found: they are
// mostly what follows from the others, as a missing block from a
// misspelt one); diags itself
// is left as it is.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics) error {
	bw := bufio.NewWriter(w)
	for i, d := range inFileOrder(diags) {
		if i > 0 {
			bw.WriteByte('\n')
		}
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		// NOTE: a diagnostic may quote what the database holds (a
		// relation's or a column's name, which anyone who may create a
		// table there chose) and what the file holds: what a terminal
		// would act on is escaped.
		summary := printable.Escape(d.Summary, nil)
		if d.Subject != nil {
			fmt.Fprintf(bw, "%s:%d:%d: %s: %s\n", printable.Escape(d.Subject.Filename, nil), d.Subject.Start.Line, d.Subject.Start.Column, sev, summary)
			writeSnippet(bw, files[d.Subject.Filename], *d.Subject)
		} else {
			fmt.Fprintf(bw, "%s: %s\n", sev, summary)
		}
		if d.Detail != "" {
			for _, line := range wrap(printable.Escape(d.Detail, isNewline), diagnosticWidth-2) {
				fmt.Fprintf(bw, "  %s\n", line)
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing diagnostics: %w", err)
	}
	return nil
}

// inFileOrder returns diags sorted by where they point: those with no
// subject last, then by file name, line and column; a stable sort, so
// diagnostics at one place keep the order they were found in.
func inFileOrder(diags hcl.Diagnostics) hcl.Diagnostics {
	sorted := slices.Clone(diags)
	slices.SortStableFunc(sorted, func(a, b *hcl.Diagnostic) int {
		switch {
		case a.Subject == nil && b.Subject == nil:
			return 0
		case a.Subject == nil:
			return 1
		case b.Subject == nil:
			return -1
		}
		if c := strings.Compare(a.Subject.Filename, b.Subject.Filename); c != 0 {
			return c
		}
		if c := a.Subject.Start.Line - b.Subject.Start.Line; c != 0 {
			return c
		}
		return a.Subject.Start.Column - b.Subject.Start.Column
	})
	return sorted
}

// isNewline and isTab are the characters diagnostics keep unescaped
// where they lay out the text.
func isNewline(r rune) bool { return r == '\n' }
func isTab(r rune) bool     { return r == '\t' }

// writeSnippet prints the first source line of rng with the part rng
// covers underlined by carets.
func writeSnippet(w io.Writer, f *hcl.File, rng hcl.Range) {
	if f == nil || rng.Start.Line < 1 {
		return
	}
	lines := bytes.Split(f.Bytes, []byte("\n"))
	if rng.Start.Line > len(lines) {
		return
	}
	line, cut := hideSecret(strings.TrimRight(string(lines[rng.Start.Line-1]), "\r"))
	// NOTE: tabs stay: the caret line repeats them to align.
	line = printable.Escape(line, isTab)
	if secretLines(f)[rng.Start.Line] {
		// A line within a secret's value (a heredoc, a multi-line
		// expression), which names no attribute.
		line, cut = secretShown, 0
	}
	fmt.Fprintf(w, "%4d | %s\n", rng.Start.Line, line)
	// Columns count characters; the caret line repeats tabs so it aligns.
	runes := []rune(line)
	start := min(max(rng.Start.Column-1, 0), len(runes))
	end := len(runes)
	if rng.End.Line == rng.Start.Line {
		end = min(max(rng.End.Column-1, start+1), len(runes))
	}
	if cut >= 0 && start >= cut {
		// The range was the secret: the placeholder stands for it.
		start, end = cut, len(runes)
	}
	var pad strings.Builder
	for _, r := range runes[:start] {
		if r == '\t' {
			pad.WriteByte('\t')
		} else {
			pad.WriteByte(' ')
		}
	}
	fmt.Fprintf(w, "     | %s%s\n", pad.String(), strings.Repeat("^", max(end-start, 1)))
}

// secretAssignment finds, in a source line, the assignment of an
// attribute that holds a secret or a password verifier: upstream.password,
// a user's password, ldap.bind_password, a hash mask's secret,
// audit.hmac_key.
var secretAssignment = regexp.MustCompile(`\b(password|bind_password|secret|hmac_key)\s*=\s*`)

// envCall is a value that reads a secret from the environment by name
// alone, env("NAME") or env("NAME", ""), and ends there (or where the
// line, an object item or a comment does): the name of a secret, not the
// secret.
// NOTE: not env("NAME", "default"), nor any other call: their arguments
// may be the secret itself.
var envCall = regexp.MustCompile(`^env\(\s*"[^"\\$%]*"\s*(?:,\s*""\s*)?\)\s*(?:$|[,}#]|//)`)

// secretShown replaces the value of a secret attribute in a snippet.
const secretShown = "<not shown: a secret>"

// hideSecret returns line with the value of the first secret attribute
// it assigns (secretAssignment) that is not read from the environment by
// name (envCall), and all that follows on the line, replaced by
// secretShown, and the index in runes where that starts; -1 when the
// line assigns none.
//
// NOTE: diagnostics go to the log and, from a failed reload, to the audit
// trail: a snippet must not copy a secret there, not even the warning
// that the secret is written in the file.
func hideSecret(line string) (string, int) {
	for _, m := range secretAssignment.FindAllStringIndex(line, -1) {
		if !envCall.MatchString(line[m[1]:]) {
			return line[:m[1]] + secretShown, utf8.RuneCountInString(line[:m[1]])
		}
	}
	return line, -1
}

// secretLines returns the lines of f, after the first, of the values of
// secret attributes (secretAssignment's names) that span several lines:
// a heredoc's, or a multi-line expression's, whose lines name no
// attribute for hideSecret to find.
func secretLines(f *hcl.File) map[int]bool {
	body, ok := f.Body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	lines := map[int]bool{}
	mark := func(r hcl.Range) {
		for n := r.Start.Line + 1; n <= r.End.Line; n++ {
			lines[n] = true
		}
	}
	_ = hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
		switch n := n.(type) {
		case *hclsyntax.Attribute:
			if secretNames[n.Name] {
				mark(n.Expr.Range())
			}
		case *hclsyntax.ObjectConsExpr:
			for _, it := range n.Items {
				if secretNames[hcl.ExprAsKeyword(it.KeyExpr)] {
					mark(it.ValueExpr.Range())
				}
			}
		}
		return nil
	})
	return lines
}

// secretNames are the attributes secretAssignment finds.
var secretNames = map[string]bool{"password": true, "bind_password": true, "secret": true, "hmac_key": true}

// wrap splits text into lines of at most width characters at spaces,
// keeping the text's own line breaks.
func wrap(text string, width int) []string {
	var out []string
	for _, para := range strings.Split(text, "\n") {
		words := strings.Fields(para)
		if len(words) == 0 {
			out = append(out, "")
			continue
		}
		cur := words[0]
		for _, wd := range words[1:] {
			if len(cur)+1+len(wd) > width {
				out = append(out, cur)
				cur = wd
				continue
			}
			cur += " " + wd
		}
		out = append(out, cur)
	}
	return out
}
