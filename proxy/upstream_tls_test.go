package proxy_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// enableServerTLS turns ssl on in the test cluster with a fresh
// certificate for localhost and 127.0.0.1, and returns a pool that trusts
// it. It turns ssl off again when the test ends.
func enableServerTLS(t *testing.T) *x509.CertPool {
	t.Helper()
	if proxytest.Cluster.External() {
		t.Skip("cannot change the TLS settings of an external server")
	}
	ctx := context.Background()
	admin, err := proxytest.Cluster.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	res := admin.ExecParams(ctx, "SHOW data_directory", nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	dataDir := string(res.Rows[0][0])

	cert, leaf := proxytest.SelfSigned(t)
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"pgveil_test_server.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		"pgveil_test_server.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	for name, b := range files {
		path := filepath.Join(dataDir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 {
			u, err := user.Lookup("postgres")
			if err != nil {
				t.Fatal(err)
			}
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			if err := os.Chown(path, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, sql := range []string{
		"ALTER SYSTEM SET ssl_cert_file = 'pgveil_test_server.crt'",
		"ALTER SYSTEM SET ssl_key_file = 'pgveil_test_server.key'",
		"ALTER SYSTEM SET ssl = on",
		"SELECT pg_reload_conf()",
	} {
		if _, err := admin.Exec(ctx, sql).ReadAll(); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() {
		_ = proxytest.Cluster.Exec(ctx, "postgres", "ALTER SYSTEM RESET ssl; ALTER SYSTEM RESET ssl_cert_file; ALTER SYSTEM RESET ssl_key_file; SELECT pg_reload_conf()")
	})
	// The reload is asynchronous: a new backend sees it once the
	// postmaster has read the files again.
	proxytest.Eventually(t, 10*time.Second, "ssl on upstream after pg_reload_conf", func() bool {
		c, err := proxytest.Cluster.Connect(ctx, "postgres")
		if err != nil {
			return false
		}
		defer c.Close(ctx)
		res, err := c.Exec(ctx, "SHOW ssl").ReadAll()
		return err == nil && len(res) == 1 && len(res[0].Rows) == 1 && string(res[0].Rows[0][0]) == "on"
	})
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return pool
}

func withUpstreamTLS(mode, serverName string, pool *x509.CertPool) proxytest.Option {
	return func(c *policy.Config, _ *proxy.Options) {
		c.Upstream.TLS = policy.UpstreamTLS{Mode: mode, ServerName: serverName, RootCAs: pool}
	}
}

func TestUpstreamTLS(t *testing.T) {
	proxytest.SetupUpstream(t)
	pool := enableServerTLS(t)
	ctx := context.Background()
	upstreamSSL := func(t *testing.T, p *proxytest.Proxy) string {
		t.Helper()
		c := p.Connect(t, "alice")
		var ssl string
		if err := c.QueryRow(ctx, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
			t.Fatal(err)
		}
		return ssl
	}

	t.Run("verify-full encrypts the upstream session", func(t *testing.T) {
		p := proxytest.StartProxy(t, withUpstreamTLS(policy.TLSVerifyFull, "localhost", pool))
		if got := upstreamSSL(t, p); got != "true" {
			t.Fatalf("upstream ssl = %s", got)
		}
	})
	t.Run("require encrypts without verifying", func(t *testing.T) {
		p := proxytest.StartProxy(t, withUpstreamTLS(policy.TLSRequire, "", nil))
		if got := upstreamSSL(t, p); got != "true" {
			t.Fatalf("upstream ssl = %s", got)
		}
	})
	t.Run("verify-full refuses a server it cannot verify", func(t *testing.T) {
		p := proxytest.StartProxy(t, withUpstreamTLS(policy.TLSVerifyFull, "localhost", x509.NewCertPool()))
		_, err := pgconn.Connect(ctx, p.URL("alice", proxytest.Users["alice"], nil))
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "08001" {
			t.Fatalf("want 08001, got %v", err)
		}
	})
	t.Run("cancel requests travel encrypted too", func(t *testing.T) {
		p := proxytest.StartProxy(t, withUpstreamTLS(policy.TLSVerifyFull, "localhost", pool))
		c := p.Connect(t, "alice")
		done := make(chan error, 1)
		go func() {
			_, err := c.Exec(ctx, "SELECT pg_sleep(10), 'cancel-over-tls'")
			done <- err
		}()
		proxytest.WaitRunning(t, "cancel-over-tls")
		_ = c.PgConn().CancelRequest(ctx)
		err := <-done
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
			t.Fatalf("want 57014, got %v", err)
		}
	})
}
