package compat

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// postgresJS checks node and the npm package postgres (postgres.js).
func postgresJS(t *testing.T) string {
	t.Helper()
	node := lookPath(t, "node")
	if _, err := os.Stat(filepath.Join("testdata", "node", "node_modules", "postgres", "package.json")); err != nil {
		missing(t, "the npm package postgres (npm ci in internal/compat/testdata/node)", err)
	}
	return node
}

// postgresJSChecks are the records testdata/node/postgresjs.js prints for
// each of its two connections (the second, prepare: false, prefixes them
// with "unnamed_").
var postgresJSChecks = []string{"countries", "masked", "param", "typed_params", "pipeline", "pipeline_error", "transaction",
	"cursor", "for_each", "copy_out", "unsafe_multi", "unsafe_refused", "prepare_transaction", "columns", "refused", "usable_after_error"}

// TestPostgresJS runs postgres.js (porsager/postgres), which prepares every
// query as a named statement and pipelines them on one connection, through
// pgveil with a session per client and with a transaction pool, as marie
// and as hq.
func TestPostgresJS(t *testing.T) {
	requireVeil(t)
	node := postgresJS(t)
	script := filepath.Join("testdata", "node", "postgresjs.js")
	plain := records(t, runClient(t, upstream().libpqEnv(), node, script))
	t.Logf("postgres.js %v", get(t, plain, "version")["driver"])

	modes := []struct{ name, addr string }{
		{"with a session per client", veil},
		{"with a transaction pool", requirePooledVeil(t)},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			host, port, err := net.SplitHostPort(mode.addr)
			if err != nil {
				t.Fatal(err)
			}
			for _, user := range []string{"marie", "hq"} {
				t.Run("as "+user+" every query sees only what the policy allows and reaches its own answer", func(t *testing.T) {
					e := endpoint{host: host, port: port, user: user, password: password(user)}
					outp := runClient(t, e.libpqEnv(), node, script)
					if os.Getenv("COMPAT_SHOW") != "" {
						t.Log(outp)
					}
					recs := records(t, outp)
					for _, prefix := range []string{"", "unnamed_"} {
						sub := map[string]record{}
						for _, name := range postgresJSChecks {
							sub[name] = get(t, recs, prefix+name)
						}
						checkPostgresJS(t, prefix, user, sub)
						got, want := sub["columns"], get(t, plain, "columns")
						if !reflect.DeepEqual(got["names"], want["names"]) || !reflect.DeepEqual(got["type_oids"], want["type_oids"]) {
							t.Errorf("%scolumns through pgveil:\n  %v\nupstream:\n  %v", prefix, got, want)
						}
					}
					for _, name := range []string{"listen", "notify"} {
						r := get(t, recs, name)
						if msg, _ := r["message"].(string); r["sqlstate"] != "42501" || !strings.Contains(msg, "listen_notify") {
							t.Errorf("%s: %v, want a refusal (42501) naming the rule listen_notify", name, r)
						}
					}
					if v := get(t, recs, "usable_after_listen")["value"]; v != float64(1) {
						t.Errorf("usable_after_listen: %v", get(t, recs, "usable_after_listen"))
					}
				})
			}
		})
	}
}

// checkPostgresJS compares one connection's records with what user sees.
func checkPostgresJS(t *testing.T, prefix, user string, recs map[string]record) {
	t.Helper()
	for name, r := range recs {
		if code, ok := r["error"]; ok {
			t.Errorf("%s%s failed: %v %v", prefix, name, code, r["message"])
		}
	}
	checkRecords(t, user, recs)
	e := expect(t, user)
	n := float64(e.rows)
	want := map[string]record{
		"pipeline":       {"queries": float64(50), "consistent": true, "total": n},
		"pipeline_error": {"results": []any{n, float64(1), "42501", n, float64(2)}},
		"transaction": {"counts": []any{n, n}, "rolled_back": "app", "refused": "42501", "after_savepoint": n,
			"value": float64(1)},
		"cursor":         {"rows": n, "countries": e.countries, "emails": float64(0)},
		"for_each":       {"rows": n, "countries": e.countries, "contacts": float64(0)},
		"unsafe_multi":   {"results": []any{n, float64(1)}},
		"unsafe_refused": {"sqlstate": "42501", "value": float64(1)},
		"refused":        {"sqlstate": "42501"},
		// postgres.js hung here before pgveil ended the transaction of a
		// refused PREPARE TRANSACTION.
		"prepare_transaction": {"sqlstate": "42501", "value": float64(1)},
	}
	for name, fields := range want {
		for k, v := range fields {
			if got := recs[name][k]; !reflect.DeepEqual(got, v) {
				t.Errorf("%s%s.%s: got %v, want %v (%v)", prefix, name, k, got, v, recs[name])
			}
		}
	}
	if b, _ := recs["cursor"]["batches"].(float64); b < 2 {
		t.Errorf("%scursor: %v batches, want the rows in batches of 100", prefix, b)
	}
}
