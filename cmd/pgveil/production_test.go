package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/internal/testcert"
)

// TestProductionSampleChecks keeps configs/production valid: it is checked
// as an operator would after installing it in /etc/pgveil, with its TLS
// files and secrets in place.
func TestProductionSampleChecks(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"pgveil.hcl", "policy.hcl"} {
		b, err := os.ReadFile(filepath.Join("../../configs/production", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	certPEM, keyPEM := testcert.PEM(t, testcert.New(t))
	if err := os.MkdirAll(filepath.Join(dir, "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"server.crt": certPEM, "server.key": keyPEM, "upstream-ca.pem": certPEM} {
		if err := os.WriteFile(filepath.Join(dir, "tls", name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PGVEIL_UPSTREAM_PASSWORD", "x")
	t.Setenv("PGVEIL_AUDIT_KEY", "k")
	code, out, errOut := runCLI("", "check", "--config", dir)
	if code != 0 {
		t.Fatalf("pgveil check: exit %d\n%s%s", code, out, errOut)
	}
	// NOTE: /var/log/pgveil, the audit directory, is created by the
	// systemd unit (LogsDirectory=) when the service starts; check warns
	// that it is missing until then.
	var warnings []string
	for _, line := range strings.Split(errOut, "\n") {
		if strings.Contains(line, "warning") && !strings.Contains(line, "the audit file's directory /var/log/pgveil does not exist") {
			warnings = append(warnings, line)
		}
	}
	if len(warnings) > 0 {
		t.Errorf("the production sample has warnings:\n%s", strings.Join(warnings, "\n"))
	}
}

// TestSystemdUnitInstallsTheProductionSample keeps the systemd unit's
// install steps in step with configs/production: every file of it is
// installed in /etc/pgveil, where ExecStart loads the directory.
func TestSystemdUnitInstallsTheProductionSample(t *testing.T) {
	unit, err := os.ReadFile("../../configs/systemd/pgveil.service")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("../../configs/production/*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no production sample: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		if want := "configs/production/" + name + " /etc/pgveil/" + name; !strings.Contains(string(unit), want) {
			t.Errorf("the unit's install steps do not install %s (no %q)", name, want)
		}
	}
}
