package rewrite_test

import (
	"reflect"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// TestKeeps: a transaction pool hands a backend to another session only
// when nothing the statements ran outlives their transaction.
func TestKeeps(t *testing.T) {
	cat := demoCatalog(t)
	p := marie(t)
	cases := []struct {
		name, sql string
		want      []string
	}{
		{"a read leaves nothing", "SELECT country FROM responses", nil},
		{"SET leaves the setting", "SET DateStyle = 'ISO'", []string{"SET datestyle"}},
		{"SET SESSION leaves the setting", "SET SESSION TimeZone TO 'UTC'", []string{"SET timezone"}},
		{"SET LOCAL leaves nothing", "SET LOCAL work_mem = '8MB'", nil},
		{"SET TRANSACTION leaves nothing", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", nil},
		{"SET SESSION CHARACTERISTICS leaves the default", "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", []string{"SET session characteristics"}},
		{"RESET leaves nothing", "RESET DateStyle", nil},
		{"RESET ALL leaves nothing", "RESET ALL", nil},
		{"set_config leaves the setting", "SELECT set_config('work_mem', '8MB', false)", []string{"set_config"}},
		{"setseed leaves the seed", "SELECT setseed(0.5)", []string{"setseed"}},
		{"PREPARE leaves the statement", "PREPARE q AS SELECT 1", []string{"PREPARE q"}},
		{"a cursor WITH HOLD outlives its transaction", "DECLARE c CURSOR WITH HOLD FOR SELECT 1", []string{"DECLARE c WITH HOLD"}},
		{"a plain cursor ends with its transaction", "DECLARE c SCROLL CURSOR FOR SELECT 1", nil},
		{"DISCARD ALL empties the backend", "DISCARD ALL", []string{"DISCARD ALL"}},
		{"DISCARD PLANS leaves nothing", "DISCARD PLANS", nil},
		{"each is named once", "SET DateStyle = 'ISO'; SET datestyle = 'German'; SELECT setseed(0.1)", []string{"SET datestyle", "setseed"}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			res, err := rewrite.Rewrite(tt.sql, cat, p)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res.Keeps, tt.want) {
				t.Fatalf("Keeps = %q, want %q", res.Keeps, tt.want)
			}
		})
	}
}
