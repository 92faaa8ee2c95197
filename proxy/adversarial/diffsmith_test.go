package adversarial_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestDiffsmith runs statements of the diffsmith generator
// (diffsmith_gen_test.go) as every demo user of the differential test,
// through pgveil and natively over the native_<login> views, and holds
// pgveil to the native answer:
//
//   - both succeed: the same columns and the same rows, as multisets;
//   - one fails and not the other: a mismatch (an error only through
//     pgveil that depends on the data would leak a hidden value);
//   - pgveil refuses: allowed, counted per firewall rule.
//
// By default it runs a short deterministic corpus. PGVEIL_DIFFSMITH=N
// runs N statements, PGVEIL_DIFFSMITH_SEED=S starts from another seed,
// PGVEIL_DIFFSMITH_ONLY=i runs statement i alone (as the report of a
// mismatch names it), and PGVEIL_DIFFSMITH_BI=1 runs BI statements only
// (diffsmith_bi_test.go).
func TestDiffsmith(t *testing.T) {
	n, seed, only := 300, int64(1), int64(-1)
	if proxytest.RaceEnabled {
		// NOTE: the statements' worth is in comparing them; the run
		// without the race detector compares all 300.
		n = 120
	}
	if v := os.Getenv("PGVEIL_DIFFSMITH"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatalf("PGVEIL_DIFFSMITH: %v", err)
		}
	}
	if v := os.Getenv("PGVEIL_DIFFSMITH_SEED"); v != "" {
		seed, _ = strconv.ParseInt(v, 10, 64)
	}
	if os.Getenv("PGVEIL_DIFFSMITH_BI") != "" {
		biPct = 100
		t.Cleanup(func() { biPct = 12 })
	}
	if v := os.Getenv("PGVEIL_DIFFSMITH_ONLY"); v != "" {
		only, _ = strconv.ParseInt(v, 10, 64)
		n = int(only) + 1
	}

	p := proxytest.StartDemo(t)
	ctx := context.Background()
	createNativeViews(t)

	type side struct{ through, native *pgconn.PgConn }
	sides := map[string]side{}
	for _, u := range diffUsers {
		through := p.Connect(t, u.login).PgConn()
		native, err := proxytest.Cluster.Connect(ctx, proxytest.DemoDB)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { native.Close(context.Background()) })
		for _, c := range []*pgconn.PgConn{through, native} {
			if _, err := c.Exec(ctx, "SET statement_timeout = '3s'").ReadAll(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := native.Exec(ctx, "SET search_path = native_"+u.login+", public").ReadAll(); err != nil {
			t.Fatal(err)
		}
		sides[u.login] = side{through, native}
	}

	// Each user runs on connections of its own, all at once; statements
	// are generated again for each, the same from the same seed. A
	// mismatching statement is reported once, with every user it failed.
	stats := make([]diffsmithStats, len(diffUsers))
	var mu sync.Mutex
	problems := map[int64][]string{}
	var wg sync.WaitGroup
	for ui, u := range diffUsers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &stats[ui]
			s := sides[u.login]
			for i := int64(0); i < int64(n); i++ {
				if only >= 0 && i != only {
					continue
				}
				stmt := newSmith(seed*1_000_003 + i).Statement()
				if problem := st.compare(ctx, smithText(stmt, "native_"+u.login), s.through, s.native, smithText(stmt, "public")); problem != "" {
					mu.Lock()
					problems[i] = append(problems[i], u.login+": "+problem)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	var bad []int64
	for i := range problems {
		bad = append(bad, i)
	}
	sort.Slice(bad, func(a, b int) bool { return bad[a] < bad[b] })
	for k, i := range bad {
		if k == 20 {
			t.Errorf("and %d statements more", len(bad)-k)
			break
		}
		p := problems[i]
		sort.Strings(p)
		t.Errorf("statement %d (seed %d, PGVEIL_DIFFSMITH_ONLY=%d):\n%s\n%s", i, seed, i, smithText(newSmith(seed*1_000_003+i).Statement(), "public"), strings.Join(p, "\n"))
	}
	var st diffsmithStats
	for _, s := range stats {
		st.add(&s)
	}
	t.Log(st.String())
	if st.runs > 50 && st.allowed*100 < st.runs*60 {
		t.Errorf("only %d of %d runs allowed: aim the generator better", st.allowed, st.runs)
	}
}

// createNativeViews creates the native_<login> schemas of diffUsers and
// drops them when the test ends.
func createNativeViews(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, u := range diffUsers {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, nativeViews(u.login, u.score, u.pii, u.countries, u.reference)); err != nil {
			t.Fatalf("creating native_%s: %v", u.login, err)
		}
	}
	t.Cleanup(func() {
		var drop []string
		for _, u := range diffUsers {
			drop = append(drop, "DROP SCHEMA IF EXISTS native_"+u.login+" CASCADE")
		}
		if err := proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, strings.Join(drop, "; ")); err != nil {
			t.Errorf("dropping the native schemas: %v", err)
		}
	})
}

