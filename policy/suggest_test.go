package policy

import "testing"

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"nps", "nps", 0},
		{"", "nps", 3},
		{"nps", "", 3},
		{"nsp", "nps", 1}, // a swap of neighbours is one edit
		{"snp", "nps", 2}, // not neighbours: two substitutions
		{"ca", "abc", 3},  // optimal string alignment edits no rune twice
		{"contcat", "contact", 1},
		{"cuntry", "country", 1},
		{"hsh", "hash", 1},
		{"pärtial", "partial", 1}, // runes, not bytes
		{"éa", "aé", 1},
		{"kitten", "sitting", 3},
	} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := editDistance(tt.b, tt.a); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	for _, tt := range []struct {
		name       string
		given      string
		candidates []string
		want       string
	}{
		{"a swapped pair of a short name is suggested", "nsp", []string{"id", "nps", "score"}, "nps"},
		{"a swapped pair of a longer name is suggested", "emial", []string{"email", "comment"}, "email"},
		{"a short name two edits away is not", "snp", []string{"nps"}, ""},
		{"a long name three edits away is not", "commnet_txt", []string{"comment"}, ""},
		{"the closest candidate wins", "scor", []string{"scores", "score"}, "score"},
		{"no candidate, no suggestion", "nps", nil, ""},
		{"a one-letter name is no typo of another", "D", []string{"A", "B"}, ""},
		{"a name differing only in case is suggested", "d", []string{"A", "D"}, "D"},
		{"a two-letter name one edit away is suggested", "ia", []string{"id"}, "id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := suggest(tt.given, tt.candidates); got != tt.want {
				t.Errorf("suggest(%q, %q) = %q, want %q", tt.given, tt.candidates, got, tt.want)
			}
		})
	}
}
