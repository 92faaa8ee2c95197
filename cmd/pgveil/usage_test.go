package main

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestUsageNamesEveryFlag: the usage pgveil prints without a command is
// where a new user learns the commands; a flag a command's --help lists
// but the usage line leaves out (serve's --watch) goes unnoticed.
func TestUsageNamesEveryFlag(t *testing.T) {
	flag := regexp.MustCompile(`(?m)^  -([a-z-]+)`)
	cmds := [][]string{
		{"serve"}, {"check"}, {"test"}, {"explain"}, {"mask-keys"}, {"passwd"}, {"audit", "verify"},
	}
	// NOTE: audit search's filters are many and summed up as [filters]
	// and "--user, --column, --since, …"; version has no flags.
	abridged := [][]string{{"audit", "search"}, {"version"}}
	for _, cmd := range cmds {
		t.Run("pgveil "+strings.Join(cmd, " ")+" lists every flag of its --help", func(t *testing.T) {
			_, _, help := runCLI("", append(cmd, "--help")...)
			line := usageLine(t, cmd)
			flags := flag.FindAllStringSubmatch(help, -1)
			if len(flags) == 0 {
				t.Fatalf("--help lists no flag, so nothing is compared:\n%s", help)
			}
			for _, m := range flags {
				if !regexp.MustCompile(`--` + regexp.QuoteMeta(m[1]) + `\b[^-]`).MatchString(line + " ") {
					t.Errorf("usage line %q lacks --%s", line, m[1])
				}
			}
		})
	}
	t.Run("every command of the usage is compared or known to be abridged", func(t *testing.T) {
		for _, l := range strings.Split(usage, "\n") {
			f := strings.Fields(l)
			if len(f) < 2 || f[0] != "pgveil" || f[1] == "—" {
				continue
			}
			known := func(c []string) bool {
				return len(f) > len(c) && slices.Equal(f[1:len(c)+1], c)
			}
			if !slices.ContainsFunc(cmds, known) && !slices.ContainsFunc(abridged, known) {
				t.Errorf("usage line %q is of a command the test does not compare", l)
			}
		}
	})
}

// usageLine returns the usage's line of a command: its flags are all on
// that line.
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
