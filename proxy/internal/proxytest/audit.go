package proxytest

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/proxy"
)

// AuditKey keys the test audit chains.
var AuditKey = []byte("audit-test-key")

// StartAuditedDemo runs the demo proxy with an audit log in a temporary
// directory and returns the log and its path.
func StartAuditedDemo(t *testing.T, o audit.Options) (*Proxy, *audit.Log, string) {
	t.Helper()
	if o.File == "" {
		o.File = filepath.Join(t.TempDir(), "audit.log")
	}
	o.Key = AuditKey
	alog, err := audit.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alog.Close() })
	p := StartDemo(t, func(po *proxy.Options) { po.Audit = alog })
	return p, alog, o.File
}

// WaitSessions waits until the proxy relays n sessions.
func WaitSessions(t *testing.T, p *Proxy, n int) {
	t.Helper()
	if !Poll(5*time.Second, func() bool { return p.Server.SessionCount() == n }) {
		t.Fatalf("%d sessions, want %d", p.Server.SessionCount(), n)
	}
}

// ReadAudit closes alog and returns the entries of the files at path
// (rotated ones included), after checking the chain.
func ReadAudit(t *testing.T, alog *audit.Log, path string) []*audit.Entry {
	t.Helper()
	if err := alog.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(path + "*")
	rep, err := audit.Verify(AuditKey, files)
	if err != nil || !rep.OK {
		t.Fatalf("audit verify: %v %+v", err, rep)
	}
	var out []*audit.Entry
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			e, err := audit.ParseLine(sc.Bytes())
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out = append(out, e)
		}
		fh.Close()
	}
	slices.SortFunc(out, func(a, b *audit.Entry) int { return int(a.Seq) - int(b.Seq) })
	return out
}
