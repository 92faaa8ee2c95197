package policy

import (
	"os"
	"testing"

	"github.com/pgveil/pgveil/internal/pgtest"
)

// cluster is the throwaway PostgreSQL shared by the tests that need one
// (LoadIdentities, and running compiled policies against the demo data).
var cluster *pgtest.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &cluster)) }
