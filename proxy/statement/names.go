package statement

// maxNameBytes is NAMEDATALEN-1 (63): PostgreSQL keys prepared statements
// and portals by their first 63 bytes, and its lexer cuts an identifier
// longer than that (at a character's boundary) before EXECUTE, FETCH or
// CLOSE looks it up.
const maxNameBytes = 63

// ServerName returns the name of a prepared statement or portal, as a
// protocol message (Parse, Bind, Execute, Close) gives it, under which
// the server keeps it: its first 63 bytes. The Tracker keys everything
// by it, so that a Parse of a 64-byte name and an EXECUTE of its 63-byte
// prefix, one object upstream, are one to the Tracker too (a red team
// ran a statement checked under an older policy, and a BI service read
// as a viewer it no longer acted for, through the other spelling).
//
// NOTE: byte-wise, as the server's hash tables compare the keys; a
// name cut inside a multibyte character stays apart from every SQL
// identifier, as it does upstream. SQL names come from the parser, which
// cuts identifiers as the server's lexer does.
func ServerName(name string) string {
	if len(name) > maxNameBytes {
		return name[:maxNameBytes]
	}
	return name
}

// serverNamed returns st, or a copy of it named by ServerName when its
// name is longer.
func serverNamed(st *Statement) *Statement {
	if len(st.Name) <= maxNameBytes {
		return st
	}
	c := *st
	c.Name = ServerName(st.Name)
	return &c
}
