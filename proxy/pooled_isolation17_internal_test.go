package proxy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPooledSettingsHistory holds the settings a transaction-mode session
// replays to giving the value PostgreSQL holds whatever came before.
func TestPooledSettingsHistory(t *testing.T) {
	set := func(name, sql string) *pendingSetting {
		q, _ := (&pgproto3.Query{String: sql}).Encode(nil)
		return &pendingSetting{set: &pooledSetting{name: name, query: q}}
	}
	reset := func(names ...string) *pendingSetting { return &pendingSetting{resets: names} }
	texts := func(pl *poolLink) []string {
		var out []string
		for _, s := range pl.settings {
			var q pgproto3.Query
			_ = q.Decode(s.query[5:])
			out = append(out, q.String)
		}
		return out
	}
	t.Run("a SET of a whole setting replaces the last one", func(t *testing.T) {
		pl := &poolLink{}
		pl.applySetting(set("timezone", "SET TimeZone = 'UTC'"))
		pl.applySetting(set("timezone", "SET TimeZone = 'Asia/Tokyo'"))
		if got := texts(pl); len(got) != 1 || !strings.Contains(got[0], "Tokyo") {
			t.Fatalf("settings %q", got)
		}
	})
	t.Run("a SET DateStyle follows the earlier ones, which it may keep part of", func(t *testing.T) {
		pl := &poolLink{}
		pl.applySetting(set("datestyle", "SET DateStyle = 'German'"))
		pl.applySetting(set("datestyle", "SET DateStyle = 'ISO'"))
		if got := texts(pl); len(got) != 2 {
			t.Fatalf("settings %q", got)
		}
		pl.applySetting(reset("datestyle"))
		if got := texts(pl); len(got) != 0 {
			t.Fatalf("after RESET DateStyle: settings %q", got)
		}
	})
	t.Run("a RESET of a default_transaction_ setting follows SET SESSION CHARACTERISTICS", func(t *testing.T) {
		pl := &poolLink{}
		pl.applySetting(set("default_transaction_isolation", "SET default_transaction_isolation = 'serializable'"))
		pl.applySetting(set("session characteristics", "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"))
		pl.applySetting(reset("default_transaction_isolation"))
		want := []string{"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", "RESET default_transaction_isolation"}
		if got := texts(pl); strings.Join(got, ";") != strings.Join(want, ";") {
			t.Fatalf("settings %q, want %q", got, want)
		}
	})
	t.Run("a SET SESSION CHARACTERISTICS toggled again and again leaves two settings", func(t *testing.T) {
		pl := &poolLink{}
		for i := 0; i < 2*maxPooledSettings; i++ {
			text := []string{"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"}[i%2]
			if why := pl.applySetting(set("session characteristics", text)); why != "" {
				t.Fatalf("toggle %d: the session keeps its backend: %s", i, why)
			}
		}
		want := []string{"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"}
		if got := texts(pl); strings.Join(got, ";") != strings.Join(want, ";") {
			t.Fatalf("settings %q, want %q", got, want)
		}
	})
	t.Run("a session piling up settings past the bound keeps its backend", func(t *testing.T) {
		pl := &poolLink{}
		why := ""
		for i := 0; i <= maxPooledSettings && why == ""; i++ {
			why = pl.applySetting(set("datestyle", fmt.Sprintf("SET DateStyle = 'ISO%s'", strings.Repeat(" ", i))))
		}
		if why == "" {
			t.Fatalf("%d settings and nothing kept", len(pl.settings))
		}
	})
	t.Run("a SET or RESET IntervalStyle after a SET TimeZone that read an earlier one keeps the backend", func(t *testing.T) {
		for _, last := range []*pendingSetting{set("intervalstyle", "SET IntervalStyle = 'postgres'"), reset("intervalstyle")} {
			pl := &poolLink{}
			pl.applySetting(set("intervalstyle", "SET IntervalStyle = 'sql_standard'"))
			pl.applySetting(set("timezone", "SET TIME ZONE INTERVAL '-2 hours 30 minutes' HOUR TO MINUTE"))
			if why := pl.applySetting(last); why == "" {
				t.Errorf("settings %q and nothing kept", texts(pl))
			}
		}
	})
	t.Run("a SET IntervalStyle after a SET TimeZone that read the startup one keeps nothing", func(t *testing.T) {
		pl := &poolLink{}
		pl.applySetting(set("timezone", "SET TIME ZONE INTERVAL '-2 hours 30 minutes' HOUR TO MINUTE"))
		pl.applySetting(set("intervalstyle", "SET IntervalStyle = 'sql_standard'"))
		if why := pl.applySetting(set("intervalstyle", "SET IntervalStyle = 'postgres'")); why != "" {
			t.Errorf("settings %q: kept: %s", texts(pl), why)
		}
	})
}
