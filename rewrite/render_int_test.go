package rewrite

import (
	"strconv"
	"testing"
)

// TestRenderIntAsFormatInt: an int4 literal spliced as its own token
// (renderLiteral, without a leading zero) is byte for byte what
// strconv.FormatInt prints of its value, for every token the scanner
// reads as an int4, however the text around it is spelled; what the
// scanner reads otherwise (signs, fractions, exponents, underscores,
// letters, non-ASCII digits) never reaches the int4 rendering.
func TestRenderIntAsFormatInt(t *testing.T) {
	texts := []string{
		"SELECT 0", "SELECT 00", "SELECT 000", "SELECT 007", "SELECT 1", "SELECT 9", "SELECT 10", "SELECT 99",
		"SELECT 100", "SELECT 2147483647", "SELECT 02147483647", "SELECT 0000000000000000000002147483647",
		"SELECT 2147483648", "SELECT -2147483648", "SELECT -0", "SELECT - 0", "SELECT +0", "SELECT +5", "SELECT +05",
		"SELECT -00", "SELECT -007", "SELECT 1.", "SELECT 1.5", "SELECT 1e3", "SELECT 1_000", "SELECT 1a",
		"SELECT 0x10", "SELECT 0b1", "SELECT 0o7", "SELECT \u0661\u0662", "SELECT x1", "SELECT a.1", "SELECT 1..2",
		"SELECT 5::int, 05::int, (5), f(5,6)", "SELECT 1 FROM t WHERE a=1 AND b<>+2 AND c>-3",
	}
	for n := 0; n < 100000; n += 7 {
		texts = append(texts, "SELECT "+strconv.Itoa(n), "SELECT 0"+strconv.Itoa(n), "SELECT -"+strconv.Itoa(n))
	}
	for _, text := range texts {
		spans, _, ok := scanLiterals(text, nil)
		if !ok {
			continue
		}
		for _, s := range spans {
			if s.kind != kindInt {
				continue
			}
			tok := text[s.start:s.end]
			v, err := strconv.ParseInt(tok, 10, 64)
			if err != nil {
				t.Fatalf("%q: int4 token %q does not parse: %v", text, tok, err)
			}
			got, ok := renderLiteral(tok, kindInt)
			if want := strconv.FormatInt(v, 10); !ok || got != want {
				t.Fatalf("%q: int4 token %q renders %q (%v), FormatInt prints %q", text, tok, got, ok, want)
			}
			for i := 0; i < len(tok); i++ {
				if tok[i] < '0' || tok[i] > '9' {
					t.Fatalf("%q: int4 token %q holds %q", text, tok, tok[i])
				}
			}
		}
	}
}
