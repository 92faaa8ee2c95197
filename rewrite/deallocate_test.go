package rewrite_test

import (
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

func TestRenameDeallocations(t *testing.T) {
	names := map[string]string{"_PLAN0x1a2796d0": "pgveil_s_1", "plain": "pgveil_s_2"}
	t.Run("psqlODBC's text names the statements upstream, its savepoint kept", func(t *testing.T) {
		for sql, want := range map[string]string{
			`SAVEPOINT _per_query_svp_;DEALLOCATE "_PLAN0x1a2796d0";RELEASE _per_query_svp_`: `SAVEPOINT _per_query_svp_; DEALLOCATE pgveil_s_1; RELEASE _per_query_svp_`,
			`DEALLOCATE PREPARE plain`: `DEALLOCATE pgveil_s_2`,
			`deallocate "plain"`:       `DEALLOCATE pgveil_s_2`,
		} {
			got, err := rewrite.RenameDeallocations(sql, names)
			if err != nil || got != want {
				t.Errorf("%s: got %q, %v; want %q", sql, got, err, want)
			}
		}
	})
	t.Run("anything else is not renamed", func(t *testing.T) {
		for _, sql := range []string{
			`DEALLOCATE ALL`,
			`DEALLOCATE "Plain"`,
			`DEALLOCATE other`,
			`DEALLOCATE plain; DEALLOCATE other`,
			`DEALLOCATE plain; SELECT 1`,
			`EXECUTE plain`,
			`DEALLOCATE plain; PREPARE plain AS SELECT 1`,
			`DEALLOCATE`,
		} {
			if got, err := rewrite.RenameDeallocations(sql, names); err == nil {
				t.Errorf("%s: renamed to %q", sql, got)
			}
		}
	})
}
