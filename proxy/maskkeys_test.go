package proxy_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/proxy/server"
)

// TestHashMaskKeysStayUpstream serves the demo with email hashed for the
// users without the pii class and checks, end to end, that the hash is
// HMAC-SHA256 under the configured secret while no statement pgveil
// sends holds the secret or its padded keys.
func TestHashMaskKeysStayUpstream(t *testing.T) {
	proxytest.SetupDemo(t)
	const secret = "demo-hash-secret"
	src, err := os.ReadFile("../configs/demo.hcl")
	if err != nil {
		t.Fatal(err)
	}
	const plain = `column "email" { class = "pii" }`
	if !strings.Contains(string(src), plain) {
		t.Fatalf("configs/demo.hcl has no %s", plain)
	}
	path := filepath.Join(t.TempDir(), "pgveil.hcl")
	hashed := strings.Replace(string(src), plain, "column \"email\" {\n    class  = \"pii\"\n    mask   = \"hash\"\n    secret = \""+secret+"\"\n  }", 1)
	if err := os.WriteFile(path, []byte(hashed), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGVEIL_DEMO_UPSTREAM", proxytest.Cluster.Addr())
	t.Setenv("PGVEIL_DEMO_UPSTREAM_PASSWORD", "demo-service-account")
	t.Setenv("PGVEIL_DEMO_LISTEN", "127.0.0.1:6432")
	l := policy.NewLoader()
	cfg, diags := l.Load(path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ctx := context.Background()
	t.Run("without the keys upstream, pgveil refuses to serve", func(t *testing.T) {
		if _, _, err := server.LoadEnforcement(ctx, cfg); err == nil {
			t.Fatal("enforcement loaded without the hash mask's key")
		}
	})
	key := make([]byte, 64)
	copy(key, secret)
	ipad, opad := make([]byte, 64), make([]byte, 64)
	for i, b := range key {
		ipad[i], opad[i] = b^0x36, b^0x5c
	}
	secrets := []string{secret, hex.EncodeToString(ipad), hex.EncodeToString(opad)}
	// The owner installs the keys as configs/README.md says (pgveil
	// mask-keys | psql), here with every statement logged, as
	// log_statement = 'all' (or 'mod', or an error's STATEMENT line) logs
	// them.
	logStart := logSize(t)
	owner, err := proxytest.Cluster.Connect(ctx, proxytest.DemoDB)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Exec(ctx, "SET log_statement = 'all'").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.RunScript(ctx, owner, cfg.MaskKeysSQL()); err != nil {
		t.Fatalf("installing the keys: %v", err)
	}
	_ = owner.Close(ctx)
	t.Cleanup(func() {
		_ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, "DROP SCHEMA pgveil CASCADE")
	})
	t.Run("installing the keys puts no secret in a statement", func(t *testing.T) {
		if proxytest.Cluster.External() {
			t.Skip("the server log of an external server is not readable")
		}
		logged := logSince(t, logStart)
		if !strings.Contains(logged, "mask_keys") {
			t.Fatalf("the install's statements were not logged:\n%s", logged)
		}
		for _, s := range secrets {
			if strings.Contains(logged, s) {
				t.Errorf("the server log holds a secret of the hash mask (%.16s…):\n%s", s, logged)
			}
		}
	})

	rec := &recordingAuditor{}
	p, _ := proxytest.StartDemoFrom(t, path, func(o *proxy.Options) { o.Audit = rec })
	c := p.Connect(t, "marie")

	t.Run("the masked value is the HMAC of the real one under the secret", func(t *testing.T) {
		var id int
		var got string
		if err := c.QueryRow(ctx, "SELECT id, email FROM responses WHERE email IS NOT NULL ORDER BY id LIMIT 1").Scan(&id, &got); err != nil {
			t.Fatal(err)
		}
		real := proxytest.Direct(t, "SELECT email FROM responses WHERE id = "+strconv.Itoa(id))[0][0]
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(real))
		if want := hex.EncodeToString(mac.Sum(nil)); got != want {
			t.Fatalf("email of %d: %s, want %s", id, got, want)
		}
	})
	t.Run("the keys' schema is refused", func(t *testing.T) {
		for _, q := range []string{"SELECT * FROM pgveil.mask_keys", "SELECT pgveil.mask_hash('x', 'y')"} {
			if _, err := c.Exec(ctx, q); err == nil {
				t.Errorf("%s: not refused", q)
			}
		}
	})
	t.Run("no statement sent upstream holds the secret or its padded keys", func(t *testing.T) {
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = tx.Exec(ctx, "DECLARE c CURSOR FOR SELECT email FROM responses")
		_, _ = tx.Exec(ctx, "FETCH 5 FROM c")
		_ = tx.Rollback(ctx)
		_, _ = c.Exec(ctx, "SELECT count(DISTINCT email) FROM responses WHERE email LIKE '%@%'")
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rewritten := 0
		for _, r := range rec.records {
			if r.Rewritten == "" {
				continue
			}
			rewritten++
			for _, s := range secrets {
				if strings.Contains(r.Rewritten, s) {
					t.Errorf("a statement sent upstream holds a secret: %s", r.Rewritten)
				}
			}
		}
		if rewritten == 0 {
			t.Fatal("no rewritten statement recorded")
		}
	})
}

// logSize returns the size of the test cluster's server log, 0 for an
// external server.
func logSize(t *testing.T) int64 {
	t.Helper()
	if proxytest.Cluster.External() {
		return 0
	}
	fi, err := os.Stat(proxytest.Cluster.LogFile())
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// logSince returns what the test cluster's server log gained past
// offset.
func logSince(t *testing.T, offset int64) string {
	t.Helper()
	b, err := os.ReadFile(proxytest.Cluster.LogFile())
	if err != nil {
		t.Fatal(err)
	}
	return string(b[min(offset, int64(len(b))):])
}
