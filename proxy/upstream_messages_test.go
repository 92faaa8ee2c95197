package proxy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// TestConnectServiceTranslatedMessages: an lc_messages that names C.UTF-8
// or an English locale still gives translated messages when the
// postmaster's environment sets LANGUAGE (gettext reads it over any
// locale but C): pgveil must see the messages as they are, not their
// locale's name.
func TestConnectServiceTranslatedMessages(t *testing.T) {
	pgtest.Require(t, proxytest.Cluster)
	c, err := pgtest.Start(pgtest.Options{
		Logf:      t.Logf,
		Settings:  map[string]string{"lc_messages": "C.UTF-8"},
		ServerEnv: []string{"LANGUAGE=fr"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	user, password := c.SuperUser()
	cfg := &policy.Config{Upstream: policy.Upstream{
		Address: c.Addr(), Database: "postgres", User: user, Password: password,
		SearchPath: "public", ConnectTimeout: 10 * time.Second,
	}}
	ctx := context.Background()
	t.Run("a server whose lc_messages is C.UTF-8 but whose messages are French is refused", func(t *testing.T) {
		pc, err := proxy.ConnectService(ctx, cfg, "test")
		if err == nil {
			pc.Close(ctx)
			t.Fatal("ConnectService accepted a server answering in French")
		}
		if !strings.Contains(err.Error(), "lc_messages") {
			t.Fatalf("the refusal does not say how to fix it: %v", err)
		}
	})
	t.Run("with lc_messages C, which gettext never translates, it is accepted", func(t *testing.T) {
		if err := c.Exec(ctx, "postgres", "ALTER ROLE "+user+" SET lc_messages = 'C'"); err != nil {
			t.Fatal(err)
		}
		pc, err := proxy.ConnectService(ctx, cfg, "test")
		if err != nil {
			t.Fatal(err)
		}
		pc.Close(ctx)
	})
	t.Run("a server answering in English under lc_messages C.UTF-8 is accepted", func(t *testing.T) {
		if err := proxytest.Cluster.CreateDatabase(ctx, "pgveil_messages_probe"); err != nil {
			t.Fatal(err)
		}
		if err := proxytest.Cluster.Exec(ctx, "pgveil_messages_probe", "ALTER DATABASE pgveil_messages_probe SET lc_messages = 'C.UTF-8'"); err != nil {
			t.Fatal(err)
		}
		user, password := proxytest.Cluster.SuperUser()
		cfg := &policy.Config{Upstream: policy.Upstream{
			Address: proxytest.Cluster.Addr(), Database: "pgveil_messages_probe", User: user, Password: password,
			SearchPath: "public", ConnectTimeout: 10 * time.Second,
		}}
		pc, err := proxy.ConnectService(ctx, cfg, "test")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close(ctx)
		res, err := pc.Exec(ctx, "SELECT pg_catalog.current_setting('lc_messages')").ReadAll()
		if err != nil || string(res[0].Rows[0][0]) != "C.UTF-8" {
			t.Fatalf("the probe ran under %v (%v), not C.UTF-8", res, err)
		}
	})
}
