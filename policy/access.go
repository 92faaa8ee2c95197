package policy

import "github.com/pgveil/pgveil/rewrite"

// statementKinds lists the statement kinds a role's statements may name,
// in the order messages show them.
var statementKinds = []string{
	string(rewrite.KindSelect), string(rewrite.KindCopyOut), string(rewrite.KindInsert),
	string(rewrite.KindUpdate), string(rewrite.KindDelete),
}
