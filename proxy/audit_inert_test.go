package proxy_test

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"unicode"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/proxy"
)

// TestAuditLinesInert: what a governed user sends (an application_name,
// a failed login, a statement's comment, a literal an error echoes)
// reaches the audit file's lines as escapes only, so that an operator
// who tails the trail sees text, and decodes to exactly what was sent.
func TestAuditLinesInert(t *testing.T) {
	const hostile = "\x1b[2J\u009b1;1H\u009d52;c;eA==\u009c\u202eylno\u2066\u200b\u3164"
	path := t.TempDir() + "/audit.log"
	alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alog.Close() })
	p := proxytest.StartDemo(t, func(po *proxy.Options) { po.Audit = alog })
	ctx := context.Background()

	// A failed login under a hostile name.
	if c, err := pgx.Connect(ctx, p.URL("mallory"+hostile, "wrong", nil)); err == nil {
		c.Close(ctx)
		t.Fatal("a login that is not configured connected")
	}
	c, err := pgx.Connect(ctx, p.URL("marie", "demo-marie", url.Values{"application_name": {"app" + hostile}}))
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		"SELECT 1 /* " + hostile + " */",
		"SELECT '" + hostile + "'::int",
		"DROP TABLE responses /* " + hostile + " */",
	} {
		_, _ = c.PgConn().Exec(ctx, sql).ReadAll()
	}
	c.Close(ctx)
	proxytest.WaitSessions(t, p, 0)
	entries := proxytest.ReadAudit(t, alog, path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for n, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		for _, r := range line {
			if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point) {
				t.Errorf("line %d: raw %U in %s", n+1, r, line)
				break
			}
		}
	}
	var sawApp, sawLogin, sawComment bool
	for _, e := range entries {
		sawApp = sawApp || e.ApplicationName == "app"+hostile
		sawLogin = sawLogin || e.User == "mallory"+hostile
		sawComment = sawComment || strings.Contains(e.SQL, hostile)
	}
	if !sawApp || !sawLogin || !sawComment {
		t.Errorf("values not kept exact: application_name %v, login %v, statement %v", sawApp, sawLogin, sawComment)
	}
}
