package rewrite_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/rewrite"
)

// TestCatalogKeys holds the snapshot's keys to the demo schema's.
func TestCatalogKeys(t *testing.T) {
	cat := demoCatalog(t)
	r := cat.Relations[rewrite.QName{Schema: "public", Name: "responses"}]
	if r == nil || !r.Keys["id"] || r.Keys["comment"] {
		t.Fatalf("responses' keys = %v, want its primary key id alone", r.Keys)
	}
	if got := r.References["agent_login"]; len(got) != 1 || got[0] != (rewrite.QName{Schema: "public", Name: "employees"}) {
		t.Fatalf("responses.agent_login references %v, want public.employees", got)
	}
	if teams := cat.Relations[rewrite.QName{Schema: "public", Name: "teams"}]; !teams.Keys["name"] || len(teams.References["parent_id"]) != 1 {
		t.Fatalf("teams: keys %v, references %v; want name unique and parent_id a foreign key", teams.Keys, teams.References)
	}
}

// TestGeneratedColumns: a generated column changes with the columns it is
// computed from, so writing those is writing it, for its keys and for the
// row scope that reads it (a review learnt a hidden row's value from a
// unique generated column's duplicate key, and moved a row out of scope).
func TestGeneratedColumns(t *testing.T) {
	pgtest.Require(t, cluster)
	ctx := context.Background()
	_ = cluster.Exec(ctx, "postgres", "DROP DATABASE IF EXISTS generated")
	if err := cluster.Exec(ctx, "postgres", "CREATE DATABASE generated"); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Exec(ctx, "generated", `CREATE TABLE notes (id int PRIMARY KEY, country text,
		region text GENERATED ALWAYS AS (CASE WHEN country IN ('France', 'Spain') THEN 'EU' ELSE 'other' END) STORED,
		tag text, tag_norm text GENERATED ALWAYS AS (upper(tag)) STORED UNIQUE, comment text)`); err != nil {
		t.Fatal(err)
	}
	conn, err := cluster.Connect(ctx, "generated")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	cat, err := rewrite.LoadCatalog(ctx, conn, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	notes := cat.Relations[rewrite.QName{Schema: "public", Name: "notes"}]
	if got := notes.Generated["tag_norm"]; !slices.Equal(got, []string{"tag"}) {
		t.Fatalf("tag_norm is generated from %v, want [tag]", got)
	}
	if !notes.Keys["tag"] || notes.Keys["comment"] {
		t.Fatalf("keys %v: want tag, the base of the unique tag_norm, and not comment", notes.Keys)
	}
	p := &fakePolicy{
		access: map[string]rewrite.Access{
			"public.notes": {Mode: rewrite.Governed, Filter: expr(t, "region = 'EU'"), Rules: []string{"notes_eu"}},
		},
		kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true, rewrite.KindUpdate: true},
	}
	for _, tc := range []struct{ name, sql, rule string }{
		{"UPDATE of the base of a unique generated column under a row scope is refused", "UPDATE notes SET tag = 'secret' WHERE id = 1", "write_key"},
		{"UPDATE of the base of a generated column the scope reads is refused", "UPDATE notes SET country = 'USA' WHERE id = 1", "write_scope"},
		{"UPDATE of another column passes", "UPDATE notes SET comment = 'x' WHERE id = 1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rewrite.Rewrite(tc.sql, cat, p)
			var r *rewrite.Refused
			if tc.rule == "" && err != nil || tc.rule != "" && (!errors.As(err, &r) || r.Rule != tc.rule) {
				t.Fatalf("want refusal by %q, got %v", tc.rule, err)
			}
		})
	}
}
