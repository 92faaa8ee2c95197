package pgtree_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgveil/pgveil/internal/pgtree"
)

// statements are texts whose trees hold most kinds of message.
var statements = []string{
	"WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3) SELECT * FROM t",
	"SELECT a.x, b.* FROM s.a JOIN LATERAL (SELECT * FROM b WHERE b.y = a.x LIMIT 1) b ON true WHERE a.z IN (1, 2) AND a.w BETWEEN $1 AND 4 ORDER BY 1 DESC NULLS LAST FOR UPDATE OF a",
	"SELECT count(*) FILTER (WHERE x > 0) OVER (PARTITION BY y ORDER BY z ROWS BETWEEN 1 PRECEDING AND CURRENT ROW), array_agg(DISTINCT q ORDER BY q), CASE WHEN a THEN 1 ELSE 2 END, x::int[], (row(1, 2)).f1, arr[1:2], '{1}'::int[] @> ARRAY[1], COALESCE(a, b), GREATEST(1, 2), x IS DISTINCT FROM y, NULLIF(a, b), EXISTS (SELECT 1), x IS NOT NULL, b IS TRUE FROM t GROUP BY GROUPING SETS ((a), (a, b)), CUBE (c) HAVING sum(x) > 1",
	"INSERT INTO t (a, b) VALUES (1, DEFAULT), (2, 3) ON CONFLICT (a) DO UPDATE SET b = excluded.b WHERE t.a > 0 RETURNING *",
	"UPDATE t SET (a, b) = (SELECT 1, 2) FROM u WHERE t.id = u.id RETURNING t.a",
	"DELETE FROM t USING u WHERE t.id = u.id AND u.x = ANY ('{1,2}')",
	"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.a)",
	"CREATE TABLE t (a int PRIMARY KEY, b text NOT NULL DEFAULT 'x' CHECK (b <> ''), c numeric(5, 2) REFERENCES u (id))",
	"COPY (SELECT * FROM t) TO STDOUT WITH (FORMAT csv, HEADER)",
	"PREPARE p(int) AS SELECT $1; EXECUTE p(1); DECLARE c CURSOR WITH HOLD FOR SELECT 1; FETCH 10 FROM c; SET search_path = a, b; SHOW x; EXPLAIN ANALYZE SELECT 1",
	"SELECT xmlelement(name foo, xmlattributes(1 AS bar)), json_object('a': 1), x COLLATE \"C\", t.* FROM ROWS FROM (generate_series(1, 2)) WITH ORDINALITY AS t(a, b) TABLESAMPLE bernoulli (10)",
	"CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql AS $$ SELECT a $$; DO $$ BEGIN END $$; GRANT SELECT ON t TO r; ALTER TABLE t ADD COLUMN d int",
}

// reflected lists the messages directly below m as protobuf reflection
// finds them.
func reflected(m protoreflect.Message) []proto.Message {
	var out []proto.Message
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind {
			return true
		}
		if fd.IsList() {
			for i := 0; i < v.List().Len(); i++ {
				out = append(out, v.List().Get(i).Message().Interface())
			}
			return true
		}
		out = append(out, v.Message().Interface())
		return true
	})
	return out
}

// goldenStatements returns the statements of the rewrite goldens.
func goldenStatements(t *testing.T) []string {
	t.Helper()
	var texts []string
	files, _ := filepath.Glob("../../rewrite/testdata/rewrite/*.txtar")
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, after, ok := strings.Cut(string(raw), "-- sql --\n"); ok {
			sql, _, _ := strings.Cut(after, "\n-- ")
			texts = append(texts, sql)
		}
	}
	return texts
}

func TestChildrenMatchReflection(t *testing.T) {
	texts := append(goldenStatements(t), statements...)
	seen := map[string]bool{}
	for _, text := range texts {
		tree, err := pg_query.Parse(text)
		if err != nil {
			continue
		}
		pgtree.Walk(tree, func(m proto.Message) bool {
			seen[string(proto.MessageName(m))] = true
			want := reflected(m.ProtoReflect())
			var got []proto.Message
			pgtree.Children(m, func(c proto.Message) { got = append(got, c) })
			if len(got) != len(want) {
				t.Fatalf("%s in %q: %d children, reflection finds %d", proto.MessageName(m), text, len(got), len(want))
			}
			// NOTE: protobuf reflection ranges over fields in an order
			// it keeps undefined (it varies from run to run); Children
			// goes in field order. The same messages, each once.
			count := map[proto.Message]int{}
			for _, c := range want {
				count[c]++
			}
			for i, c := range got {
				if count[c] == 0 {
					t.Fatalf("%s in %q: child %d, %v, is not one reflection finds", proto.MessageName(m), text, i, c)
				}
				count[c]--
			}
			return true
		})
	}
	if len(seen) < 80 {
		t.Errorf("the statements hold only %d kinds of message", len(seen))
	}
}

func TestGeneratedIsCurrent(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("go", "run", "./gen", dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run ./gen: %v\n%s", err, b)
	}
	for _, name := range []string{"children.go", "equal.go"} {
		want, _ := os.ReadFile(filepath.Join(dir, name))
		got, _ := os.ReadFile(name)
		if string(got) != string(want) {
			t.Errorf("%s is out of date: run go generate ./internal/pgtree", name)
		}
	}
}

// clearLocations zeroes the location fields below m, as Equal ignores
// them.
func clearLocations(m proto.Message) {
	pgtree.Walk(m, func(m proto.Message) bool {
		r := m.ProtoReflect()
		for _, name := range []protoreflect.Name{"location", "stmt_location", "stmt_len"} {
			if f := r.Descriptor().Fields().ByName(name); f != nil {
				r.Clear(f)
			}
		}
		return true
	})
}

func TestEqualIsProtoEqualLocationsAside(t *testing.T) {
	texts := append(goldenStatements(t), statements...)
	var trees []*pg_query.ParseResult
	for _, text := range texts {
		if tree, err := pg_query.Parse(text); err == nil {
			trees = append(trees, tree)
			// The same statement, spaced otherwise: other locations.
			if out, err := pg_query.Deparse(tree); err == nil {
				if back, err := pg_query.Parse("  " + out); err == nil {
					trees = append(trees, back)
				}
			}
		}
	}
	cleared := make([]*pg_query.ParseResult, len(trees))
	for i, tree := range trees {
		cleared[i] = proto.Clone(tree).(*pg_query.ParseResult)
		clearLocations(cleared[i])
	}
	same := 0
	for i := range trees {
		for j := range trees {
			want := proto.Equal(cleared[i], cleared[j])
			if got := pgtree.Equal(trees[i], trees[j]); got != want {
				t.Fatalf("Equal(%d, %d) = %v, proto.Equal locations aside = %v", i, j, got, want)
			}
			if want && i != j {
				same++
			}
		}
	}
	if same == 0 {
		t.Error("no two trees were equal: the test proves nothing")
	}
}
