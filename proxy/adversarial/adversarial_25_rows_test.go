package adversarial_test

import (
	"context"
	"testing"

	"github.com/pgveil/pgveil/internal/audit"
)

// TestAdversarial25HostileRows holds the identity rows an HR import may
// bring to what each says and no more: a row for the BI service's own
// login changes none of its roles, a second row for a person or a row
// without a persona gives her no access (and no service acts for her),
// a row without a login is no one, and the audit trail's record of the
// refresh names each login so that none reads as the record's own words.
func TestAdversarial25HostileRows(t *testing.T) {
	s := hr25Start(t)
	ctx := context.Background()
	mb := hr24Conn(t, s.p, "metabase")
	hr25Run(t, mb, hr25Step{hr25Who, "[ 0]"})
	const forged = "mallory; logins removed, now without access (1): hanna"
	s.change(t, `INSERT INTO hr.employees VALUES
	 ('metabase', 1, 'hr_bp'), (NULL, 1, 'hr_bp'), ('eric', 1, 'hr_bp'), ('mallory', 1, NULL),
	 ('`+forged+`', 100, 'employee'), (repeat('a', 100000), 100, 'employee')`)
	hr25Run(t, mb,
		// The service's user block decides its roles; the row adds none.
		hr25Step{hr25Who, "[ 0]"}, hr25Step{hr25Names, "[NULL]"},
		// Two rows for eric: he has no access, and no one acts for him.
		hr25Step{"SET ROLE eric", "ERROR 42501"}, hr25Step{hr25Who, "[ 0]"},
		// A row without a persona matches no role of act_for.
		hr25Step{"SET ROLE mallory", "ERROR 42501"},
		hr25Step{"SET ROLE hanna", ""}, hr25Step{hr25Who, "[hanna 4]"}, hr25Step{"RESET ROLE", ""})
	if _, err := mb.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
	mb.Close(ctx)
	var msg string
	for _, e := range s.entries(t) {
		if e.Event == audit.EventReload && e.Reason == "identity refresh" {
			msg = e.Message
		}
	}
	// Only eric lost his access; no one without a password or a role
	// (petra's and wanda's user blocks, the rows of mallory, of the long
	// login and of the one that reads as the record's words) was added
	// or removed.
	if want := `identity rows changed upstream; logins removed, now without access (1): "eric"`; msg != want {
		t.Errorf("the refresh record says\n%s\nwant\n%s", msg, want)
	}
}
