package policy

import "testing"

// TestSQLName holds the identifiers of the check's hints to what
// PostgreSQL reads back as the same name.
func TestSQLName(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"tickets", "tickets"},
		{"ticket_2027", "ticket_2027"},
		{"Tickets", `"Tickets"`},
		{"user", `"user"`},
		{"my table", `"my table"`},
		{`a"b`, `"a""b"`},
		{"2027", `"2027"`},
	} {
		t.Run(c.name+" is written "+c.want, func(t *testing.T) {
			if got := sqlName(c.name); got != c.want {
				t.Fatalf("sqlName(%q) = %s, want %s", c.name, got, c.want)
			}
		})
	}
}
