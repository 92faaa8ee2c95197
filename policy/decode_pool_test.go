package policy

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// defaultPool is what an upstream block without a pool block decodes to.
var defaultPool = Pool{Mode: PoolSession, Size: 20, WaitTimeout: 5 * time.Second, IdleTimeout: 10 * time.Minute,
	IdleTransactionTimeout: 10 * time.Minute, KeepIdle: 100}

func TestUpstreamPool(t *testing.T) {
	tests := []struct {
		name string
		// pool is the text inside the upstream block, after its attributes
		// (which end on line 5), so that it starts on line 6.
		pool string
		// want is the decoded pool, when the configuration loads.
		want Pool
		// diags are the diagnostics WriteDiagnostics prints.
		diags string
	}{
		{
			name: "without a pool block each session has its own backend, and the pool has its defaults",
			pool: "",
			want: defaultPool,
		},
		{
			name: "an empty pool block takes the defaults",
			pool: "  pool {}\n",
			want: defaultPool,
		},
		{
			name: "every pool attribute can be set",
			pool: `  pool {
    mode         = "transaction"
    size         = 50
    wait_timeout = "250ms"
    idle_timeout = "1h"
    idle_transaction_timeout = "30s"
  }
`,
			want: Pool{Mode: PoolTransaction, Size: 50, WaitTimeout: 250 * time.Millisecond, IdleTimeout: time.Hour, IdleTransactionTimeout: 30 * time.Second, KeepIdle: 100},
		},
		{
			name: "attributes left out keep their defaults",
			pool: "  pool {\n    mode = \"transaction\"\n  }\n",
			want: Pool{Mode: PoolTransaction, Size: 20, WaitTimeout: 5 * time.Second, IdleTimeout: 10 * time.Minute, IdleTransactionTimeout: 10 * time.Minute, KeepIdle: 100},
		},
		{
			name: "session mode can be written out, and 10000 backends is the most",
			pool: "  pool {\n    mode = \"session\"\n    size = 10000\n  }\n",
			want: Pool{Mode: PoolSession, Size: 10000, WaitTimeout: 5 * time.Second, IdleTimeout: 10 * time.Minute, IdleTransactionTimeout: 10 * time.Minute, KeepIdle: 100},
		},
		{
			name: "session mode keeps up to keep_idle ended sessions' backends, and 0 keeps none",
			pool: "  pool {\n    keep_idle = 0\n  }\n",
			want: Pool{Mode: PoolSession, Size: 20, WaitTimeout: 5 * time.Second, IdleTimeout: 10 * time.Minute, IdleTransactionTimeout: 10 * time.Minute},
		},
		{
			name: "keep_idle past 10000 is an error",
			pool: "  pool {\n    keep_idle = 10001\n  }\n",
			diags: `pgveil.hcl:7:17: error: Invalid number
   7 |     keep_idle = 10001
     |                 ^^^^^
  upstream.pool.keep_idle must be a whole number from 0 to 10000.
`,
		},
		{
			name: "a pool of one backend is allowed",
			pool: "  pool {\n    mode = \"transaction\"\n    size = 1\n  }\n",
			want: Pool{Mode: PoolTransaction, Size: 1, WaitTimeout: 5 * time.Second, IdleTimeout: 10 * time.Minute, IdleTransactionTimeout: 10 * time.Minute, KeepIdle: 100},
		},
		{
			name: "a size past 10000 or not whole, and timeouts without unit or not positive, are errors",
			pool: `  pool {
    size         = 10001
    wait_timeout = 5
    idle_timeout = "0s"
  }
`,
			diags: `pgveil.hcl:7:20: error: Invalid number
   7 |     size         = 10001
     |                    ^^^^^
  upstream.pool.size must be a whole number from 1 to 10000.

pgveil.hcl:8:20: error: Invalid duration
   8 |     wait_timeout = 5
     |                    ^
  upstream.pool.wait_timeout must be a duration such as "10s", "1m30s" or
  "500ms"; "5" has no unit.

pgveil.hcl:9:20: error: Invalid duration
   9 |     idle_timeout = "0s"
     |                    ^^^^
  upstream.pool.idle_timeout must be positive.
`,
		},
		{
			name: "max_per_user caps each login's backends, within the pool's size",
			pool: "  pool {\n    mode = \"transaction\"\n    size = 8\n    max_per_user = 8\n  }\n",
			want: Pool{Mode: PoolTransaction, Size: 8, WaitTimeout: 5 * time.Second, IdleTimeout: 10 * time.Minute, IdleTransactionTimeout: 10 * time.Minute, KeepIdle: 100, MaxPerUser: 8},
		},
		{
			name: "max_per_user of 0 sets no cap",
			pool: "  pool {\n    max_per_user = 0\n  }\n",
			want: defaultPool,
		},
		{
			name: "max_per_user above the pool's size is an error",
			pool: "  pool {\n    mode = \"transaction\"\n    max_per_user = 21\n  }\n",
			diags: `pgveil.hcl:8:20: error: Invalid number
   8 |     max_per_user = 21
     |                    ^^
  upstream.pool.max_per_user (21) must not exceed upstream.pool.size (20): no
  login could hold more backends than the pool opens.
`,
		},
		{
			name: "a negative max_per_user is an error",
			pool: "  pool {\n    max_per_user = -1\n  }\n",
			diags: `pgveil.hcl:7:20: error: Invalid number
   7 |     max_per_user = -1
     |                    ^^
  upstream.pool.max_per_user must be a whole number from 0 to 10000.
`,
		},
		{
			name: "a fractional size is an error",
			pool: "  pool {\n    size = 2.5\n  }\n",
			diags: `pgveil.hcl:7:12: error: Invalid number
   7 |     size = 2.5
     |            ^^^
  upstream.pool.size must be a whole number from 1 to 10000.
`,
		},
		{
			name: "a typo in an attribute name gets HCL's suggestion",
			pool: "  pool {\n    idle_timout = \"1m\"\n  }\n",
			diags: `pgveil.hcl:7:5: error: Unsupported argument
   7 |     idle_timout = "1m"
     |     ^^^^^^^^^^^
  An argument named "idle_timout" is not expected here. Did you mean
  "idle_timeout"?
`,
		},
		{
			name: "pool has no label",
			pool: "  pool \"main\" {}\n",
			diags: `pgveil.hcl:6:8: error: Extraneous label for pool
   6 |   pool "main" {}
     |        ^^^^^^
  No labels are expected for pool blocks.
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "pgveil.hcl"), []byte(`listen { address = "127.0.0.1:6432" }
upstream {
  address  = "127.0.0.1:5432"
  database = "db"
  user     = "svc"
`+tt.pool+"}\n"))
			t.Chdir(dir)
			l := NewLoader()
			cfg, diags := l.Load("pgveil.hcl")
			var got bytes.Buffer
			if err := WriteDiagnostics(&got, l.Files(), diags); err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.diags {
				t.Errorf("diagnostics:\n%s--- want ---\n%s", got.String(), tt.diags)
			}
			if (cfg == nil) != diags.HasErrors() {
				t.Fatalf("config %v with errors %v", cfg != nil, diags.HasErrors())
			}
			if cfg != nil && cfg.Upstream.Pool != tt.want {
				t.Errorf("pool %+v, want %+v", cfg.Upstream.Pool, tt.want)
			}
		})
	}
}

// TestUserPoolCap checks a user block's max_pool_backends, the override
// of upstream.pool.max_per_user for one login.
func TestUserPoolCap(t *testing.T) {
	for _, tt := range []struct {
		name, attr string
		// want is the user's cap when the configuration loads; diag a
		// part of the error it gets otherwise.
		want int
		diag string
	}{
		{name: "a user block may cap its login's pooled backends", attr: "max_pool_backends = 5", want: 5},
		{name: "without it the login has the pool's cap", attr: "", want: 0},
		{name: "a cap of 0 is an error", attr: "max_pool_backends = 0",
			diag: "user.ann.max_pool_backends must be a whole number from 1 to 10000."},
		{name: "a negative cap is an error", attr: "max_pool_backends = -2",
			diag: "user.ann.max_pool_backends must be a whole number from 1 to 10000."},
		{name: "a cap above the pool's size is an error", attr: "max_pool_backends = 9",
			diag: "user.ann.max_pool_backends (9) must not exceed upstream.pool.size (8)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "pgveil.hcl"), []byte(`listen { address = "127.0.0.1:6432" }
upstream {
  address  = "127.0.0.1:5432"
  database = "db"
  user     = "svc"
  pool {
    mode = "transaction"
    size = 8
  }
}
user "ann" {
  password = "`+testVerifier+`"
  `+tt.attr+`
}
`))
			t.Chdir(dir)
			l := NewLoader()
			cfg, diags := l.Load("pgveil.hcl")
			var got bytes.Buffer
			if err := WriteDiagnostics(&got, l.Files(), diags); err != nil {
				t.Fatal(err)
			}
			text := strings.Join(strings.Fields(got.String()), " ")
			if tt.diag != "" {
				if cfg != nil || !strings.Contains(text, tt.diag) {
					t.Fatalf("diagnostics %q, want %q", text, tt.diag)
				}
				return
			}
			if cfg == nil {
				t.Fatalf("diagnostics %q", text)
			}
			if n := cfg.Users["ann"].MaxPoolBackends; n != tt.want {
				t.Fatalf("max_pool_backends %d, want %d", n, tt.want)
			}
		})
	}
}
