package statement

import "github.com/pgveil/pgveil/internal/firewall"

// Refusal is a refused statement as the client receives it.
type Refusal = firewall.Refusal
