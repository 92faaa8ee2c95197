package rewrite_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// TestEngineCacheLongShape: a literal shape longer than the array find
// builds it in (512 bytes), or exactly as long, is looked up and kept as
// a shorter one is: a warm engine sends for the third statement what a
// cold one sends.
func TestEngineCacheLongShape(t *testing.T) {
	env := demoEnvironment(t)
	p := env.policy(t, "marie")
	for _, pad := range []int{0, 400, 470, 480, 490, 500, 505, 510, 511, 512, 513, 520, 600, 1500} {
		comment := "/* " + strings.Repeat("x", pad) + " */ "
		stmt := func(id, country string) string {
			return comment + "SELECT id, nps FROM responses WHERE id = " + id + " AND country = '" + country + "'"
		}
		t.Run("pad "+strconv.Itoa(pad), func(t *testing.T) {
			checkEngineCache(t, env.cat, "marie", p, stmt("1", "FR"), stmt("2", "DE"), stmt("123456", "x''y"))
			checkEngineCache(t, env.cat, "marie", p, stmt("1", "FR"), stmt("2", "DE"), stmt("0042", "IT"))
			e := rewrite.NewEngine(env.cat, func(string) (rewrite.Policy, error) { return p, nil }, nil, 100)
			for _, text := range []string{stmt("1", "FR"), stmt("2", "DE"), stmt("3", "IT")} {
				if _, err := e.Rewrite(context.Background(), "marie", 'Q', text); err != nil {
					t.Fatal(err)
				}
			}
			if hits, _ := e.CacheStats(); hits == 0 {
				t.Fatalf("the third statement of a %d-byte comment's shape was not served from the cache", pad)
			}
		})
	}
}

// TestEngineCacheShapesConcurrently: sessions sending statements of a few
// shapes at once, short and longer than find's array, each get the
// rewrite of their own statement: no key looked up from one session's
// stack is kept by the cache another session reads.
func TestEngineCacheShapesConcurrently(t *testing.T) {
	env := demoEnvironment(t)
	p := env.policy(t, "marie")
	policy := func(string) (rewrite.Policy, error) { return p, nil }
	stmt := func(pad, id int) string {
		return "/* " + strings.Repeat("y", pad) + " */ SELECT id, nps FROM responses WHERE id = " + strconv.Itoa(id) +
			" AND country = 'c" + strconv.Itoa(id) + "'"
	}
	pads := []int{0, 300, 511, 700}
	// want holds each statement's rewrite by an engine that never saw
	// its shape, and by one that serves it from the shape's template.
	want := map[string][2]string{}
	for _, pad := range pads {
		templated := rewrite.NewEngine(env.cat, policy, nil, 100)
		for id := range 40 {
			text := stmt(pad, id)
			cold, err := rewrite.NewEngine(env.cat, policy, nil, 100).Rewrite(context.Background(), "marie", 'Q', text)
			if err != nil {
				t.Fatal(err)
			}
			warm, err := templated.Rewrite(context.Background(), "marie", 'Q', text)
			if err != nil {
				t.Fatal(err)
			}
			want[text] = [2]string{cold.SQL, warm.SQL}
		}
	}
	warm := rewrite.NewEngine(env.cat, policy, nil, 100)
	errs := make(chan string, 8)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 200 {
				text := stmt(pads[(g+n)%len(pads)], (g*7+n)%40)
				res, err := warm.Rewrite(context.Background(), "marie", 'Q', text)
				if err != nil {
					errs <- err.Error()
					return
				}
				// The splice keeps the comment and spells the alias as
				// the first statement of the shape did: compared
				// without them.
				if got, ok := spelling(res.SQL), want[text]; got != spelling(ok[0]) && got != spelling(ok[1]) {
					errs <- text + ": got " + res.SQL + ", want " + ok[0]
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if hits, _ := warm.CacheStats(); hits == 0 {
		t.Fatal("no statement was served from the cache")
	}
}

// spelling returns a rewrite without a leading comment and with its
// subquery's alias written without AS, as the deparser and the splice
// each write it.
func spelling(sql string) string {
	if strings.HasPrefix(sql, "/*") {
		sql = strings.TrimSpace(sql[strings.Index(sql, "*/")+2:])
	}
	return strings.ReplaceAll(sql, ") AS responses", ") responses")
}
