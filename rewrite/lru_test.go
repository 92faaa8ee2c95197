package rewrite

import (
	"strings"
	"testing"
)

func TestLRU(t *testing.T) {
	key := func(i int, size int) cacheKey {
		return cacheKey{policy: "p", kind: 'Q', text: strings.Repeat(string(rune('a'+i%26)), size) + string(rune('0'+i/26))}
	}
	t.Run("the least recently used entry goes first", func(t *testing.T) {
		c := newLRU(2)
		c.put(key(0, 1), cached{})
		c.put(key(1, 1), cached{})
		c.get(key(0, 1))
		c.put(key(2, 1), cached{})
		if _, ok := c.get(key(1, 1)); ok {
			t.Fatal("entry 1 was kept")
		}
		if _, ok := c.get(key(0, 1)); !ok {
			t.Fatal("entry 0 was dropped")
		}
	})
	t.Run("large texts are bounded by bytes, not by the number of entries", func(t *testing.T) {
		c := newLRU(10000)
		c.maxBytes = 1 << 20
		for i := 0; i < 100; i++ {
			c.put(key(i, 64<<10), cached{res: &Result{SQL: strings.Repeat("x", 64<<10)}})
			if c.bytes > c.maxBytes {
				t.Fatalf("%d bytes held after %d entries", c.bytes, i+1)
			}
		}
		if n := c.ll.Len(); n < 4 || n > 8 {
			t.Fatalf("%d entries of 128 KiB kept in 1 MiB", n)
		}
		c.purge()
		if c.bytes != 0 || c.ll.Len() != 0 {
			t.Fatalf("after purge: %d bytes, %d entries", c.bytes, c.ll.Len())
		}
	})
	t.Run("replacing an entry counts its new size only", func(t *testing.T) {
		c := newLRU(10)
		c.put(key(0, 10), cached{res: &Result{SQL: strings.Repeat("x", 1000)}})
		c.put(key(0, 10), cached{})
		if want := entrySize(key(0, 10), cached{}); c.bytes != want {
			t.Fatalf("%d bytes, want %d", c.bytes, want)
		}
	})
}
