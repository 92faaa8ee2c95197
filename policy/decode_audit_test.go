package policy

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// auditBase is the configuration the audit cases add their blocks to:
// seven lines, so that theirs start on line 8.
const auditBase = `listen { address = "127.0.0.1:6432" }
upstream {
  address  = "127.0.0.1:5432"
  database = "db"
  user     = "svc"
  password = env("PGVEIL_UPSTREAM_PASSWORD")
}
`

func TestAuditAndAdminBlocks(t *testing.T) {
	tests := []struct {
		name string
		// blocks follow auditBase in pgveil.hcl.
		blocks string
		// env sets environment variables.
		env map[string]string
		// diags are the diagnostics WriteDiagnostics prints.
		diags string
		// check looks at the configuration, when it loads.
		check func(t *testing.T, dir string, cfg *Config)
	}{
		{
			name:   "without the blocks there is no audit trail and no admin endpoint",
			blocks: "",
			check: func(t *testing.T, _ string, cfg *Config) {
				if cfg.Audit != nil || cfg.Admin != nil {
					t.Errorf("audit %+v, admin %+v", cfg.Audit, cfg.Admin)
				}
			},
		},
		{
			name: "an audit block with a key from the environment takes the defaults",
			blocks: `audit {
  file     = "audit/audit.log"
  hmac_key = env("PGVEIL_AUDIT_KEY")
}
admin { address = "127.0.0.1:9187" }
`,
			env: map[string]string{"PGVEIL_AUDIT_KEY": "k3y"},
			check: func(t *testing.T, dir string, cfg *Config) {
				a := cfg.Audit
				if a == nil || a.File != filepath.Join("audit", "audit.log") || a.MaxSize != 100<<20 ||
					a.QueueSize != 10000 || a.QueueBytes != 64<<20 || a.MaxText != 64<<10 ||
					a.SyncInterval != 200*time.Millisecond || a.OnFull != AuditBlock || string(a.Key) != "k3y" ||
					a.RewrittenSQL != AuditFull || a.RedactLiterals {
					t.Errorf("audit %+v", a)
				}
				if cfg.Admin == nil || cfg.Admin.Address != "127.0.0.1:9187" {
					t.Errorf("admin %+v", cfg.Admin)
				}
			},
		},
		{
			name: "every audit attribute can be set, and standard output is -",
			blocks: `audit {
  file            = "-"
  max_size        = "512KiB"
  queue_size      = 20
  queue_bytes     = "8MiB"
  max_text        = "4KiB"
  sync_interval   = "1s"
  on_full         = "drop"
  hmac_key        = env("PGVEIL_AUDIT_KEY")
  rewritten_sql   = "hash"
  redact_literals = true
}
`,
			env: map[string]string{"PGVEIL_AUDIT_KEY": "k3y"},
			check: func(t *testing.T, _ string, cfg *Config) {
				a := cfg.Audit
				if a.File != "-" || a.MaxSize != 512<<10 || a.QueueSize != 20 || a.QueueBytes != 8<<20 || a.MaxText != 4<<10 ||
					a.SyncInterval != time.Second || a.OnFull != AuditDrop ||
					a.RewrittenSQL != AuditHash || !a.RedactLiterals {
					t.Errorf("audit %+v", a)
				}
			},
		},
		{
			name:   "queue_bytes and max_text have bounds",
			blocks: "audit {\n  file        = \"a.log\"\n  queue_bytes = \"512KiB\"\n  max_text    = \"1MiB\"\n  hmac_key    = env(\"PGVEIL_AUDIT_KEY\")\n}\n",
			env:    map[string]string{"PGVEIL_AUDIT_KEY": "k3y"},
			diags: `pgveil.hcl:10:17: error: Invalid size
  10 |   queue_bytes = "512KiB"
     |                 ^^^^^^^^
  audit.queue_bytes must be from "1MiB" to "64GiB".

pgveil.hcl:11:17: error: Invalid size
  11 |   max_text    = "1MiB"
     |                 ^^^^^^
  audit.max_text must be from "1KiB" to "256KiB".
`,
		},
		{
			name:   "a max_size of 0 never rotates",
			blocks: "audit {\n  file     = \"/var/log/pgveil/audit.log\"\n  max_size = \"0\"\n  hmac_key = env(\"PGVEIL_AUDIT_KEY\")\n}\n",
			env:    map[string]string{"PGVEIL_AUDIT_KEY": "k3y"},
			check: func(t *testing.T, _ string, cfg *Config) {
				if cfg.Audit.MaxSize != 0 || cfg.Audit.File != "/var/log/pgveil/audit.log" {
					t.Errorf("audit %+v", cfg.Audit)
				}
			},
		},
		{
			name:   "a missing key is a warning: the chain is plain SHA-256",
			blocks: "audit {\n  file = \"audit.log\"\n}\n",
			diags: `pgveil.hcl:8:1: warning: Audit trail without key
   8 | audit {
     | ^^^^^
  The audit block has no hmac_key. Without a key the audit records are chained
  with plain SHA-256, which shows accidental damage but not forgery: whoever
  can write the file can rewrite it and recompute the chain. Give a long
  random secret from the environment, for example: hmac_key =
  env("PGVEIL_AUDIT_KEY").
`,
			check: func(t *testing.T, _ string, cfg *Config) {
				if cfg.Audit.Key != nil {
					t.Errorf("key %q", cfg.Audit.Key)
				}
			},
		},
		{
			name:   "an empty key is a warning",
			blocks: "audit {\n  file     = \"audit.log\"\n  hmac_key = env(\"PGVEIL_AUDIT_KEY\", \"\")\n}\n",
			diags: `pgveil.hcl:10:14: warning: Audit trail without key
  10 |   hmac_key = env("PGVEIL_AUDIT_KEY", "")
     |              ^^^^^^^^^^^^^^^^^^^^^^^^^^^
  audit.hmac_key is empty. Without a key the audit records are chained with
  plain SHA-256, which shows accidental damage but not forgery: whoever can
  write the file can rewrite it and recompute the chain. Give a long random
  secret from the environment, for example: hmac_key =
  env("PGVEIL_AUDIT_KEY").
`,
		},
		{
			name:   "a key written in the file is a warning",
			blocks: "audit {\n  file     = \"audit.log\"\n  hmac_key = \"hunter2\"\n}\n",
			diags: `pgveil.hcl:10:14: warning: Plain secret in configuration file
  10 |   hmac_key = <not shown: a secret>
     |              ^^^^^^^^^^^^^^^^^^^^^
  audit.hmac_key is written in the file itself, where anyone who can read the
  file, its backups or its history can see it, and forge audit records with
  it. Read it from the environment instead, for example: hmac_key =
  env("PGVEIL_AUDIT_KEY").
`,
			check: func(t *testing.T, _ string, cfg *Config) {
				if string(cfg.Audit.Key) != "hunter2" {
					t.Errorf("key %q", cfg.Audit.Key)
				}
			},
		},
		{
			name: "bad values are errors at their attribute, with suggestions",
			blocks: `audit {
  file          = ""
  max_size      = "100MB"
  queue_size    = 0
  on_full       = "blok"
  rewritten_sql = "hashed"
  hmac_key      = env("PGVEIL_AUDIT_KEY", "k")
}
`,
			diags: `pgveil.hcl:9:19: error: Invalid value
   9 |   file          = ""
     |                   ^^
  audit.file must not be empty.

pgveil.hcl:10:19: error: Invalid size
  10 |   max_size      = "100MB"
     |                   ^^^^^^^
  audit.max_size must be a size such as "100MiB" (units B, KiB, MiB, GiB) or
  "0": "MB" is not a unit (sizes count in powers of 1024: "MiB").

pgveil.hcl:11:19: error: Invalid number
  11 |   queue_size    = 0
     |                   ^
  audit.queue_size must be a whole number from 1 to 10000000.

pgveil.hcl:12:19: error: Invalid value
  12 |   on_full       = "blok"
     |                   ^^^^^^
  audit.on_full must be "block" or "drop". Did you mean "block"?

pgveil.hcl:13:19: error: Invalid value
  13 |   rewritten_sql = "hashed"
     |                   ^^^^^^^^
  audit.rewritten_sql must be "full", "hash" or "none". Did you mean "hash"?
`,
		},
		{
			name:   "sizes need a unit",
			blocks: "audit {\n  file     = \"a.log\"\n  max_size = 1024\n  hmac_key = env(\"PGVEIL_AUDIT_KEY\", \"k\")\n}\n",
			diags: `pgveil.hcl:10:14: error: Invalid size
  10 |   max_size = 1024
     |              ^^^^
  audit.max_size must be a size such as "100MiB" (units B, KiB, MiB, GiB) or
  "0": "1024" has no unit.
`,
		},
		{
			name:   "a typo in an attribute name gets a suggestion",
			blocks: "audit {\n  file    = \"a.log\"\n  on_ful  = \"drop\"\n  hmac_key = env(\"PGVEIL_AUDIT_KEY\", \"k\")\n}\n",
			diags: `pgveil.hcl:10:3: error: Unsupported argument
  10 |   on_ful  = "drop"
     |   ^^^^^^
  An argument named "on_ful" is not expected here. Did you mean "on_full"?
`,
		},
		{
			name:   "the file is required",
			blocks: "audit {\n  hmac_key = env(\"PGVEIL_AUDIT_KEY\", \"k\")\n}\n",
			diags: `pgveil.hcl:8:7: error: Missing required argument
   8 | audit {
     |       ^
  The argument "file" is required, but no definition was found.
`,
		},
		{
			name: "a second audit or admin block is an error",
			blocks: `audit {
  file     = "a.log"
  hmac_key = env("PGVEIL_AUDIT_KEY", "k")
}
audit { file = "b.log" }
admin { address = "127.0.0.1:9187" }
admin { address = "127.0.0.1:9188" }
`,
			diags: `pgveil.hcl:12:1: error: Duplicate audit block
  12 | audit { file = "b.log" }
     | ^^^^^
  A configuration has at most one audit block, and one is already defined at
  pgveil.hcl:8:1.

pgveil.hcl:14:1: error: Duplicate admin block
  14 | admin { address = "127.0.0.1:9188" }
     | ^^^^^
  A configuration has at most one admin block, and one is already defined at
  pgveil.hcl:13:1.
`,
		},
		{
			name:   "the admin address must be host:port",
			blocks: "admin { address = \"localhost\" }\n",
			diags: `pgveil.hcl:8:19: error: Invalid address
   8 | admin { address = "localhost" }
     |                   ^^^^^^^^^^^
  admin.address must be host:port, such as "127.0.0.1:6432" or "[::1]:6432":
  missing port in address.
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "pgveil.hcl"), []byte(auditBase+tt.blocks))
			t.Chdir(dir)
			t.Setenv("PGVEIL_UPSTREAM_PASSWORD", "s3cret")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			l := NewLoader()
			cfg, diags := l.Load("pgveil.hcl")
			var got bytes.Buffer
			if err := WriteDiagnostics(&got, l.Files(), diags); err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.diags {
				t.Errorf("diagnostics:\n%s--- want ---\n%s", got.String(), tt.diags)
			}
			if (cfg == nil) != diags.HasErrors() {
				t.Fatalf("config %v with errors %v", cfg != nil, diags.HasErrors())
			}
			if cfg != nil && tt.check != nil {
				tt.check(t, dir, cfg)
			}
		})
	}
}

func TestDiagnosticsNeverPrintTheSecretsOfTheFile(t *testing.T) {
	tests := []struct {
		name, line string
	}{
		{"the upstream password", `  password = "upstream-s3cret"`},
		{"a user's plaintext password", `password = "user-s3cret", roles = ["r"]`},
		{"the LDAP bind password", `  bind_password = "bind-s3cret"`},
		{"a hash mask's secret", `    secret = "mask-s3cret"`},
		{"the audit key", "\thmac_key = \"audit-s3cret\""},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is not copied into a snippet", func(t *testing.T) {
			files := map[string]*hcl.File{"pgveil.hcl": {Bytes: []byte("x {\n" + tt.line + "\n}\n")}}
			start := strings.Index(tt.line, `"`)
			diags := hcl.Diagnostics{{
				Severity: hcl.DiagWarning, Summary: "Plain secret in configuration file",
				Subject: &hcl.Range{Filename: "pgveil.hcl",
					Start: hcl.Pos{Line: 2, Column: start + 1}, End: hcl.Pos{Line: 2, Column: len(tt.line) + 1}},
			}}
			var b bytes.Buffer
			if err := WriteDiagnostics(&b, files, diags); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(b.String(), "s3cret") || !strings.Contains(b.String(), secretShown) {
				t.Fatalf("the snippet shows the secret:\n%s", b.String())
			}
		})
	}
	t.Run("a secret read from the environment is shown by its name", func(t *testing.T) {
		line := `  password = env("PGVEIL_UPSTREAM_PASSWORD")`
		files := map[string]*hcl.File{"pgveil.hcl": {Bytes: []byte(line + "\n")}}
		diags := hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Error in function call",
			Subject: &hcl.Range{Filename: "pgveil.hcl", Start: hcl.Pos{Line: 1, Column: 14}, End: hcl.Pos{Line: 1, Column: 45}}}}
		var b bytes.Buffer
		if err := WriteDiagnostics(&b, files, diags); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), line) {
			t.Fatalf("the snippet lost the variable's name:\n%s", b.String())
		}
	})
}

