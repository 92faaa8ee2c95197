package proxy_test

import (
	"context"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"
)

// TestMissingAttributeNeverWidens: an attribute the user lacks binds as
// NULL, which keeps a comparison from being true, but not a call or a
// CASE that reads past a NULL (concat, COALESCE, a CASE's ELSE). The
// documentation promises that a missing attribute never matches: a rule
// reading one grants no row, and a mask reading one shows no value.
func TestMissingAttributeNeverWidens(t *testing.T) {
	t.Run("a rule building a pattern with concat grants marie no row without the attribute", func(t *testing.T) {
		path := proxytest.DemoWith(t, `where  = "country = me.country"`, `where  = "country LIKE concat(me.country_prefix, '%')"`)
		p, _ := proxytest.StartDemoFrom(t, path)
		c := p.Connect(t, "marie")
		var n int
		if err := c.QueryRow(context.Background(), "SELECT count(*) FROM responses").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("marie, without country_prefix, sees %d responses, want none", n)
		}
	})
	t.Run("a string attribute that reads as an array literal is one value in = ANY", func(t *testing.T) {
		path := proxytest.DemoWith(t, `attributes = { country = "France" }`, `attributes = { country = "France", countries = "{France,Germany}" }`,
			`where  = "country = me.country"`, `where  = "country = ANY(me.countries)"`)
		p, _ := proxytest.StartDemoFrom(t, path)
		c := p.Connect(t, "marie")
		var n int
		if err := c.QueryRow(context.Background(), "SELECT count(*) FROM responses").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("marie, whose countries is the one string \"{France,Germany}\", sees %d responses, want none", n)
		}
	})
	t.Run("a mask whose CASE falls to its ELSE shows marie no email without the attribute", func(t *testing.T) {
		path := proxytest.DemoWith(t, `column "email" { class = "pii" }`, `column "email" {
    class      = "pii"
    mask       = "expression"
    expression = "CASE WHEN me.department <> 'support' THEN NULL ELSE email END"
  }`)
		p, _ := proxytest.StartDemoFrom(t, path)
		c := p.Connect(t, "marie")
		var n int
		if err := c.QueryRow(context.Background(), "SELECT count(*) FROM responses WHERE email IS NOT NULL").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("marie, without department, reads %d real emails, want none", n)
		}
	})
}
