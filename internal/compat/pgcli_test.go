package compat

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// pgcli runs the statements of stdin through pgcli as e's user (pgcli
// reads a script from a stdin that is not a terminal) and returns what it
// printed. Its completion refresher reads pg_catalog on a second
// connection meanwhile, as in an interactive session.
func pgcli(t *testing.T, bin string, e endpoint, stdin string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--less-chatty", "--row-limit", "0", e.url("postgresql"))
	// pgcli writes its configuration and history under HOME.
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "TERM=dumb", "LC_ALL=C.UTF-8")
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("pgcli: %v\n%s", err, out.String())
	}
	return out.String()
}

func TestPgcli(t *testing.T) {
	requireVeil(t)
	bin, err := exec.LookPath("pgcli")
	if err != nil {
		missing(t, "pgcli", err)
	}
	const script = `SELECT country, count(*) AS n FROM responses GROUP BY 1 ORDER BY 1;
SELECT count(*) AS with_email FROM responses WHERE email IS NOT NULL;
\dt
\d responses
`
	t.Run("marie sees France only, no email, and the table's columns", func(t *testing.T) {
		out := pgcli(t, bin, through(t, "marie"), script)
		for _, want := range []string{"France", "| 0 ", "responses", "email", "numeric(5,2)"} {
			if !strings.Contains(out, want) {
				t.Errorf("pgcli output lacks %q:\n%s", want, out)
			}
		}
		for _, hidden := range []string{"USA", "Germany"} {
			if strings.Contains(out, hidden) {
				t.Errorf("marie's pgcli output shows %q:\n%s", hidden, out)
			}
		}
	})
	t.Run("hq sees every country", func(t *testing.T) {
		out := pgcli(t, bin, through(t, "hq"), script)
		for _, want := range []string{"France", "USA"} {
			if !strings.Contains(out, want) {
				t.Errorf("pgcli output lacks %q:\n%s", want, out)
			}
		}
	})
}
