package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/pgveil/pgveil/policy"
)

// cmdCheck loads and validates a configuration, prints its diagnostics
// with file:line:col and exits 1 on any error.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file or directory of *.hcl files (required)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *configPath == "" {
		fmt.Fprintln(stderr, "pgveil check: --config is required")
		return 2
	}
	cfg, ok := loadConfig(*configPath, stderr)
	if !ok {
		return 1
	}
	tls := "off"
	if cfg.Listen.TLS != nil {
		tls = "on"
		if cfg.Listen.TLS.Require {
			tls = "required"
		}
	}
	fmt.Fprintf(stdout, "%s: configuration is valid: listen %s (TLS %s), upstream %s/%s as %s, %d users\n",
		*configPath, cfg.Listen.Address, tls, cfg.Upstream.Address, cfg.Upstream.Database, cfg.Upstream.User, len(cfg.Users))
	return 0
}

// loadConfig loads path, printing every diagnostic (warnings too) to
// stderr. It reports false when the configuration has errors.
func loadConfig(path string, stderr io.Writer) (*policy.Config, bool) {
	l := policy.NewLoader()
	cfg, diags := l.Load(path)
	if len(diags) > 0 {
		if err := policy.WriteDiagnostics(stderr, l.Files(), diags); err != nil {
			fmt.Fprintf(stderr, "pgveil: %v\n", err)
		}
	}
	if diags.HasErrors() || cfg == nil {
		return nil, false
	}
	return cfg, true
}
