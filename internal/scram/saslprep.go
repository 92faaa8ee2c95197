package scram

import (
	"sort"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// runeRanges is a sorted list of inclusive, non-overlapping code point
// ranges.
type runeRanges [][2]rune

// contains reports whether r falls in one of the ranges.
func (t runeRanges) contains(r rune) bool {
	i := sort.Search(len(t), func(i int) bool { return t[i][1] >= r })
	return i < len(t) && t[i][0] <= r
}

// normalizePassword is the password PostgreSQL feeds to PBKDF2: the
// SASLprep form of password when SASLprep accepts it, otherwise password's
// raw bytes.
func normalizePassword(password string) string {
	if prepped, ok := saslprep(password); ok {
		return prepped
	}
	return password
}

// saslprep applies SASLprep (RFC 4013, the stringprep profile of RFC 3454
// for passwords) exactly as PostgreSQL's pg_saslprep does, and reports
// false where pg_saslprep reports failure (invalid UTF-8, prohibited or
// unassigned characters, bad bidirectional text, an empty result).
//
// NOTE: like pg_saslprep, and unlike a literal reading of RFC 3454, the
// prohibition and bidirectional checks look at the mapped string before
// NFKC normalisation. Matching PostgreSQL byte for byte matters more than
// the letter of the RFC: a verifier is only useful if clients derive the
// same key from the same password.
func saslprep(password string) (string, bool) {
	ascii := true
	for i := 0; i < len(password); i++ {
		if password[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		// An ASCII string needs no further processing.
		return password, true
	}
	if !utf8.ValidString(password) {
		return "", false
	}

	// 1) Map: non-ASCII spaces to SPACE, "commonly mapped to nothing"
	// characters to nothing.
	mapped := make([]rune, 0, len(password))
	for _, r := range password {
		switch {
		case nonASCIISpace.contains(r):
			mapped = append(mapped, ' ')
		case mappedToNothing.contains(r):
		default:
			mapped = append(mapped, r)
		}
	}
	if len(mapped) == 0 {
		return "", false
	}

	// 3) Prohibit, and 4) check bidi, on the mapped code points.
	randAL := false
	for _, r := range mapped {
		if prohibitedOutput.contains(r) || unassigned.contains(r) {
			return "", false
		}
		if randALCat.contains(r) {
			randAL = true
		}
	}
	if randAL {
		for _, r := range mapped {
			if lCat.contains(r) {
				return "", false
			}
		}
		if !randALCat.contains(mapped[0]) || !randALCat.contains(mapped[len(mapped)-1]) {
			return "", false
		}
	}

	// 2) Normalise with NFKC.
	var b strings.Builder
	b.Grow(len(password))
	for _, r := range mapped {
		b.WriteRune(r)
	}
	return norm.NFKC.String(b.String()), true
}
