package proxytest

import (
	"context"
	"testing"
)

// SeedMarkers inserts the marker rows and returns the SQL that removes them.
func SeedMarkers(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	// Two French rows (ids 1 and 2) get markers in their masked columns;
	// their values are restored afterwards.
	old := Direct(t, "SELECT id::text, contact, email, score::text FROM responses WHERE id IN (1, 2) ORDER BY id")
	const cols = "(id, survey_id, contact, email, country, branch, nps, score, agent_login, team_id, tags, sentiment, comment, submitted_at)"
	seed := `
INSERT INTO responses ` + cols + ` VALUES
 (990001, 3, 'MARKER-HIDDEN-ROW-1 contact', 'MARKER-HIDDEN-ROW-1@example.com', 'USA', 'New York', 2, 876.54, 'ashley', 6,
  ARRAY['Banking App', 'MARKER-HIDDEN-ROW-TAG-1'], 'negative', 'MARKER-HIDDEN-ROW-1 comment', '1987-06-05 04:03:02+00'),
 (990002, 1, 'MARKER-HIDDEN-ROW-2 contact', 'MARKER-HIDDEN-ROW-2@example.com', 'Germany', 'MARKER-HIDDEN-ROW-2 branch', 9, 876.54, 'bpo_b', 6,
  ARRAY['MARKER-HIDDEN-ROW-TAG-2'], 'positive', 'MARKER-HIDDEN-ROW-2 comment', '1987-06-05 04:03:02+00'),
 (990003, 2, 'MARKER-HIDDEN-ROW-3', 'MARKER-HIDDEN-ROW-3@example.com', 'USA', 'MARKER-HIDDEN-ROW-3 branch', 0, 876.54, 'brandon', 6,
  ARRAY['Delivery'], 'negative', 'MARKER-HIDDEN-ROW-3', '1987-06-05 04:03:02+00'),
 (990011, 1, 'MARKER-MASKED-11 contact', 'MARKER-MASKED-11@example.com', 'France', 'Paris', 8, 987.65, 'chloe', 3,
  ARRAY['Staff'], 'positive', 'Bon accueil, rien à redire.', '2025-07-01 10:00:00+00'),
 (990012, 2, 'MARKER-MASKED-12 contact', 'MARKER-MASKED-12@example.com', 'France', 'Lyon', 4, 987.65, 'jules', 4,
  ARRAY['Delivery'], 'negative', 'Livraison lente.', '2025-07-02 10:00:00+00'),
 (990021, 4, 'MARKER-MASKED-TOM-21 contact', 'MARKER-MASKED-TOM-21@example.com', 'Germany', 'Berlin', 7, 987.65, 'tom', 9,
  ARRAY['Quality'], 'neutral', 'Pizza correcte.', '2025-08-01 12:00:00+00');
-- Sixty identical hidden rows: their values become the most common ones
-- in the statistics.
INSERT INTO responses ` + cols + `
SELECT 990100 + g, 1, 'MARKER-HIDDEN-ROW-MCV contact', 'MARKER-HIDDEN-ROW-MCV@example.com', 'USA', 'MARKER-HIDDEN-ROW-MCV branch', 5, 876.54,
       'jessica', 6, ARRAY['MARKER-HIDDEN-ROW-MCV-TAG'], 'neutral', 'MARKER-HIDDEN-ROW-MCV comment', '1987-06-05 04:03:02+00'
FROM generate_series(0, 59) g;
UPDATE responses SET contact = 'MARKER-MASKED-' || id || ' contact', email = 'MARKER-MASKED-' || id || '@example.com', score = 987.65
WHERE id IN (1, 2);
CREATE STATISTICS adv_marker_stats (mcv) ON country, branch FROM responses;
ANALYZE responses;`
	if err := Cluster.Exec(ctx, DemoDB, seed); err != nil {
		t.Fatalf("seeding markers: %v", err)
	}
	t.Cleanup(func() {
		c, err := Cluster.Connect(ctx, DemoDB)
		if err != nil {
			t.Errorf("removing markers: %v", err)
			return
		}
		defer c.Close(ctx)
		for _, r := range old {
			args := make([][]byte, 4)
			for i, v := range r {
				if v != "NULL" {
					args[i] = []byte(v)
				}
			}
			if err := c.ExecParams(ctx, "UPDATE responses SET contact = $2, email = $3, score = $4::numeric WHERE id = $1::bigint",
				args, nil, nil, nil).Read().Err; err != nil {
				t.Errorf("restoring row %s: %v", r[0], err)
			}
		}
		if _, err := c.Exec(ctx, "DELETE FROM responses WHERE id >= 990000; DROP STATISTICS IF EXISTS adv_marker_stats; ANALYZE responses").ReadAll(); err != nil {
			t.Errorf("removing markers: %v", err)
		}
	})
}
