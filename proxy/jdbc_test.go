package proxy_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"
)

// jdbcJar is where Debian's libpostgresql-jdbc-java installs PgJDBC.
const jdbcJar = "/usr/share/java/postgresql.jar"

func TestJDBC(t *testing.T) {
	javac, err1 := exec.LookPath("javac")
	java, err2 := exec.LookPath("java")
	_, err3 := os.Stat(jdbcJar)
	if err1 != nil || err2 != nil || err3 != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("JDBC test needs javac, java and %s (apt-get install default-jdk-headless libpostgresql-jdbc-java): %v %v %v", jdbcJar, err1, err2, err3)
		}
		t.Skip("javac, java or PgJDBC missing")
	}
	p := proxytest.StartProxy(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, javac, "-cp", jdbcJar, "-d", dir, filepath.Join("testdata", "jdbc", "JdbcSmoke.java")).CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	url := "jdbc:postgresql://" + p.Addr + "/" + proxytest.TestDB + "?sslmode=disable&ApplicationName=jdbc-smoke"
	out, err := exec.CommandContext(ctx, java, "-cp", dir+string(os.PathListSeparator)+jdbcJar, "JdbcSmoke", url, "alice", proxytest.Users["alice"]).CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("JDBC program failed: %v", err)
	}
	for _, want := range []string{"ok server-side prepared statement", "ok fetchSize cursor", "ok copy out", "ok session usable after error"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("missing %q", want)
		}
	}
}
