package statement

import "testing"

// TestPopFront checks that an emptied queue keeps a small array for the
// next appends, and lets a large one go.
func TestPopFront(t *testing.T) {
	for _, c := range []struct {
		name string
		cap  int
		keep bool
	}{
		{"an emptied queue of a small array keeps it", 4, true},
		{"an emptied queue of keepCap keeps it", keepCap, true},
		{"an emptied queue of a large array lets it go", keepCap + 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := new(int)
			s := append(make([]*int, 0, c.cap), x)
			arr := &s[:1][0]
			s = PopFront(s)
			if len(s) != 0 {
				t.Fatalf("len %d, want 0", len(s))
			}
			if *arr != nil {
				t.Fatal("the array still points to the element popped")
			}
			if kept := cap(s) > 0; kept != c.keep {
				t.Fatalf("array kept: %v, want %v", kept, c.keep)
			}
			if c.keep {
				if s = append(s, x); &s[0] != arr {
					t.Fatal("the next append did not reuse the array")
				}
			}
		})
	}
	t.Run("a queue of two keeps its second", func(t *testing.T) {
		a, b := new(int), new(int)
		s := PopFront([]*int{a, b})
		if len(s) != 1 || s[0] != b {
			t.Fatalf("got %v", s)
		}
	})
}
