package audit

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzAppendString checks the audit encoder's strings against
// encoding/json: every value the writer escapes decodes to what
// encoding/json would have kept of it (invalid UTF-8 as U+FFFD, byte by
// byte, as lines always held it), and the line holds no raw character a
// terminal would act on.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{
		"", "plain ascii", "\x00\x1f\x7f", "quote \" backslash \\",
		"\u0085\u009b\u009d", "\u202e\u2066\u200b\u200d\ufeff", "\u2028\u2029",
		"\ufffd", "a\xffb", "\xed\xa0\x80", "\xed\xbf\xbf", "\xf4\x90\x80\x80",
		"\U000e0041\U0001f600\U0010ffff", "ends in a partial sequence \xe2\x80", "\xf0\x9f\x98",
		"marie\u3164", "\u115f\u1160\uffa0", "\xc0\x80", "\u00ad\u034f\u061c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		line := appendString(nil, s)
		var got string
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("%+q encodes to %s, which does not decode: %v", s, line, err)
		}
		std, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var want string
		if err := json.Unmarshal(std, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("%+q decodes to %+q, encoding/json keeps %+q", s, got, want)
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("valid %+q not kept exactly", s)
		}
		for _, r := range string(line) {
			if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point) {
				t.Fatalf("raw %U in %s", r, line)
			}
		}
	})
}

// TestAppendStringWordSkip: appendString skips eight plain bytes at a
// time (plainWord); every byte value, at every offset of a word, still
// comes out as encoding/json keeps it.
func TestAppendStringWordSkip(t *testing.T) {
	for c := 0; c < 256; c++ {
		for off := 0; off < 16; off++ {
			raw := []byte("SELECT a FROM t WHERE b = 'xyz'")
			raw[off] = byte(c)
			s := string(raw)
			var got, want string
			if err := json.Unmarshal(appendString(nil, s), &got); err != nil {
				t.Fatalf("byte %#x at %d: %v", c, off, err)
			}
			std, _ := json.Marshal(s)
			_ = json.Unmarshal(std, &want)
			if got != want {
				t.Fatalf("byte %#x at %d: %+q decodes to %+q, encoding/json keeps %+q", c, off, s, got, want)
			}
		}
	}
}

// BenchmarkAppendSigned measures the encoding of a plain ASCII statement
// record, the writer's common case.
func BenchmarkAppendSigned(b *testing.B) {
	e := &Entry{Seq: 1, Record: *statement(1), Prev: zeroMAC}
	e.SQL = "SELECT id, email, country, created_at FROM public.responses WHERE country = 'FR' AND created_at > now() - interval '7 days' ORDER BY id LIMIT 100"
	e.Rewritten = strings.Replace(e.SQL, "email", "'***' AS email", 1)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendSigned(buf[:0], e)
	}
}

// BenchmarkAppendSignedAccented measures a record whose SQL holds
// non-ASCII letters throughout (each one goes through the escape check).
func BenchmarkAppendSignedAccented(b *testing.B) {
	e := &Entry{Seq: 1, Record: *statement(1), Prev: zeroMAC}
	e.SQL = "SELECT id FROM public.réponses WHERE ville IN ('Zürich', 'Besançon', 'Öland', 'Ærøskøbing', '東京都', 'Москва', 'Αθήνα')"
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendSigned(buf[:0], e)
	}
}

// BenchmarkPrepareNewTexts measures what the writer does with the record
// of a simple-protocol statement: a new text each time (an inlined
// value), with the rewriter's fingerprint, kept as it came.
// BenchmarkPrepareSeenText prepares records of one text, as a prepared
// statement's executions give: every record after the first finds its
// text in the cache.
func BenchmarkPrepareSeenText(b *testing.B) {
	var parses atomic.Uint64
	c := newTextCache(&parses)
	o := &Options{}
	b.ReportAllocs()
	for b.Loop() {
		r := Record{Event: EventStatement, SQL: seenSQL, Rewritten: seenRewritten, Fingerprint: "feedc0de"}
		c.prepare(&r, o)
	}
}

// seenSQL and seenRewritten are pgbench -S's statement and its rewrite
// under a row rule, as pgveil's audit records carry them.
var seenSQL, seenRewritten = "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
	"SELECT abalance FROM (SELECT aid, bid, abalance, filler FROM public.pgbench_accounts WHERE bid <= 5 AND aid = $1) pgbench_accounts WHERE aid = $1"

func BenchmarkPrepareNewTexts(b *testing.B) {
	var parses atomic.Uint64
	c := newTextCache(&parses)
	o := &Options{}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := Record{Event: EventStatement, SQL: "SELECT abalance FROM pgbench_accounts WHERE aid = " + strconv.Itoa(i), Fingerprint: "feedc0de"}
		c.prepare(&r, o)
		i++
	}
}
