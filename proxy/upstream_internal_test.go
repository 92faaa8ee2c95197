package proxy

import (
	"strings"
	"testing"
)

// TestEnglishMessages: the lc_messages settings whose messages pgveil can
// read (and scrub) are C, POSIX and English locales, as initdb writes
// them; a translation, or the server's environment's choice, is not.
func TestEnglishMessages(t *testing.T) {
	for v, want := range map[string]bool{
		"C": true, "C.UTF-8": true, "C.utf8": true, "POSIX": true, "en_US.UTF-8": true, "en_GB.utf8": true,
		"en": true, "English_United States.1252": true, "en_US@euro": true,
		"": false, "fr_FR.UTF-8": false, "de_DE.utf8": false, "French_France.1252": false, "ca_ES": false,
		"cs_CZ": false, "eng": false, "Cx": false,
	} {
		if got := englishMessages(v); got != want {
			t.Errorf("englishMessages(%q) = %v, want %v", v, got, want)
		}
	}
	if err := checkMessages("fr_FR.UTF-8", `pgveil_"svc`); err == nil || !strings.Contains(err.Error(), `ALTER ROLE "pgveil_""svc" SET lc_messages = 'C'`) {
		t.Errorf("checkMessages of a French locale: %v", err)
	}
}