func TestLoadingNeverPrintsASecretOfTheFile(t *testing.T) {
	tests := []struct {
		name string
		// block follows auditBase and a role r in pgveil.hcl.
		block string
	}{
		{"a user's password given as env's default",
			"user \"marie\" {\n  password = env(\"PGVEIL_TEST_UNSET\", \"marie-s3cret\")\n  roles = [\"r\"]\n}\n"},
		{"a heredoc password that interpolates a variable",
			"user \"marie\" {\n  password = <<EOT\nmarie-s3cret-${foo}\nEOT\n  roles = [\"r\"]\n}\n"},
		{"a heredoc password's second line that calls an unknown function",
			"user \"marie\" {\n  password = <<EOT\nfirst\nmarie-s3cret-${upper(\"x\")}\nEOT\n  roles = [\"r\"]\n}\n"},
		{"a password in parentheses over several lines",
			"user \"marie\" {\n  password = (\n    \"marie-s3cret\"\n  )\n  roles = [\"r\"]\n}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is not copied into a diagnostic", func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "pgveil.hcl"), []byte(auditBase+"role \"r\" {}\n"+tt.block))
			t.Chdir(dir)
			t.Setenv("PGVEIL_UPSTREAM_PASSWORD", "x")
			l := NewLoader()
			_, diags := l.Load("pgveil.hcl")
			if len(diags) == 0 {
				t.Fatal("no diagnostic")
			}
			var b bytes.Buffer
			if err := WriteDiagnostics(&b, l.Files(), diags); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(b.String(), "s3cret") {
				t.Fatalf("a diagnostic shows the secret:\n%s", b.String())
			}
		})
	}
	t.Run("a secret after one read from the environment is not shown", func(t *testing.T) {
		line, cut := hideSecret(`x = { password = env("A"), bind_password = "bind-s3cret" }`)
		if strings.Contains(line, "s3cret") || cut < 0 {
			t.Fatalf("shown: %s", line)
		}
	})
}
