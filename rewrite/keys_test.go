package rewrite_test

import (
	"testing"

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
