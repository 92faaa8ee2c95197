package rewrite

import (
	"strconv"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// TestFitsInt4 holds fitsInt4 to strconv on the boundaries of int4.
func TestFitsInt4(t *testing.T) {
	for _, d := range []string{"0", "00", "7", "2147483647", "2147483648", "02147483647", "0002147483648",
		"9999999999", "10000000000", "4294967296", "18446744073709551616", "99999999999999999999"} {
		v, err := strconv.ParseUint(d, 10, 64)
		want := err == nil && v <= 1<<31-1
		if got := fitsInt4(d); got != want {
			t.Errorf("fitsInt4(%q) = %v, want %v", d, got, want)
		}
	}
}

// TestSameNormalization checks, against pg_query's normalisation, which
// literal shapes the engine may cache for statements forwarded
// unchanged: the ones equal to the normalisation up to the minus signs
// the parser folds into a number, and then the same for every
// statement of the shape, whatever its values.
func TestSameNormalization(t *testing.T) {
	for _, tc := range []struct {
		text, other string
		same        bool
	}{
		{"UPDATE a SET b = b + -1234 WHERE c = 5678", "UPDATE a SET b = b + -1 WHERE c = 0", true},
		{"SELECT - 5, -\t6, a-7, a - -8, 4 -5, $1 - -3", "SELECT - 1, -\t1, a-1, a - -1, 1 -1, $1 - -1", true},
		{"INSERT INTO h (a, d, t) VALUES (1, -4, CURRENT_TIMESTAMP)", "INSERT INTO h (a, d, t) VALUES (9, -9, CURRENT_TIMESTAMP)", true},
		{"SELECT -1.5e3, -2147483648, -0, -0.0, f(-3), b[-1]", "SELECT -2.5e3, -2147483649, -1, -1.0, f(-4), b[-2]", true},
		{"SELECT 1 WHERE x = 'a' AND y > -2", "SELECT 1 WHERE x = '-' AND y > -3", true},
		// Normalisation replaces more than the number, or numbers the
		// placeholders otherwise: never cached.
		{"SELECT -(9)", "SELECT -(8)", false},
		{"SELECT - -10", "SELECT - -11", false},
		{"SELECT * FROM t LIMIT -1 OFFSET -2", "SELECT * FROM t LIMIT -3 OFFSET -4", false},
		{"SELECT a::numeric(10,-2)", "SELECT a::numeric(11,-3)", false},
	} {
		t.Run(tc.text, func(t *testing.T) {
			shape, _, ok := literalShapeSpans(tc.text, nil)
			other, _, ook := literalShapeSpans(tc.other, nil)
			if !ok || !ook || shape != other {
				t.Fatalf("the two texts must have one literal shape: %q %q", shape, other)
			}
			lit := shape[strings.IndexByte(shape, 0)+1:]
			norm, err := pg_query.Normalize(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if got := sameNormalization(lit, norm); got != tc.same {
				t.Fatalf("sameNormalization(%q, %q) = %v, want %v", lit, norm, got, tc.same)
			}
			if otherNorm, err := pg_query.Normalize(tc.other); tc.same && (err != nil || otherNorm != norm) {
				t.Fatalf("%q normalises to %q, %q to %q (%v)", tc.text, norm, tc.other, otherNorm, err)
			}
		})
	}
}
