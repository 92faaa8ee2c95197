package scram

import "testing"

func TestSASLprep(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string
		ok    bool
	}{
		{"ASCII passes through untouched", "pencil", "pencil", true},
		{"ASCII control characters pass through like in PostgreSQL", "a\tb\x7f", "a\tb\x7f", true},
		{"RFC 4013 example: soft hyphen is removed", "I\u00adX", "IX", true},
		{"RFC 4013 example: case is preserved", "user", "user", true},
		{"RFC 4013 example: ordinal feminine is NFKC-mapped", "\u00aa", "a", true},
		{"RFC 4013 example: roman numeral nine is NFKC-mapped", "\u2168", "IX", true},
		{"RFC 4013 example: a control character is prohibited", "\u0007\u00e9", "", false},
		{"RFC 4013 example: mixed bidi is prohibited", "\u0627\u0031", "", false},
		{"non-ASCII spaces become spaces", "a\u00a0b\u3000c", "a b c", true},
		{"a zero-width space is a space, as PostgreSQL checks spaces first", "\u200bx", " x", true},
		{"a string mapped to nothing is refused", "\u00ad\ufeff", "", false},
		{"invalid UTF-8 is refused", "caf\xe9", "", false},
		{"unassigned code points in Unicode 3.2 are refused", "\u0221", "", false},
		{"private use characters are refused", "\ue000", "", false},
		{"right-to-left text without left-to-right characters is accepted", "\u05d0\u05d1", "\u05d0\u05d1", true},
		{"the bidi rules apply before normalisation, like PostgreSQL", "\u05d0\u2100\u05d1", "\u05d0a/c\u05d1", true},
		{"prohibited characters are checked before normalisation, like PostgreSQL", "\u0340a", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := saslprep(tt.input)
			if got != tt.want || ok != tt.ok {
				t.Errorf("saslprep(%+q) = %+q, %v; want %+q, %v", tt.input, got, ok, tt.want, tt.ok)
			}
			wantNormal := tt.want
			if !tt.ok {
				wantNormal = tt.input
			}
			if got := normalizePassword(tt.input); got != wantNormal {
				t.Errorf("normalizePassword(%+q) = %+q, want %+q", tt.input, got, wantNormal)
			}
		})
	}
}

func TestRuneRanges(t *testing.T) {
	table := runeRanges{{0x10, 0x10}, {0x20, 0x2f}}
	for r, want := range map[rune]bool{0x0f: false, 0x10: true, 0x11: false, 0x1f: false, 0x20: true, 0x25: true, 0x2f: true, 0x30: false} {
		if got := table.contains(r); got != want {
			t.Errorf("contains(%#x) = %v, want %v", r, got, want)
		}
	}
}
