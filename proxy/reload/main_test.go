package reload_test

import (
	"os"
	"testing"

	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/proxy/internal/proxytest"
)

// TestMain starts the throwaway PostgreSQL this package's tests share
// (proxytest.Cluster).
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &proxytest.Cluster)) }
