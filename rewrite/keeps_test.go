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
		resets    []string
	}{
		{"a read leaves nothing", "SELECT country FROM responses", nil, nil},
		{"SET leaves the setting", "SET DateStyle = 'ISO'", []string{"SET datestyle"}, nil},
		{"SET SESSION leaves the setting", "SET SESSION TimeZone TO 'UTC'", []string{"SET timezone"}, nil},
		{"SET LOCAL leaves nothing", "SET LOCAL work_mem = '8MB'", nil, nil},
		{"SET LOCAL DateStyle, which a later SET DateStyle keeps part of, keeps the backend", "SET LOCAL DateStyle = 'German'", []string{"a SET LOCAL of datestyle, which a later SET in its transaction may read"}, nil},
		{"SET LOCAL IntervalStyle, which a later SET TIME ZONE INTERVAL reads, keeps the backend", "SET LOCAL IntervalStyle = 'sql_standard'", []string{"a SET LOCAL of intervalstyle, which a later SET in its transaction may read"}, nil},
		{"SET LOCAL DateStyle TO DEFAULT, which a later SET DateStyle keeps part of, keeps the backend", "SET LOCAL DateStyle TO DEFAULT", []string{"a SET LOCAL of datestyle, which a later SET in its transaction may read"}, nil},
		{"SET LOCAL IntervalStyle TO DEFAULT, which a later SET TIME ZONE INTERVAL reads, keeps the backend", "SET LOCAL IntervalStyle TO DEFAULT", []string{"a SET LOCAL of intervalstyle, which a later SET in its transaction may read"}, nil},
		{"SET TRANSACTION leaves nothing", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", nil, nil},
		{"SET SESSION CHARACTERISTICS leaves the default", "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", []string{"SET session characteristics"}, nil},
		{"RESET leaves nothing", "RESET DateStyle", nil, []string{"datestyle"}},
		{"SET TO DEFAULT leaves nothing", "SET TimeZone TO DEFAULT", nil, []string{"timezone"}},
		{"RESET ALL leaves nothing", "RESET ALL", nil, []string{rewrite.ResetAll}},
		{"set_config leaves the setting", "SELECT set_config('work_mem', '8MB', false)", []string{"set_config"}, nil},
		{"setseed leaves the seed", "SELECT setseed(0.5)", []string{"setseed"}, nil},
		{"PREPARE leaves the statement", "PREPARE q AS SELECT 1", []string{"PREPARE q"}, nil},
		{"a cursor WITH HOLD outlives its transaction", "DECLARE c CURSOR WITH HOLD FOR SELECT 1", []string{"DECLARE c WITH HOLD"}, nil},
		{"a plain cursor ends with its transaction", "DECLARE c SCROLL CURSOR FOR SELECT 1", nil, nil},
		{"DISCARD ALL empties the backend", "DISCARD ALL", []string{"DISCARD ALL"}, nil},
		{"DISCARD PLANS leaves nothing", "DISCARD PLANS", nil, nil},
		{"each is named once", "SET DateStyle = 'ISO'; SET datestyle = 'German'; SELECT setseed(0.1)", []string{"SET datestyle", "setseed"}, nil},
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
			if !reflect.DeepEqual(res.Resets, tt.resets) {
				t.Fatalf("Resets = %q, want %q", res.Resets, tt.resets)
			}
		})
	}
}

// TestSetFromCurrentRefused: SET … FROM CURRENT sets a value its text
// does not name, so a transaction pool could not tell a backend's
// settings apart by their texts; it is refused, whatever the setting.
func TestSetFromCurrentRefused(t *testing.T) {
	cat := demoCatalog(t)
	p := marie(t)
	for _, sql := range []string{"SET TimeZone FROM CURRENT", "SET SESSION DateStyle FROM CURRENT", "SET LOCAL work_mem FROM CURRENT", "SET search_path FROM CURRENT"} {
		t.Run(sql, func(t *testing.T) {
			if _, err := rewrite.Rewrite(sql, cat, p); err == nil {
				t.Fatalf("%s was allowed", sql)
			}
		})
	}
}
