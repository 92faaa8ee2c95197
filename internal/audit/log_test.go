package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestLineFormat(t *testing.T) {
	t.Run("fields come in a fixed order and the mac covers the line up to it", func(t *testing.T) {
		var out bytes.Buffer
		l, err := Open(Options{File: "-", Stdout: &out, Key: testKey})
		if err != nil {
			t.Fatal(err)
		}
		l.Write(&Record{
			Time:          time.Date(2026, 11, 30, 3, 15, 0, 5, time.FixedZone("CET", 3600)),
			Event:         EventStatement,
			User:          "marie",
			Roles:         []string{"a", "b"},
			SQL:           "SELECT 1",
			Decision:      DecisionDenied,
			Reason:        "no_ddl",
			SQLState:      "42501",
			Message:       "line\nbreak \"quoted\" <tag> \x01 \xff",
			Duration:      1500 * time.Microsecond,
			Rows:          -1,
			UpstreamError: "",
		})
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		e, err := ParseLine(out.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if len(e.Chain) != 16 {
			t.Fatalf("chain %q, want 16 hex digits", e.Chain)
		}
		signed := `{"seq":1,"time":"2026-11-30T02:15:00.000000005Z","chain":"` + e.Chain + `","event":"statement","user":"marie","roles":["a","b"],` +
			`"sql":"SELECT 1","fingerprint":"50fde20626009aba","decision":"denied","reason":"no_ddl","sqlstate":"42501",` +
			`"message":"line\nbreak \"quoted\" <tag> \u0001 \ufffd","rows":-1,"duration_ms":1.5,"prev":"` + zeroMAC + `"`
		mac := hmac.New(sha256.New, testKey)
		mac.Write([]byte(signed))
		want := signed + `,"mac":"` + hex.EncodeToString(mac.Sum(nil)) + "\"}\n"
		if out.String() != want {
			t.Fatalf("line\n%s\nwant\n%s", out.String(), want)
		}
	})
	t.Run("acting_for follows user and parses back; without it a line is as before", func(t *testing.T) {
		var out bytes.Buffer
		l, err := Open(Options{File: "-", Stdout: &out, Key: testKey})
		if err != nil {
			t.Fatal(err)
		}
		l.Write(&Record{Time: time.Unix(0, 0), Event: EventStatement, User: "metabase", ActingFor: "marie", SQL: "SELECT 1"})
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), `"user":"metabase","acting_for":"marie","sql"`) {
			t.Fatalf("line %s", out.String())
		}
		e, err := ParseLine(out.Bytes())
		if err != nil || e.User != "metabase" || e.ActingFor != "marie" {
			t.Fatalf("parsed %+v, %v", e, err)
		}
	})
	t.Run("acting_roles follow roles and parse back", func(t *testing.T) {
		var out bytes.Buffer
		l, err := Open(Options{File: "-", Stdout: &out, Key: testKey})
		if err != nil {
			t.Fatal(err)
		}
		l.Write(&Record{Time: time.Unix(0, 0), Event: EventStatement, User: "superset", ActingFor: "anna",
			Roles: []string{"bi_service"}, ActingRoles: []string{"analyst", "pii"}, SQL: "SELECT 1"})
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), `"roles":["bi_service"],"acting_roles":["analyst","pii"],"sql"`) {
			t.Fatalf("line %s", out.String())
		}
		e, err := ParseLine(out.Bytes())
		if err != nil || !slices.Equal(e.ActingRoles, []string{"analyst", "pii"}) || !slices.Equal(e.Roles, []string{"bi_service"}) {
			t.Fatalf("parsed %+v, %v", e, err)
		}
	})
	t.Run("durations are exact milliseconds", func(t *testing.T) {
		for d, want := range map[time.Duration]string{
			time.Nanosecond: "0.000001", 2 * time.Millisecond: "2", 1234567 * time.Nanosecond: "1.234567",
			-1500 * time.Microsecond: "-1.5",
		} {
			got := string(appendMilliseconds(nil, d))
			back, err := parseMilliseconds(got)
			if got != want || err != nil || back != d {
				t.Errorf("%d ns: %s (want %s), back %d, %v", int64(d), got, want, int64(back), err)
			}
		}
	})
}

