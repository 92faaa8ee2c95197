package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestUsageNamesEveryFlag: the usage pgveil prints without a command is
// where a new user learns the commands; a flag a command's --help lists
// but the usage line leaves out (serve's --watch) goes unnoticed.
func TestUsageNamesEveryFlag(t *testing.T) {
	flag := regexp.MustCompile(`(?m)^  -([a-z-]+)`)
	for _, cmd := range [][]string{
		{"serve"}, {"check"}, {"test"}, {"explain"}, {"mask-keys"}, {"passwd"}, {"audit", "verify"},
	} {
		t.Run("pgveil "+strings.Join(cmd, " ")+" lists every flag of its --help", func(t *testing.T) {
			_, _, help := runCLI("", append(cmd, "--help")...)
			line := usageLine(t, cmd)
			for _, m := range flag.FindAllStringSubmatch(help, -1) {
				if !strings.Contains(line, "--"+m[1]) {
					t.Errorf("usage line %q lacks --%s", line, m[1])
				}
			}
		})
	}
}

// usageLine returns the usage's line of a command, with the flags that
// continue it on the next lines.
func usageLine(t *testing.T, cmd []string) string {
	t.Helper()
	prefix := "pgveil " + cmd[0]
	for _, l := range strings.Split(usage, "\n") {
		f := strings.Fields(l)
		if len(f) >= len(cmd)+1 && f[0] == "pgveil" && strings.Join(f[1:len(cmd)+1], " ") == strings.Join(cmd, " ") {
			return l
		}
	}
	t.Fatalf("the usage has no line for %s", prefix)
	return ""
}
