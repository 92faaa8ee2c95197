package policy

import (
	"path/filepath"
	"strings"
	"testing"
)

// loadAudit loads auditBase and block, and returns the configuration
// (nil on errors) and the diagnostics' text.
func loadAudit(t *testing.T, block string) (*Config, string) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pgveil.hcl"), []byte(auditBase+block))
	t.Chdir(dir)
	t.Setenv("PGVEIL_UPSTREAM_PASSWORD", "s3cret")
	l := NewLoader()
	cfg, diags := l.Load("pgveil.hcl")
	var b strings.Builder
	if err := WriteDiagnostics(&b, l.Files(), diags); err != nil {
		t.Fatal(err)
	}
	return cfg, b.String()
}

func TestAuditLogParameters(t *testing.T) {
	cfg, diags := loadAudit(t, "audit {\n  file = \"a.log\"\n  hmac_key = env(\"K\", \"k\")\n}\n")
	if cfg == nil || cfg.Audit.LogParameters || cfg.Audit.ParameterMaxLength != 256 {
		t.Fatalf("defaults: %+v %s", cfg.Audit, diags)
	}
	cfg, diags = loadAudit(t, "audit {\n  file = \"a.log\"\n  hmac_key = env(\"K\", \"k\")\n  log_parameters = true\n  parameter_max_length = 64\n}\n")
	if cfg == nil || !cfg.Audit.LogParameters || cfg.Audit.ParameterMaxLength != 64 {
		t.Fatalf("set: %+v %s", cfg, diags)
	}
	cfg, diags = loadAudit(t, "audit {\n  file = \"a.log\"\n  hmac_key = env(\"K\", \"k\")\n  redact_literals = true\n  log_parameters = true\n}\n")
	if cfg != nil || !strings.Contains(diags, "Conflicting audit settings") {
		t.Fatalf("with redact_literals: %v %s", cfg != nil, diags)
	}
	if _, diags = loadAudit(t, "audit {\n  file = \"a.log\"\n  hmac_key = env(\"K\", \"k\")\n  parameter_max_length = 0\n}\n"); !strings.Contains(diags, "audit.parameter_max_length must be a whole number from 1 to 65536") {
		t.Fatalf("bounds: %s", diags)
	}
}