func TestOptions(t *testing.T) {
	rec := func() *Record {
		return &Record{Event: EventStatement, SQL: "SELECT * FROM t WHERE a = 'secret' AND b = 42",
			Rewritten: "SELECT * FROM (SELECT a, b FROM t WHERE c = 'France') t WHERE a = 'secret'"}
	}
	tests := []struct {
		name   string
		opts   Options
		record *Record
		check  func(t *testing.T, e *Entry)
	}{
		{
			name: "by default both texts are kept in full, with the fingerprint",
			check: func(t *testing.T, e *Entry) {
				if e.SQL != rec().SQL || e.Rewritten != rec().Rewritten || e.RewrittenSHA256 != "" || e.Fingerprint == "" {
					t.Errorf("%+v", e)
				}
			},
		},
		{
			name: "redact_literals replaces the literals of both texts",
			opts: Options{RedactLiterals: true},
			check: func(t *testing.T, e *Entry) {
				if e.SQL != "SELECT * FROM t WHERE a = $1 AND b = $2" || strings.Contains(e.Rewritten, "'") {
					t.Errorf("%+v", e)
				}
			},
		},
		{
			name:   "redact_literals replaces an unparseable text whole",
			opts:   Options{RedactLiterals: true},
			record: &Record{Event: EventStatement, SQL: "SELEC 'secret'"},
			check: func(t *testing.T, e *Entry) {
				if e.SQL != "<statement not parsed: 14 bytes redacted>" || e.Fingerprint != "" {
					t.Errorf("%+v", e)
				}
			},
		},
		{
			// Parsing them would take the writer seconds and gigabytes,
			// or overflow the parser's stack.
			name:   "a text too deep to parse is kept unparsed, its literals redacted by the rewriter's scanner",
			opts:   Options{RedactLiterals: true, MaxText: MaxMaxText},
			record: &Record{Event: EventStatement, SQL: "SELECT " + strings.Repeat("(", 100000) + "'secret'" + strings.Repeat(")", 100000)},
			check: func(t *testing.T, e *Entry) {
				if e.SQL != "SELECT "+strings.Repeat("(", 100000)+"$1"+strings.Repeat(")", 100000) || e.Fingerprint != "" {
					t.Errorf("%.200v", e)
				}
			},
		},
		{
			name:   "a text too long to parse is cut to its first 256 KiB, redacted, and marked as cut",
			opts:   Options{RedactLiterals: true, MaxText: MaxMaxText},
			record: &Record{Event: EventStatement, SQL: "SELECT 'secret'" + strings.Repeat(", 1", 100000)},
			check: func(t *testing.T, e *Entry) {
				// Each ", 1" becomes ", $n": the first 102,479 bytes
				// make 256 KiB.
				if !strings.HasPrefix(e.SQL, "SELECT $1, $2, $3") || strings.Contains(e.SQL, "'") || strings.Contains(e.SQL, ", 1,") ||
					!strings.HasSuffix(e.SQL, ", $34155, …<statement truncated: the first 102479 of 300015 bytes kept>") || e.Fingerprint != "" {
					t.Errorf("%.200v … %q", e, e.SQL[max(0, len(e.SQL)-100):])
				}
				if len(e.SQL) > 256<<10+100 {
					t.Errorf("%d bytes kept", len(e.SQL))
				}
			},
		},
		{
			name:   "a literal the cut would go through is replaced whole",
			opts:   Options{RedactLiterals: true},
			record: &Record{Event: EventStatement, SQL: "SELECT '" + strings.Repeat("secret ", 50000) + "', 1 /*" + strings.Repeat("x", 300<<10) + "*/"},
			check: func(t *testing.T, e *Entry) {
				if e.SQL != "SELECT $1…<statement truncated: the first 350009 of 657217 bytes kept>" {
					t.Errorf("%.200q", e.SQL)
				}
			},
		},
		{
			name:   "a text too long to parse that the scanner cannot read is withheld, and not said to be unparsed",
			opts:   Options{RedactLiterals: true},
			record: &Record{Event: EventStatement, SQL: "SELECT E'sec\\'ret'" + strings.Repeat(", 1", 100000)},
			check: func(t *testing.T, e *Entry) {
				if e.SQL != "<statement too long or too deep to redact: 300018 bytes withheld>" {
					t.Errorf("%.200q", e.SQL)
				}
			},
		},
		{
			name:   "without redaction, a long text naming a secret word (in a comment) keeps its first 256 KiB, redacted, its comments too",
			record: &Record{Event: EventStatement, SQL: "SELECT id FROM t WHERE a = 'x' /* server */" + strings.Repeat(" ", 300<<10)},
			check: func(t *testing.T, e *Entry) {
				if !strings.HasPrefix(e.SQL, "SELECT id FROM t WHERE a = $1 /*…*/") || !strings.HasSuffix(e.SQL, "bytes kept>") {
					t.Errorf("%.200q", e.SQL)
				}
			},
		},
		{
			name:   "so does a long statement holding a password",
			record: &Record{Event: EventStatement, SQL: "ALTER ROLE marie PASSWORD 'MyNewS3cret!' /*" + strings.Repeat("x", 300<<10) + "*/"},
			check: func(t *testing.T, e *Entry) {
				if strings.Contains(e.SQL, "MyNewS3cret") || e.SQL != "ALTER ROLE marie PASSWORD $1 /*…*/" {
					t.Errorf("%.200q", e.SQL)
				}
			},
		},
		{
			name:   "a long statement holding a password in a dollar quote is withheld",
			record: &Record{Event: EventStatement, SQL: "ALTER ROLE marie PASSWORD $$MyNewS3cret!$$ /*" + strings.Repeat("x", 300<<10) + "*/"},
			check: func(t *testing.T, e *Entry) {
				if strings.Contains(e.SQL, "MyNewS3cret") || !strings.HasSuffix(e.SQL, "bytes withheld>") {
					t.Errorf("%.200q", e.SQL)
				}
			},
		},
		{
			name:   "without redaction it is kept in full, with no fingerprint",
			record: &Record{Event: EventStatement, SQL: "SELECT 1" + strings.Repeat("+1", 20000)},
			check: func(t *testing.T, e *Entry) {
				if len(e.SQL) != 40008 || e.Fingerprint != "" {
					t.Errorf("%.200v", e)
				}
			},
		},
		{
			name:   "a password in a role statement is redacted without redact_literals",
			record: &Record{Event: EventStatement, SQL: "ALTER ROLE marie PASSWORD 'MyNewS3cret!'"},
			check: func(t *testing.T, e *Entry) {
				if strings.Contains(e.SQL, "MyNewS3cret") || !strings.HasPrefix(e.SQL, "ALTER ROLE marie PASSWORD $1") {
					t.Errorf("%+v", e)
				}
			},
		},
		{
			name:   "so are a user mapping's options",
			record: &Record{Event: EventStatement, SQL: "CREATE USER MAPPING FOR marie SERVER s OPTIONS (user 'u', password 'Hunter2')"},
			check: func(t *testing.T, e *Entry) {
				if strings.Contains(e.SQL, "Hunter2") {
					t.Errorf("%+v", e)
				}
			},
		},
		{
			name:   "and a dblink connection string",
			record: &Record{Event: EventStatement, SQL: "SELECT * FROM public.dblink('host=db password=TopSecret42', 'SELECT 1') AS t(x int)"},
			check: func(t *testing.T, e *Entry) {
				if strings.Contains(e.SQL, "TopSecret42") {
					t.Errorf("%+v", e)
				}
			},
		},
		{
			name:   "a statement that only mentions a password keeps its literals",
			record: &Record{Event: EventStatement, SQL: "SELECT count(*) FROM notes WHERE body LIKE '%password%'"},
			check: func(t *testing.T, e *Entry) {
				if e.SQL != "SELECT count(*) FROM notes WHERE body LIKE '%password%'" {
					t.Errorf("%+v", e)
				}
			},
		},
		{
			name: "rewritten_sql hash keeps the SHA-256 only",
			opts: Options{RewrittenSQL: RewrittenHash},
			check: func(t *testing.T, e *Entry) {
				sum := sha256.Sum256([]byte(rec().Rewritten))
				if e.Rewritten != "" || e.RewrittenSHA256 != hex.EncodeToString(sum[:]) {
					t.Errorf("%+v", e)
				}
			},
		},
		{
			name: "rewritten_sql hash under redact_literals hashes the redacted text, which confirms no literal",
			opts: Options{RewrittenSQL: RewrittenHash, RedactLiterals: true},
			check: func(t *testing.T, e *Entry) {
				raw := sha256.Sum256([]byte(rec().Rewritten))
				if e.Rewritten != "" || e.RewrittenSHA256 == "" || e.RewrittenSHA256 == hex.EncodeToString(raw[:]) {
					t.Errorf("%+v", e)
				}
				other := rec()
				other.Rewritten = strings.ReplaceAll(other.Rewritten, "secret", "guess")
				if got := hashOf(t, Options{RewrittenSQL: RewrittenHash, RedactLiterals: true}, other); got != e.RewrittenSHA256 {
					t.Errorf("texts that differ in a literal only hash apart: %s and %s", got, e.RewrittenSHA256)
				}
			},
		},
		{
			name:   "rewritten_sql hash under redact_literals hashes a long text's redacted form too",
			opts:   Options{RewrittenSQL: RewrittenHash, RedactLiterals: true, MaxText: 1024},
			record: longRec("secret"),
			check: func(t *testing.T, e *Entry) {
				raw := sha256.Sum256([]byte(longRec("secret").Rewritten))
				if e.Rewritten != "" || e.RewrittenSHA256 == hex.EncodeToString(raw[:]) {
					t.Errorf("%+v", e)
				}
				if got := hashOf(t, Options{RewrittenSQL: RewrittenHash, RedactLiterals: true, MaxText: 1024}, longRec("guess")); got != e.RewrittenSHA256 {
					t.Errorf("texts that differ in a literal only hash apart: %s and %s", got, e.RewrittenSHA256)
				}
			},
		},
		{
			name: "rewritten_sql none keeps nothing",
			opts: Options{RewrittenSQL: RewrittenNone},
			check: func(t *testing.T, e *Entry) {
				if e.Rewritten != "" || e.RewrittenSHA256 != "" {
					t.Errorf("%+v", e)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			tt.opts.File, tt.opts.Stdout = "-", &out
			l, err := Open(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			r := tt.record
			if r == nil {
				r = rec()
			}
			l.Write(r)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			e, err := ParseLine(out.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, e)
		})
	}
	t.Run("invalid options are refused", func(t *testing.T) {
		for _, o := range []Options{{}, {File: "-", OnFull: "wait"}, {File: "-", RewrittenSQL: "short"}, {File: "-", MaxSize: -1}, {File: "-", QueueSize: -1}} {
			if l, err := Open(o); err == nil {
				l.Close()
				t.Errorf("%+v accepted", o)
			}
		}
	})
}

func TestLog(t *testing.T) {
	t.Run("a full queue in block mode loses nothing with 32 concurrent writers", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		l, err := Open(Options{File: path, Key: testKey, QueueSize: 4, MaxSize: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := range 32 {
			wg.Go(func() {
				for i := range 50 {
					l.Write(statement(g*50 + i))
				}
			})
		}
		wg.Wait()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		files := chainFiles(t, path)
		if n := countRecords(t, files); n != 32*50 {
			t.Fatalf("%d records", n)
		}
		if rep := verify(t, testKey, files); !rep.OK || rep.Records != 32*50 {
			t.Fatalf("%+v", rep)
		}
		if s := l.Stats(); s.Written != 32*50 || s.Dropped != 0 || s.Queued != 0 {
			t.Fatalf("%+v", s)
		}
	})
	t.Run("drop mode counts the drops and writes a dropped record", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		entered, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		l, err := open(Options{File: path, Key: testKey, QueueSize: 2, OnFull: OnFullDrop},
			func(f *os.File, p []byte) (int, error) {
				once.Do(func() { close(entered); <-release })
				return f.Write(p)
			})
		if err != nil {
			t.Fatal(err)
		}
		l.Write(statement(0))
		<-entered // the writer holds record 0 and waits: the queue is empty
		for i := 1; i <= 5; i++ {
			l.Write(statement(i)) // 1 and 2 fill the queue, 3 to 5 are dropped
		}
		if s := l.Stats(); s.Dropped != 3 || s.Queued != 2 {
			t.Errorf("stats %+v", s)
		}
		close(release)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		ls := lines(t, path)
		if len(ls) != 4 {
			t.Fatalf("%d lines:\n%s", len(ls), strings.Join(ls, "\n"))
		}
		e, err := ParseLine([]byte(ls[2]))
		if err != nil || e.Event != EventDropped || e.Count != 3 {
			t.Fatalf("third line %s (%v)", ls[2], err)
		}
		if rep := verify(t, testKey, []string{path}); !rep.OK {
			t.Fatal(rep.Problem)
		}
		if s := l.Stats(); s.Written != 4 || s.Dropped != 3 {
			t.Errorf("stats %+v", s)
		}
	})
	t.Run("rotation keeps every file within the size, mode 0600", func(t *testing.T) {
		files := writeChain(t, 40, Options{Key: testKey, MaxSize: chainMaxSize})
		for _, f := range files {
			st, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() > chainMaxSize || st.Mode().Perm() != 0o600 {
				t.Errorf("%s: %d bytes, mode %s", f, st.Size(), st.Mode())
			}
		}
	})
	t.Run("a line larger than max_size gets a file of its own", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		l, err := Open(Options{File: path, MaxSize: 100})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			l.Write(statement(i))
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		files := chainFiles(t, path)
		if len(files) != 3 || !verify(t, nil, files).OK {
			t.Fatalf("%d files", len(files))
		}
	})
	t.Run("Close is idempotent and Write after Close does nothing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		l, err := Open(Options{File: path})
		if err != nil {
			t.Fatal(err)
		}
		l.Write(statement(0))
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l.Write(statement(1))
		if n := len(lines(t, path)); n != 1 {
			t.Fatalf("%d lines", n)
		}
		var nilLog *Log
		nilLog.Write(statement(2))
		if err := nilLog.Close(); err != nil || nilLog.Stats() != (Stats{}) {
			t.Fatal("nil Log")
		}
	})
}

func TestFollowsAMovedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := Open(Options{File: path, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	l.Write(statement(0))
	deadline := time.Now().Add(5 * time.Second)
	for l.Stats().Written < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// As a log rotation tool without copytruncate does.
	moved := filepath.Join(dir, "audit.log.1")
	if err := os.Rename(path, moved); err != nil {
		t.Fatal(err)
	}
	l.Write(statement(1))
	l.Write(statement(2))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(lines(t, moved)); n != 1 {
		t.Errorf("the moved file holds %d records, want 1", n)
	}
	if n := len(lines(t, path)); n != 2 {
		t.Fatalf("the new file at the path holds %d records, want 2", n)
	}
	if rep := verify(t, testKey, []string{moved, path}); !rep.OK || rep.Records != 3 {
		t.Fatalf("%+v", rep)
	}
}

func TestReopen(t *testing.T) {
	t.Run("reopening resumes the chain", func(t *testing.T) {
		files := writeChain(t, 10, Options{Key: testKey, MaxSize: chainMaxSize})
		path := files[len(files)-1]
		files = writeChain(t, 10, Options{File: path, Key: testKey, MaxSize: chainMaxSize})
		rep := verify(t, testKey, files)
		if !rep.OK || rep.Records != 20 || rep.LastSeq != 20 {
			t.Fatalf("%+v", rep)
		}
	})
	t.Run("without a current file the chain goes on from the newest rotated one", func(t *testing.T) {
		files := writeChain(t, 10, Options{Key: testKey, MaxSize: chainMaxSize})
		path := files[len(files)-1]
		if err := os.Rename(path, path+"."+time.Now().UTC().Format(rotatedLayout)); err != nil {
			t.Fatal(err)
		}
		files = writeChain(t, 3, Options{File: path, Key: testKey, MaxSize: chainMaxSize})
		if rep := verify(t, testKey, files); !rep.OK || rep.Records != 13 {
			t.Fatalf("%+v", rep)
		}
	})
	t.Run("a partial last line is ended, warned about, and reported by verify", func(t *testing.T) {
		path := writeChain(t, 3, Options{Key: testKey})[0]
		appendTo(t, path, `{"seq":4,"time":"2026-`)
		core, logs := observer.New(zapcore.WarnLevel)
		writeChain(t, 2, Options{File: path, Key: testKey, Logger: zap.New(core)})
		if logs.FilterMessageSnippet("partial line").Len() != 1 {
			t.Errorf("logs %v", logs.All())
		}
		ls := lines(t, path)
		if e, err := ParseLine([]byte(ls[len(ls)-1])); err != nil || e.Seq != 5 {
			t.Fatalf("last line %s", ls[len(ls)-1])
		}
		if rep := verify(t, testKey, []string{path}); rep.OK || !strings.HasPrefix(rep.Problem, path+":4: unparseable line") {
			t.Fatalf("%+v", rep)
		}
	})
	t.Run("an unreadable last line starts a new chain", func(t *testing.T) {
		path := writeChain(t, 3, Options{Key: testKey})[0]
		appendTo(t, path, "garbage\n")
		core, logs := observer.New(zapcore.WarnLevel)
		writeChain(t, 1, Options{File: path, Key: testKey, Logger: zap.New(core)})
		if logs.FilterMessageSnippet("cannot be read").Len() != 1 {
			t.Errorf("logs %v", logs.All())
		}
		ls := lines(t, path)
		if e, err := ParseLine([]byte(ls[len(ls)-1])); err != nil || e.Seq != 1 || e.Prev != zeroMAC {
			t.Fatalf("last line %s", ls[len(ls)-1])
		}
	})
	t.Run("another key is warned about", func(t *testing.T) {
		path := writeChain(t, 1, Options{Key: testKey})[0]
		core, logs := observer.New(zapcore.WarnLevel)
		writeChain(t, 1, Options{File: path, Key: []byte("new key"), Logger: zap.New(core)})
		if logs.FilterMessageSnippet("key").Len() != 1 {
			t.Errorf("logs %v", logs.All())
		}
	})
}

func TestWriteErrors(t *testing.T) {
	t.Run("failed writes are retried without splitting or losing a line", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		core, logs := observer.New(zapcore.ErrorLevel)
		failures := 3
		l, err := open(Options{File: path, Key: testKey, Logger: zap.New(core), MaxSize: chainMaxSize},
			func(f *os.File, p []byte) (int, error) {
				if failures > 0 {
					failures--
					n, _ := f.Write(p[:len(p)/2])
					return n, syscall.ENOSPC
				}
				return f.Write(p)
			})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			l.Write(statement(i))
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if rep := verify(t, testKey, chainFiles(t, path)); !rep.OK || rep.Records != 20 {
			t.Fatalf("%+v", rep)
		}
		if logs.FilterMessageSnippet("writing the audit log").Len() != 3 {
			t.Errorf("logs %v", logs.All())
		}
	})
	t.Run("Close gives up on a disk that keeps failing and says what was lost", func(t *testing.T) {
		defer func(d time.Duration) { closeGiveUp = d }(closeGiveUp)
		closeGiveUp = 50 * time.Millisecond
		path := filepath.Join(t.TempDir(), "audit.log")
		l, err := open(Options{File: path}, func(*os.File, []byte) (int, error) { return 0, syscall.ENOSPC })
		if err != nil {
			t.Fatal(err)
		}
		l.Write(statement(0))
		l.Write(statement(1))
		err = l.Close()
		if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "records lost") {
			t.Fatalf("error %v", err)
		}
		if s := l.Stats(); s.Dropped != 2 || s.Written != 0 {
			t.Errorf("stats %+v", s)
		}
	})
}

