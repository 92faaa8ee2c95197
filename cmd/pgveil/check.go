package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"

	"github.com/pgveil/pgveil/policy"
)

// cmdCheck loads and validates a configuration, prints its diagnostics
// with file:line:col and exits 1 on any error. With --upstream it also
// checks the configuration against the live database (see
// checkUpstream).
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file or directory of *.hcl files (required)")
	upstream := fs.Bool("upstream", false, "also check tables, columns, masks, rules and the service account against the upstream database")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pgveil check --config FILE [--upstream]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *configPath == "" {
		fmt.Fprintln(stderr, "pgveil check: --config is required")
		return 2
	}
	// NOTE: "pgveil check --config a.hcl b.hcl" would check a.hcl alone
	// and say "valid": a directory of *.hcl files is how several load.
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "pgveil check: unexpected argument %q (to check several files, pass their directory to --config)\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	l := policy.NewLoader()
	cfg, files, loadErrs, loadWarns := loadWith(l, *configPath, stderr)
	if cfg == nil {
		if !*upstream {
			return 1
		}
		// NOTE: only errors in test blocks leave a policy whole and
		// validated; checking a half-decoded one against the catalog
		// would pass over, or report as missing, what the errors hide.
		if cfg = l.WithoutTests(); cfg == nil {
			fmt.Fprintln(stderr, "pgveil check: catalog checks skipped: fix the errors above first (only errors in test blocks leave a validated policy to check against the upstream)")
			return 1
		}
		fmt.Fprintln(stderr, "pgveil check: the errors above are in test blocks only: checking the rest against the upstream")
	}
	warnings := cfg.ServeWarnings()
	if w := cfg.OpenWarning(); w != "" {
		warnings = append(warnings, w)
	}
	for _, w := range append(warnings, auditFileWarnings(cfg)...) {
		fmt.Fprintf(stderr, "pgveil check: warning: %s\n", w)
	}
	if *upstream {
		return checkUpstream(context.Background(), *configPath, cfg, files, loadErrs, loadWarns, stdout, stderr)
	}
	tls := "off"
	if cfg.Listen.TLS != nil {
		tls = "on"
		if cfg.Listen.TLS.Require {
			tls = "required"
		}
	}
	// NOTE: the warnings printed above the line are counted in it, as
	// --upstream counts them, so that a DBA skimming the last line does
	// not read "valid" as "nothing to look at".
	counted := ""
	if loadWarns > 0 {
		counted = ", " + plural(loadWarns, "warning")
	}
	// NOTE: identity blocks' users are read upstream only: "0 users"
	// alone reads as a policy that lets no one in.
	users := plural(len(cfg.Users), "user")
	if n := len(cfg.IdentitySources); n > 0 {
		users = fmt.Sprintf("%s, and those of %s (read with --upstream)", plural(len(cfg.Users), "user block"), plural(n, "identity block"))
	}
	following := ""
	for _, f := range followers(cfg) {
		following += ", " + f
	}
	fmt.Fprintf(stdout, "%s: configuration is valid: listen %s (TLS %s), upstream %s/%s as %s, %s%s%s\n",
		*configPath, cfg.Listen.Address, tls, cfg.Upstream.Address, cfg.Upstream.Database, cfg.Upstream.User, users, following, counted)
	return 0
}

// loadConfig loads path, printing every diagnostic (warnings too) to
// stderr. It reports false when the configuration has errors.
func loadConfig(path string, stderr io.Writer) (*policy.Config, bool) {
	cfg, _, ok := loadConfigFiles(path, stderr)
	return cfg, ok
}

// loadConfigFiles is loadConfig, also returning the parsed files, so that
// later diagnostics can be printed with their source lines.
func loadConfigFiles(path string, stderr io.Writer) (*policy.Config, map[string]*hcl.File, bool) {
	cfg, files, _, _ := loadWith(policy.NewLoader(), path, stderr)
	return cfg, files, cfg != nil
}

// loadWith loads path with l, printing every diagnostic to stderr, and
// returns the configuration (nil on any error), the parsed files, and
// how many errors and warnings it printed.
func loadWith(l *policy.Loader, path string, stderr io.Writer) (cfg *policy.Config, files map[string]*hcl.File, errs, warns int) {
	cfg, diags := l.Load(path)
	if len(diags) > 0 {
		if err := policy.WriteDiagnostics(stderr, l.Files(), diags); err != nil {
			fmt.Fprintf(stderr, "pgveil: %v\n", err)
		}
	}
	for _, d := range diags {
		if d.Severity == hcl.DiagWarning {
			warns++
		} else {
			errs++
		}
	}
	if diags.HasErrors() {
		cfg = nil
	}
	return cfg, l.Files(), errs, warns
}

// auditFileWarnings reports why pgveil serve, run as the current user,
// could not write the audit trail cfg names. They are warnings, not
// errors: serve may run as another user, or under a service manager that
// creates the directory when it starts.
func auditFileWarnings(cfg *policy.Config) []string {
	if cfg.Audit == nil || cfg.Audit.File == "-" {
		return nil
	}
	file := cfg.Audit.File
	dir := filepath.Dir(file)
	st, err := os.Stat(dir)
	switch {
	case err != nil:
		if errors.Is(err, fs.ErrNotExist) {
			return []string{fmt.Sprintf("the audit file's directory %s does not exist: pgveil serve will not start until it does (the sample systemd unit's LogsDirectory= creates it as the service starts)", dir)}
		}
		return []string{fmt.Sprintf("the audit file's directory %s cannot be used: %v", dir, err)}
	case !st.IsDir():
		return []string{fmt.Sprintf("the audit file's directory %s is not a directory", dir)}
	}
	// NOTE: access(2) answers for the real user id: the user running
	// check, who may not be the one running serve.
	if _, err := os.Stat(file); err == nil {
		if !accessible(file, 2 /* W_OK */) {
			return []string{fmt.Sprintf("the audit file %s is not writable by user id %d", file, os.Getuid())}
		}
	} else if !accessible(dir, 2|1 /* W_OK|X_OK */) {
		return []string{fmt.Sprintf("the audit file's directory %s is not writable by user id %d: pgveil serve must create %s and its rotated files there", dir, os.Getuid(), filepath.Base(file))}
	}
	return nil
}
