package proxy

import "testing"

func TestErrorPosition(t *testing.T) {
	const client = "SELECT é FROM t WHERE x = 'a'"
	const sent = "SELECT é FROM (SELECT é, x FROM public.t WHERE scope) AS t WHERE x = 'a'"
	tests := []struct {
		name      string
		pos, want int32
		client    string
	}{
		{"a statement sent unchanged keeps its position", 12, 12, sent},
		{"a position in the common prefix stays", 8, 8, client},
		{"a position in the common suffix moves back by the difference", 70, 27, client},
		{"the end of the text maps to the end of the client's", 73, 30, client},
		{"a position inside pgveil's subquery is dropped", 30, 0, client},
		{"a position past the end is dropped", 90, 0, client},
		{"no position stays none", 0, 0, client},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errorPosition(tt.pos, tt.client, sent); got != tt.want {
				t.Fatalf("errorPosition(%d) = %d, want %d", tt.pos, got, tt.want)
			}
		})
	}
	t.Run("a batch with two statements maps none", func(t *testing.T) {
		var b batchTexts
		b.note(3, "", "a", "b")
		if _, _, ok := b.at(3); !ok {
			t.Fatal("one statement: not found")
		}
		b.note(3, "", "c", "d")
		if _, _, ok := b.at(3); ok {
			t.Fatal("two statements: found")
		}
		if _, _, ok := b.at(3 + int64(len(b.slots))); ok {
			t.Fatal("a batch never noted: found")
		}
		b.note(4, queryName, "EXECUTE q", "EXECUTE q")
		b.opaque(4)
		if _, _, ok := b.at(4); ok {
			t.Fatal("a batch running an earlier statement: found")
		}
		b.note(5, "s1", "a", "b")
		b.bind(5, "s1")
		if _, _, ok := b.at(5); !ok {
			t.Fatal("a batch binding the statement it parsed: not found")
		}
		b.bind(5, "s0")
		if _, _, ok := b.at(5); ok {
			t.Fatal("a batch binding an earlier statement too: found")
		}
		b.bind(6, "s0")
		if _, _, ok := b.at(6); ok {
			t.Fatal("a batch binding an earlier statement only: found")
		}
	})
}

func TestSystemColumnMissing(t *testing.T) {
	for msg, want := range map[string]bool{
		`column "tableoid" does not exist`:  true,
		`column e.xmin does not exist`:      true,
		`column Events.ctid does not exist`: true,
		`column "cmax" does not exist`:      true,
		`column "a.ctid" does not exist`:    false,
		`column "id" does not exist`:        false,
		`column e.ctidx does not exist`:     false,
		`relation "ctid" does not exist`:    false,
		`column "ctid" is ambiguous`:        false,
	} {
		if got := systemColumnMissing(msg); got != want {
			t.Errorf("systemColumnMissing(%q) = %v, want %v", msg, got, want)
		}
	}
}