// appendTo appends s to file.
func appendTo(t *testing.T, file, s string) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestSync(t *testing.T) {
	var syncs atomic.Int64
	defer func(f func(*os.File) error) { fsync = f }(fsync)
	fsync = func(f *os.File) error { syncs.Add(1); return f.Sync() }

	t.Run("a record written when the trail is quiet is synced at once", func(t *testing.T) {
		syncs.Store(0)
		path := filepath.Join(t.TempDir(), "audit.log")
		l, err := Open(Options{File: path, Key: testKey, SyncInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		l.Write(statement(1))
		deadline := time.Now().Add(5 * time.Second)
		for syncs.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if syncs.Load() != 1 || countRecords(t, []string{path}) != 1 {
			t.Fatalf("%d syncs, %d records in the file", syncs.Load(), countRecords(t, []string{path}))
		}
	})
	t.Run("a steady stream of records is synced at most every interval, and once more when it stops", func(t *testing.T) {
		syncs.Store(0)
		path := filepath.Join(t.TempDir(), "audit.log")
		l, err := Open(Options{File: path, Key: testKey, SyncInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		start, n := time.Now(), 0
		for time.Since(start) < 500*time.Millisecond {
			l.Write(statement(n))
			n++
			time.Sleep(50 * time.Microsecond)
		}
		during := syncs.Load()
		t.Logf("%d syncs for %d records", during, n)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		// NOTE: 500 ms of records at 100 ms apart, a linger and the
		// first record's sync: a handful, never one per batch.
		if during < 1 || during > 8 {
			t.Errorf("%d syncs for %d records over 500 ms, want 1 to 8", during, n)
		}
		if rep := verify(t, testKey, chainFiles(t, path)); !rep.OK || rep.Records != uint64(n) {
			t.Fatalf("%+v, want %d records", rep, n)
		}
	})
}

// longRec is a record whose rewritten SQL, longer than 1 KiB, compares a
// column with the literal lit.
func longRec(lit string) *Record {
	return &Record{Event: EventStatement, SQL: "SELECT 1",
		Rewritten: "SELECT * FROM (SELECT a, b FROM t WHERE c = 'France') t WHERE a = '" + lit + "'" + strings.Repeat(" AND b <> 7", 200)}
}

// hashOf writes r through a log with opts and returns the rewritten SQL's
// SHA-256 its entry keeps.
func hashOf(t *testing.T, opts Options, r *Record) string {
	t.Helper()
	var out bytes.Buffer
	opts.File, opts.Stdout = "-", &out
	l, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	l.Write(r)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	e, err := ParseLine(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return e.RewrittenSHA256
}
