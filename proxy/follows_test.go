package proxy_test

import (
	"os"
	"path/filepath"
	"testing"
)

// startFollowsDemo creates public.response_tags upstream, one tag per
// response plus a tag without response (NULL) and an orphan, and starts
// pgveil with configs/demo.hcl and a table block making the tags follow
// public.responses.
func startFollowsDemo(t *testing.T) *testProxy {
	t.Helper()
	setupDemo(t)
	direct(t, `CREATE TABLE response_tags (response_id int, tag text)`)
	t.Cleanup(func() { direct(t, `DROP TABLE response_tags`) })
	direct(t, `INSERT INTO response_tags SELECT id, 'tag ' || id FROM responses UNION ALL VALUES (NULL, 'no response'), (-1, 'orphan')`)
	direct(t, `GRANT SELECT ON response_tags TO pgveil_svc`)
	demo, err := os.ReadFile("../configs/demo.hcl")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pgveil.hcl")
	cfg := string(demo) + `
table "public.response_tags" {
  follows = { table = "public.responses", column = "response_id", key = "id" }
}
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := startDemoFrom(t, path)
	return p
}

func TestFollowsShowsATagExactlyWhenItsResponseIs(t *testing.T) {
	p := startFollowsDemo(t)
	const (
		tagsOutsideResponses = `SELECT count(*) FROM (SELECT response_id FROM response_tags EXCEPT SELECT id FROM responses) x`
		responsesWithoutTags = `SELECT count(*) FROM (SELECT id FROM responses EXCEPT SELECT response_id FROM response_tags) x`
	)
	for _, user := range []string{"paul", "marie", "tom", "lea", "survey_admin", "hq"} {
		t.Run(user+" sees the tags of the responses she sees, and no other", func(t *testing.T) {
			c := p.connect(t, user)
			tags, resp := count(t, c, `SELECT count(*) FROM response_tags`), count(t, c, `SELECT count(*) FROM responses`)
			if tags != resp {
				t.Errorf("%d tags for %d responses", tags, resp)
			}
			if n := count(t, c, tagsOutsideResponses); n != 0 {
				t.Errorf("%d tags of responses %s cannot see", n, user)
			}
			if n := count(t, c, responsesWithoutTags); n != 0 {
				t.Errorf("%d responses whose tag %s cannot see", n, user)
			}
			if n := count(t, c, `SELECT count(*) FROM response_tags WHERE response_id IS NULL OR response_id = -1`); n != 0 {
				t.Errorf("%d tags without a response shown", n)
			}
		})
	}
	t.Run("moving a team in the tree moves its tags with its responses, without a reload", func(t *testing.T) {
		c := p.connect(t, "paul")
		before := count(t, c, `SELECT count(*) FROM response_tags`)
		direct(t, `UPDATE teams SET parent_id = 7 WHERE id = 12`) // Fresh Produce under Frozen Food
		t.Cleanup(func() { direct(t, `UPDATE teams SET parent_id = 1 WHERE id = 12`) })
		tags, resp := count(t, c, `SELECT count(*) FROM response_tags`), count(t, c, `SELECT count(*) FROM responses`)
		if tags == before || tags != resp {
			t.Errorf("after the move: %d tags (%d before) for %d responses", tags, before, resp)
		}
		if n := count(t, c, tagsOutsideResponses); n != 0 {
			t.Errorf("%d tags of responses paul cannot see", n)
		}
	})
	t.Run("a write of the child's tags is scoped like a read", func(t *testing.T) {
		// NOTE: the demo's roles list no write of tags; the child's
		// follows are in the plan of a join with the parent too.
		c := p.connect(t, "paul")
		if n := count(t, c, `SELECT count(*) FROM responses r JOIN response_tags g ON g.response_id = r.id`); n != count(t, c, `SELECT count(*) FROM responses`) {
			t.Errorf("the join shows %d rows", n)
		}
	})
}
