package proxy

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// bindTail returns the body of a Bind of values after its names, as
// bindParams reads it.
func bindTail(t *testing.T, formats []int16, values [][]byte) []byte {
	t.Helper()
	b, err := (&pgproto3.Bind{ParameterFormatCodes: formats, Parameters: values}).Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Header, then two empty names.
	return b[5+2:]
}

func TestBindParams(t *testing.T) {
	for _, c := range []struct {
		name    string
		formats []int16
		values  [][]byte
		max     int
		want    string
	}{
		{"none", nil, nil, 256, ""},
		{"text and NULL", nil, [][]byte{[]byte("FR"), nil, []byte("it's")}, 256, `$1 = 'FR', $2 = NULL, $3 = 'it''s'`},
		{"one binary format for all", []int16{1}, [][]byte{{0, 0, 0, 42}}, 256, `$1 = \x0000002a`},
		{"formats per value", []int16{0, 1}, [][]byte{[]byte("7"), {1}}, 256, `$1 = '7', $2 = \x01`},
		{"cut to max, not inside a character", nil, [][]byte{[]byte("ééé")}, 3, `$1 = 'é'...`},
		{"binary cut", []int16{1}, [][]byte{{1, 2, 3, 4}}, 2, `$1 = \x0102...`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := bindParams(bindTail(t, c.formats, c.values), c.max); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
	t.Run("a head cut by the peek lists the values it lacks", func(t *testing.T) {
		tail := bindTail(t, nil, [][]byte{[]byte("a"), []byte(strings.Repeat("b", 100)), []byte("c")})
		got := bindParams(tail[:4+4+1+4+10], 256)
		if got != `$1 = 'a', $2 = 'bbbbbbbbbb'..., $3 to $3 not recorded (the Bind is too long)` {
			t.Fatalf("got %s", got)
		}
	})
	t.Run("an empty or garbled head", func(t *testing.T) {
		if got := bindParams(nil, 256); got != "(unreadable parameters)" {
			t.Fatalf("got %s", got)
		}
	})
}

// FuzzBindParams feeds bindParams the head of a Bind's values as a
// client may send it (counts that lie, negative lengths, format codes of
// any number and value, cut anywhere): it must not panic, and what it
// renders stays within maxParamsText and one value past it.
func FuzzBindParams(f *testing.F) {
	for _, c := range []struct {
		formats []int16
		values  [][]byte
	}{
		{nil, nil},
		{nil, [][]byte{[]byte("FR"), nil, []byte("it's")}},
		{[]int16{1}, [][]byte{{0, 0, 0, 42}}},
		{[]int16{0, 1}, [][]byte{[]byte("7"), {1}}},
		{[]int16{0, 1, 1}, [][]byte{[]byte("ééé")}},
	} {
		b, err := (&pgproto3.Bind{ParameterFormatCodes: c.formats, Parameters: c.values}).Encode(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[5+2:], 256)
		f.Add(b[5+2:len(b)-3], 2)
	}
	f.Add([]byte{0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}, 8)
	f.Add([]byte{0xff, 0xff, 0, 1}, 8)
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		if max < 1 || max > 64<<10 {
			return
		}
		s := bindParams(b, max)
		// One value past the bound at most: 2*max of hex or of doubled
		// quotes, its "$n = " and the list of those not recorded.
		if limit := maxParamsText + 2*max + 128; len(s) > limit {
			t.Fatalf("rendered %d bytes, more than %d", len(s), limit)
		}
	})
}
