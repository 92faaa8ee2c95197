package rewrite

import (
	"strconv"
	"testing"
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
