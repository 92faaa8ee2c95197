package printable

import (
	"testing"
	"unicode"
)

// TestUnprintableTable: Unprintable's bit table says of every character
// what the Unicode tables say.
func TestUnprintableTable(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if Unprintable(r) != unprintableSlow(r) {
			t.Fatalf("Unprintable(%U) = %v, the tables say %v", r, Unprintable(r), unprintableSlow(r))
		}
		if unprintableSlow(r) != (unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point)) {
			t.Fatalf("%U: the tables are not the characters a terminal acts on", r)
		}
	}
}

// TestEscape: what a terminal would act on is escaped, the characters
// kept are not, and text needing nothing comes back as it is.
func TestEscape(t *testing.T) {
	newlines := func(r rune) bool { return r == '\n' }
	for _, tt := range []struct {
		name, in, want string
		keep           func(rune) bool
	}{
		{"plain text is kept", "Its columns are a, b.", "Its columns are a, b.", nil},
		{"accented and CJK letters are kept", "café 東京", "café 東京", nil},
		{"an escape sequence is escaped", "q\x1b[7mINV", `q\u001b[7mINV`, nil},
		{"a bidirectional override is escaped", "a\u202eb", `a\u202eb`, nil},
		{"a tag character beyond the basic plane is escaped", "x\U000e0041", `x\U000e0041`, nil},
		{"invalid UTF-8 is escaped byte by byte", "a\xffb", `a\xffb`, nil},
		{"a newline is escaped", "a\nb", `a\u000ab`, nil},
		{"a newline kept is kept", "a\nb\x07", "a\nb\\u0007", newlines},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Escape(tt.in, tt.keep); got != tt.want {
				t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