// diffsmithStats counts what the runs gave.
type diffsmithStats struct {
	runs, allowed, bothFailed, timeouts, mismatches int
	// refusals counts pgveil's refusals per firewall rule; examples keeps
	// the first statement each rule refused.
	refusals map[string]int
	examples map[string]string
	// errors counts the SQLSTATEs of statements that failed both ways.
	errors map[string]int
}

var firewallRule = regexp.MustCompile(`\(firewall rule ([a-z_]+)\)`)

// compare runs the statement both ways and returns what is wrong, or "".
func (st *diffsmithStats) compare(ctx context.Context, nativeSQL string, through, native *pgconn.PgConn, throughSQL string) string {
	if st.refusals == nil {
		st.refusals, st.examples, st.errors = map[string]int{}, map[string]string{}, map[string]int{}
	}
	st.runs++
	got, gerr := readDiff(through.ExecParams(ctx, throughSQL, nil, nil, nil, nil))
	var pe *pgconn.PgError
	if errors.As(gerr, &pe) {
		if m := firewallRule.FindStringSubmatch(pe.Message); m != nil {
			st.refusals[m[1]]++
			if _, ok := st.examples[m[1]]; !ok {
				st.examples[m[1]] = pe.Message + "\n    " + throughSQL
			}
			return ""
		}
	} else if gerr != nil {
		return fmt.Sprintf("through pgveil: %v", gerr)
	}
	want, werr := readDiff(native.ExecParams(ctx, nativeSQL, nil, nil, nil, nil))
	var ne *pgconn.PgError
	errors.As(werr, &ne)
	if werr != nil && ne == nil {
		return fmt.Sprintf("natively: %v", werr)
	}
	if (pe != nil && pe.Code == "57014") || (ne != nil && ne.Code == "57014") {
		st.timeouts++
		return ""
	}
	st.allowed++
	switch {
	case pe != nil && ne != nil:
		st.bothFailed++
		st.errors[ne.Code]++
		if _, ok := st.examples[ne.Code]; !ok {
			st.examples[ne.Code] = ne.Message + "\n    " + nativeSQL
		}
		if pe.Code != ne.Code {
			st.mismatches++
			return fmt.Sprintf("errors differ: %s %s through pgveil, %s %s natively", pe.Code, pe.Message, ne.Code, ne.Message)
		}
		return ""
	case pe != nil:
		st.mismatches++
		return fmt.Sprintf("fails only through pgveil: %s %s", pe.Code, pe.Message)
	case ne != nil:
		st.mismatches++
		return fmt.Sprintf("fails only natively: %s %s", ne.Code, ne.Message)
	}
	if !reflect.DeepEqual(got.cols, want.cols) {
		st.mismatches++
		return fmt.Sprintf("columns: %v through pgveil, %v natively", got.cols, want.cols)
	}
	if !reflect.DeepEqual(sortedRows(got.rows), sortedRows(want.rows)) {
		st.mismatches++
		return fmt.Sprintf("%d rows through pgveil, %d natively\n%s", len(got.rows), len(want.rows), diffRows(got.rows, want.rows))
	}
	return ""
}

// add adds o's counts to st's.
func (st *diffsmithStats) add(o *diffsmithStats) {
	if st.refusals == nil {
		st.refusals, st.examples, st.errors = map[string]int{}, map[string]string{}, map[string]int{}
	}
	st.runs += o.runs
	st.allowed += o.allowed
	st.bothFailed += o.bothFailed
	st.timeouts += o.timeouts
	st.mismatches += o.mismatches
	for k, v := range o.refusals {
		st.refusals[k] += v
	}
	for k, v := range o.errors {
		st.errors[k] += v
	}
	for k, v := range o.examples {
		if _, ok := st.examples[k]; !ok {
			st.examples[k] = v
		}
	}
}

func (st *diffsmithStats) String() string {
	var b strings.Builder
	refused := 0
	for _, c := range st.refusals {
		refused += c
	}
	fmt.Fprintf(&b, "%d runs: %d allowed (%.1f%%; %d failed both ways, %v), %d refused, %d timed out, %d mismatches\n",
		st.runs, st.allowed, 100*float64(st.allowed)/float64(max(st.runs, 1)), st.bothFailed, st.errors, refused, st.timeouts, st.mismatches)
	var rules []string
	for r := range st.refusals {
		rules = append(rules, r)
	}
	sort.Slice(rules, func(i, j int) bool { return st.refusals[rules[i]] > st.refusals[rules[j]] })
	for _, r := range rules {
		fmt.Fprintf(&b, "  refused by %s: %d, first: %s\n", r, st.refusals[r], st.examples[r])
	}
	if testing.Verbose() {
		for code := range st.errors {
			fmt.Fprintf(&b, "  failed both ways with %s, first: %s\n", code, st.examples[code])
		}
	}
	return b.String()
}
