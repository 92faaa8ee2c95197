package policy

import (
	"strings"
	"testing"
)

func TestAuditOnError(t *testing.T) {
	cfg, diags := loadAudit(t, "audit {\n  file = \"a.log\"\n  hmac_key = env(\"K\", \"k\")\n}\n")
	if cfg == nil || cfg.Audit.OnError != AuditContinue {
		t.Fatalf("default: %+v %s", cfg, diags)
	}
	cfg, diags = loadAudit(t, "audit {\n  file = \"a.log\"\n  hmac_key = env(\"K\", \"k\")\n  on_error = \"refuse\"\n}\n")
	if cfg == nil || cfg.Audit.OnError != AuditRefuse {
		t.Fatalf("refuse: %+v %s", cfg, diags)
	}
	if _, diags = loadAudit(t, "audit {\n  file = \"a.log\"\n  hmac_key = env(\"K\", \"k\")\n  on_error = \"refus\"\n}\n"); !strings.Contains(diags, `audit.on_error must be "continue" or "refuse"`) {
		t.Fatalf("bad value: %s", diags)
	}
}
