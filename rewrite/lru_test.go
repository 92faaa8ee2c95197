package rewrite

import (
	"strconv"
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
	t.Run("one policy's churn leaves the others half the cache", func(t *testing.T) {
		for _, bytes := range []bool{false, true} {
			c := newLRU(100)
			size := 1
			if bytes {
				c.max, c.maxBytes, size = 10000, 100*(entrySize(key(0, 1000), cached{})), 1000
			}
			other := func(i int) cacheKey { k := key(i, size); k.policy = "paul"; return k }
			for i := 0; i < 40; i++ {
				c.put(other(i), cached{})
			}
			for i := 0; i < 5000; i++ {
				k := key(i, size)
				k.text += strconv.Itoa(i)
				c.put(k, cached{})
			}
			for i := 0; i < 40; i++ {
				if _, ok := c.get(other(i)); !ok {
					t.Fatalf("bounded by bytes %v: another policy's entry %d was dropped by 5000 entries of one policy", bytes, i)
				}
			}
			if c.ll.Len() > c.max || c.bytes > c.maxBytes || len(c.shares) != 2 {
				t.Fatalf("bounded by bytes %v: %d entries, %d bytes, %d shares", bytes, c.ll.Len(), c.bytes, len(c.shares))
			}
			if sh := c.shares["p"]; sh.ll.Len() < 40 || c.shares["paul"].ll.Len() != 40 {
				t.Fatalf("bounded by bytes %v: the churning policy keeps %d entries", bytes, sh.ll.Len())
			}
		}
	})
	t.Run("alone, a policy has the whole cache", func(t *testing.T) {
		c := newLRU(100)
		for i := 0; i < 300; i++ {
			c.put(key(i, 1+i/26), cached{})
		}
		if c.ll.Len() != 100 || c.shares["p"].ll.Len() != 100 {
			t.Fatalf("%d entries, %d in the share", c.ll.Len(), c.shares["p"].ll.Len())
		}
		c.purge()
		if len(c.shares) != 0 {
			t.Fatalf("after purge: %d shares", len(c.shares))
		}
	})
}
