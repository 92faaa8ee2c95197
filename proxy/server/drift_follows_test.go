package server

import (
	"context"
	"testing"
)

// startFollowsDrift is startDrift with drift_tags following drift_resp
// on rid = id: carol (France) sees the tag of row 1 only.
func startFollowsDrift(t *testing.T) *driftEnv {
	t.Helper()
	const drop = "DROP TABLE IF EXISTS drift_tags"
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), "postgres", drop) })
	e := startDrift(t, `
table "public.drift_tags" {
  follows = { table = "public.`+driftTable+`", column = "rid", key = "id" }
}
`, drop+"; CREATE TABLE drift_tags (rid int, tag text); INSERT INTO drift_tags VALUES (1, 'fr tag'), (2, 'de tag')")
	e.wantRows("SELECT tag FROM drift_tags", "fr tag")
	return e
}

// A parent's key renamed, and a column of its old name added, would make
// the follow compare the children with other values: the key is part of
// what the baseline protects, as a team column is.
func TestDriftFollowsKeyRenameThenReAdd(t *testing.T) {
	e := startFollowsDrift(t)
	e.exec("ALTER TABLE " + driftTable + " RENAME COLUMN id TO old_id; ALTER TABLE " + driftTable + " ADD COLUMN id int; " +
		"UPDATE " + driftTable + " SET id = 2 WHERE old_id = 1")
	e.refresh()
	e.wantNoClear("SELECT tag FROM drift_tags", "de tag")
}

// The same for the child's column.
func TestDriftFollowsColumnRenameThenReAdd(t *testing.T) {
	e := startFollowsDrift(t)
	e.exec("ALTER TABLE drift_tags RENAME COLUMN rid TO old_rid; ALTER TABLE drift_tags ADD COLUMN rid int; UPDATE drift_tags SET rid = 1")
	e.refresh()
	e.wantNoClear("SELECT tag FROM drift_tags", "de tag")
}

// Found open before the fix: the child's column given a case-insensitive
// collation after load made PostgreSQL compare it with the key under
// that collation, and the tag of a hidden row (country FRANCE, not
// carol's France) showed through carol's France.
func TestDriftFollowsColumnGivenAnotherEquality(t *testing.T) {
	const drop = "DROP TABLE IF EXISTS drift_ctags; DROP COLLATION IF EXISTS drift_ci"
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), "postgres", drop) })
	e := startDrift(t, `
table "public.drift_ctags" {
  follows = { table = "public.`+driftTable+`", column = "country", key = "country" }
}
`, drop+"; CREATE COLLATION drift_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false); "+
		"CREATE TABLE drift_ctags (country text, tag text); INSERT INTO drift_ctags VALUES ('France', 'fr tag'), ('FRANCE', 'FRANCE tag'); "+
		"INSERT INTO "+driftTable+" (id, country) VALUES (3, 'FRANCE')")
	e.wantRows("SELECT tag FROM drift_ctags", "fr tag")
	e.exec("ALTER TABLE drift_ctags ALTER COLUMN country TYPE text COLLATE drift_ci")
	e.refresh()
	e.wantNoClear("SELECT tag FROM drift_ctags", "FRANCE tag")
}
