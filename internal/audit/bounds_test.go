package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// longRefused is a statement of 16 KiB, longer than the writer's cache
// kept before, as a client may repeat one the rewriter refuses from its
// cache.
var longRefused = "SELECT " + strings.TrimSuffix(strings.Repeat("1,", 8000), ",") + " FROM employees"

// readEntries parses the lines of file.
func readEntries(t *testing.T, file string) []*Entry {
	t.Helper()
	var out []*Entry
	for _, line := range lines(t, file) {
		e, err := ParseLine([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// TestRepeatedTextParsedOnce: the writer parses a long text once,
// however often records bring it, and not at all when the rewriter gave
// its fingerprint (the red team's 50 KiB refused statement cost the
// writer a parse per record: 40 records/s).
func TestRepeatedTextParsedOnce(t *testing.T) {
	for _, tc := range []struct {
		name        string
		opts        Options
		fingerprint string
		sql         string
		parses      uint64
	}{
		{name: "fingerprinted once", sql: longRefused, parses: 1},
		// The third parse fingerprints the redacted text (redactedFingerprint).
		{name: "fingerprinted and normalised once", opts: Options{RedactLiterals: true}, sql: longRefused, parses: 3},
		{name: "the rewriter's fingerprint spares the parse", fingerprint: "feedc0de", sql: longRefused, parses: 0},
		{name: "a secret word's check parses once", sql: longRefused + " /* password */", parses: 2},
		{name: "too deep: never parsed", sql: "SELECT " + strings.Repeat("(", 2000) + "1" + strings.Repeat(")", 2000), parses: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.File = filepath.Join(t.TempDir(), "audit.log")
			tc.opts.Key = testKey
			l, err := Open(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			for range 200 {
				l.Write(&Record{Event: EventStatement, Decision: DecisionDenied, SQL: tc.sql, Fingerprint: tc.fingerprint})
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if s := l.Stats(); s.Parses != tc.parses || s.Written != 200 {
				t.Errorf("stats %+v, want %d parses", s, tc.parses)
			}
			es := readEntries(t, tc.opts.File)
			if es[0].Fingerprint != es[199].Fingerprint || (tc.parses > 0) != (es[0].Fingerprint != "") && tc.fingerprint == "" {
				t.Errorf("fingerprints %q, %q", es[0].Fingerprint, es[199].Fingerprint)
			}
			if rep := verify(t, testKey, []string{tc.opts.File}); !rep.OK || rep.Records != 200 {
				t.Errorf("%+v", rep)
			}
		})
	}
}

// TestLongTextsCapped: a record keeps at most MaxText bytes of each
// text, then a marker with the length and (unredacted) the SHA-256 of
// the whole; redaction still holds for what is kept.
func TestLongTextsCapped(t *testing.T) {
	big := "SELECT '" + strings.Repeat("x", 5<<20) + "' FROM employees"
	bigSum := sha256.Sum256([]byte(big))
	secretTail := "SELECT 'MyNewS3cret!' AS a" + strings.Repeat(" ", 100<<10) + "/* password */"
	for _, tc := range []struct {
		name  string
		opts  Options
		rec   *Record
		check func(t *testing.T, e *Entry)
	}{
		{
			name: "a long text keeps its first 64 KiB, its length and SHA-256",
			rec:  &Record{Event: EventStatement, SQL: big, Fingerprint: "f00"},
			check: func(t *testing.T, e *Entry) {
				want := big[:DefaultMaxText] + "…<statement truncated: the first 65536 of " + strconv.Itoa(len(big)) + " bytes kept, sha256 " + hex.EncodeToString(bigSum[:]) + ">"
				if e.SQL != want || e.Fingerprint != "f00" {
					t.Errorf("%.100q … %q", e.SQL, e.SQL[max(0, len(e.SQL)-200):])
				}
			},
		},
		{
			name: "max_text sets the cut",
			opts: Options{MaxText: 4 << 10},
			rec:  &Record{Event: EventStatement, SQL: big},
			check: func(t *testing.T, e *Entry) {
				if !strings.HasPrefix(e.SQL, big[:4<<10]+"…<statement truncated: the first 4096 of ") || e.Fingerprint != "" {
					t.Errorf("%.100q", e.SQL)
				}
			},
		},
		{
			name: "redacted, the long text keeps no literal and gives no hash",
			opts: Options{RedactLiterals: true},
			rec:  &Record{Event: EventStatement, SQL: big},
			check: func(t *testing.T, e *Entry) {
				if e.SQL != "SELECT $1…<statement truncated: the first "+strconv.Itoa(len(big)-len(" FROM employees"))+" of "+strconv.Itoa(len(big))+" bytes kept>" {
					t.Errorf("%.200q", e.SQL)
				}
			},
		},
		{
			name: "a secret word past the cut still redacts the head",
			rec:  &Record{Event: EventStatement, SQL: secretTail},
			check: func(t *testing.T, e *Entry) {
				if strings.Contains(e.SQL, "MyNewS3cret") || strings.Contains(e.SQL, "sha256") || !strings.HasPrefix(e.SQL, "SELECT $1 AS a") {
					t.Errorf("%.200q", e.SQL)
				}
			},
		},
		{
			name: "a long rewritten SQL is cut too",
			rec:  &Record{Event: EventStatement, SQL: "SELECT 1", Fingerprint: "f00", Rewritten: big},
			check: func(t *testing.T, e *Entry) {
				if !strings.HasPrefix(e.Rewritten, big[:DefaultMaxText]+"…<statement truncated: the first 65536 of ") ||
					!strings.HasSuffix(e.Rewritten, hex.EncodeToString(bigSum[:])+">") {
					t.Errorf("%.100q", e.Rewritten)
				}
			},
		},
		{
			name: "hashed, a long rewritten SQL keeps the whole's SHA-256",
			opts: Options{RewrittenSQL: RewrittenHash},
			rec:  &Record{Event: EventStatement, SQL: "SELECT 1", Fingerprint: "f00", Rewritten: big},
			check: func(t *testing.T, e *Entry) {
				if e.Rewritten != "" || e.RewrittenSHA256 != hex.EncodeToString(bigSum[:]) {
					t.Errorf("%.100q %s", e.Rewritten, e.RewrittenSHA256)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.File = filepath.Join(t.TempDir(), "audit.log")
			tc.opts.Key = testKey
			l, err := Open(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			l.Write(tc.rec)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if s := l.Stats(); s.Parses != 0 {
				t.Errorf("%d parses", s.Parses)
			}
			fi, err := os.Stat(tc.opts.File)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() > int64(2*max(tc.opts.MaxText, DefaultMaxText)+1024) {
				t.Errorf("a line of %d bytes", fi.Size())
			}
			tc.check(t, readEntries(t, tc.opts.File)[0])
			if rep := verify(t, testKey, []string{tc.opts.File}); !rep.OK || rep.Records != 1 {
				t.Errorf("%+v", rep)
			}
		})
	}
}

// TestQueueBytes: what the queued records hold stays within QueueBytes
// (the red team's 5 MiB records reached 1.3 GiB of heap in 14 s): in drop
// mode the records past it are dropped and counted, in block mode
// Write waits for room.
func TestQueueBytes(t *testing.T) {
	for _, mode := range []string{OnFullDrop, OnFullBlock} {
		t.Run(mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			gate := make(chan struct{})
			var once sync.Once
			const budget = MinQueueBytes
			l, err := open(Options{File: path, Key: testKey, OnFull: mode, QueueBytes: budget},
				func(f *os.File, p []byte) (int, error) {
					<-gate // the disk is stuck until the test opens the gate
					return f.Write(p)
				})
			if err != nil {
				t.Fatal(err)
			}
			big := "SELECT '" + strings.Repeat("x", 5<<20) + "' FROM employees"
			const n = 100
			done := make(chan struct{})
			go func() {
				defer close(done)
				for range n {
					l.Write(&Record{Event: EventStatement, Decision: DecisionDenied, SQL: big})
				}
			}()
			// NOTE: no clock: in drop mode every Write returns with the
			// disk stuck, so the test waits for them all; in block mode
			// it waits until the queue holds all it may (the next record
			// cannot fit), so that the next Write must block while the
			// gate stays shut. The budget holds at every look.
			probe := &Record{Event: EventStatement, Decision: DecisionDenied, SQL: big}
			capTexts(probe, &l.o)
			size := recordSize(probe)
			var peak int64
			checkBudget := func() Stats {
				s := l.Stats()
				peak = max(peak, s.QueuedBytes)
				if s.QueuedBytes > budget {
					t.Fatalf("queued %d bytes, budget %d", s.QueuedBytes, budget)
				}
				return s
			}
			var s Stats
		wait:
			for {
				s = checkBudget()
				select {
				case <-done:
					s = checkBudget()
					break wait
				default:
				}
				if mode == OnFullBlock && s.QueuedBytes+size > budget {
					break
				}
				runtime.Gosched()
			}
			switch mode {
			case OnFullDrop:
				if s.Dropped == 0 || peak == 0 {
					t.Errorf("stats %+v, peak %d", s, peak)
				}
			case OnFullBlock:
				select {
				case <-done:
					t.Errorf("every Write returned with the disk stuck: stats %+v", s)
				default:
				}
			}
			once.Do(func() { close(gate) })
			<-done
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			s = l.Stats()
			if s.QueuedBytes != 0 || s.Written+s.Dropped < n {
				t.Errorf("stats %+v", s)
			}
			if mode == OnFullBlock && s.Dropped != 0 {
				t.Errorf("block mode dropped: %+v", s)
			}
			if rep := verify(t, testKey, []string{path}); !rep.OK {
				t.Errorf("%+v", rep)
			}
		})
	}
}

// TestTextCacheBounded: the cache keeps at most two generations of
// cacheGeneration texts, each generation at most about
// cacheGenerationBytes of normalised texts, whatever the texts' number
// and length.
func TestTextCacheBounded(t *testing.T) {
	var parses atomic.Uint64
	c := newTextCache(&parses)
	o := &Options{RedactLiterals: true}
	// Normalised, each text keeps its 20 KiB column alias (not a
	// comment: redaction drops those): the bytes fill a generation
	// before its count does.
	pad := ` AS "` + strings.Repeat("x", 20<<10) + `"`
	for i := range 3 * cacheGeneration {
		sql := "SELECT " + strconv.Itoa(i) + pad
		c.prepare(&Record{Event: EventStatement, SQL: sql}, o)
		if len(c.cur) > cacheGeneration || len(c.old) > cacheGeneration || c.curBytes > cacheGenerationBytes+len(sql) {
			t.Fatalf("after %d texts: %d and %d entries, %d bytes", i+1, len(c.cur), len(c.old), c.curBytes)
		}
	}
	if len(c.cur) >= cacheGeneration {
		t.Errorf("%d entries: the bytes did not bound the generation", len(c.cur))
	}
	before := parses.Load()
	c.prepare(&Record{Event: EventStatement, SQL: "SELECT " + strconv.Itoa(3*cacheGeneration-1) + pad}, o)
	if parses.Load() != before {
		t.Errorf("the last text was parsed again")
	}
}

// TestCapTextBoundaries: the cut does not split a character, nor walk
// back through bytes that are not UTF-8.
func TestCapTextBoundaries(t *testing.T) {
	var scratch []byte
	if got := capText(strings.Repeat("é", 3000), 4095, false, &scratch); !strings.HasPrefix(got, strings.Repeat("é", 2047)+"…<statement truncated: the first 4094 of 6000 bytes kept, sha256 ") {
		t.Errorf("%.100q", got[4000:])
	}
	if got := capText(strings.Repeat("\x80", 8000), 4096, false, &scratch); !strings.Contains(got, "the first 4093 of 8000 bytes kept") {
		t.Errorf("%q", got[4090:])
	}
}

// TestFingerprintedTextNotScanned: a record that comes with the
// rewriter's fingerprint, and that the writer keeps as it came (no
// redaction, no word of a secret), costs the writer no scan of its text
// by pg_query's scanner (parseable), no hash and no cache entry; a
// record without one is scanned once before its fingerprint is made.
func TestFingerprintedTextNotScanned(t *testing.T) {
	var parses atomic.Uint64
	c := newTextCache(&parses)
	const sql = "SELECT abalance FROM pgbench_accounts WHERE aid = 42"
	c.prepare(&Record{Event: EventStatement, SQL: sql, Fingerprint: "feedc0de"}, &Options{})
	if p := c.cur[c.key(sql)]; p != nil || parses.Load() != 0 {
		t.Errorf("a fingerprinted text kept as it came: entry %+v, %d parses", p, parses.Load())
	}
	const other = "SELECT abalance FROM pgbench_accounts WHERE aid = 43"
	c.prepare(&Record{Event: EventStatement, SQL: other}, &Options{})
	if p := c.cur[c.key(other)]; p == nil || !p.skipDone || p.fingerprint == "" || parses.Load() != 1 {
		t.Errorf("a text without a fingerprint: entry %+v, %d parses", p, parses.Load())
	}
	const deep = "SELECT " + "((((((((((" + "1" + "))))))))))"
	c.prepare(&Record{Event: EventStatement, SQL: deep, Fingerprint: "feedc0de"}, &Options{RedactLiterals: true})
	if p := c.cur[c.key(deep)]; p == nil || !p.skipDone {
		t.Errorf("a fingerprinted text to redact is checked before pg_query normalises it: entry %+v", p)
	}
	const named = "SELECT password FROM accounts WHERE aid = 42"
	c.prepare(&Record{Event: EventStatement, SQL: named, Fingerprint: "feedc0de"}, &Options{})
	if p := c.cur[c.key(named)]; p == nil || !p.maySecret || !p.secretDone {
		t.Errorf("a fingerprinted text naming a secret's word is checked for a secret: entry %+v", p)
	}
}

// TestMayHoldSecret: a secret word in any case, anywhere, is found; a
// word cut short by the text's end, or another word, is not.
func TestMayHoldSecret(t *testing.T) {
	for text, want := range map[string]bool{
		"ALTER ROLE a PASSWORD 'x'":                           true,
		"alter role a PassWord 'x'":                           true,
		"CREATE USER MAPPING FOR a SERVER s":                  true,
		"select dblink_exec('x')":                             true,
		"SELECT 1 -- conNECT":                                 true,
		"SELECT passwor":                                      false,
		"SELECT serve, mappin, dblin, conne":                  false,
		"SELECT abalance FROM pgbench_accounts WHERE aid = 1": false,
		"":         false,
		"p":        false,
		"Ｐassword": false,
	} {
		if got := mayHoldSecret(text); got != want {
			t.Errorf("mayHoldSecret(%q) = %v, want %v", text, got, want)
		}
		ref := false
		for i := range len(text) {
			for _, w := range secretWords {
				if len(text)-i >= len(w) && strings.EqualFold(text[i:i+len(w)], w) {
					ref = true
				}
			}
		}
		if got := mayHoldSecret(text); got != ref {
			t.Errorf("mayHoldSecret(%q) = %v, strings.EqualFold finds %v", text, got, ref)
		}
	}
}
