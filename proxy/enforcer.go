package proxy

import (
	"context"

	"github.com/pgveil/pgveil/rewrite"
)

// Enforcer is the Rewriter that enforces policies: it hands each
// statement to a rewrite.Engine for the session's user.
type Enforcer struct {
	Engine *rewrite.Engine
}

// Rewrite implements Rewriter.
func (e Enforcer) Rewrite(ctx context.Context, s *SessionInfo, st *Statement) (string, error) {
	return e.Engine.Rewrite(ctx, s.User, byte(st.Source), st.Text)
}
