package rewrite_test

import (
	"fmt"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

func TestSetList(t *testing.T) {
	for sql, want := range map[string][]string{
		"SET DateStyle = 'ISO';SET extra_float_digits = 2;show transaction_isolation": {"SET DateStyle = 'ISO'", "SET extra_float_digits = 2"},
		"BEGIN;SET TimeZone = 'Asia/Tokyo'":                                           {"SET TimeZone = 'Asia/Tokyo'"},
		"START TRANSACTION; SET a.b = ';'; SHOW a.b":                                  {"SET a.b = ';'"},
	} {
		sets, _, ok := rewrite.SetList(sql)
		if !ok || fmt.Sprint(sets) != fmt.Sprint(want) {
			t.Errorf("%s: %q, %v; want %q", sql, sets, ok, want)
		}
	}
	for _, sql := range []string{
		"SET DateStyle = 'ISO'",
		"SET DateStyle = 'ISO'; SELECT 1",
		"SET LOCAL DateStyle = 'ISO'; SHOW DateStyle",
		"SET DateStyle = 'ISO'; RESET TimeZone",
		"SET DateStyle = 'ISO'; BEGIN",
		"COMMIT; SET DateStyle = 'ISO'",
		"SET ROLE marie; SET DateStyle = 'ISO'",
		"SET TRANSACTION READ ONLY; SHOW DateStyle",
		"SHOW DateStyle; SHOW TimeZone",
	} {
		if sets, _, ok := rewrite.SetList(sql); ok {
			t.Errorf("%s: split into %q", sql, sets)
		}
	}
}
