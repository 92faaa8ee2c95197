package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"regexp"

	"github.com/hashicorp/hcl/v2"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/policy/live"
	"github.com/pgveil/pgveil/policy/policytest"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/rewrite"
)

// cmdTest runs the configuration's test blocks (package policytest):
// offline, or with --upstream after loading identities and catalog as
// serve does. It prints a line per test and a summary. Exit status 1
// when a test fails.
func cmdTest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file or directory of *.hcl files (required)")
	upstream := fs.Bool("upstream", false, "load identities and catalog upstream and run the statements (read-only)")
	runPattern := fs.String("run", "", "run only the tests whose name matches this regular expression")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pgveil test --config FILE [--upstream] [--run REGEXP]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *configPath == "" || fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	var filter *regexp.Regexp
	if *runPattern != "" {
		var err error
		if filter, err = regexp.Compile(*runPattern); err != nil {
			fmt.Fprintf(stderr, "pgveil test: --run: %v\n", err)
			return 2
		}
	}
	cfg, files, ok := loadConfigFiles(*configPath, stderr)
	if !ok {
		return 1
	}
	var tests []*policy.Test
	for _, t := range cfg.Tests {
		if filter == nil || filter.MatchString(t.Name) {
			tests = append(tests, t)
		}
	}
	if len(tests) == 0 {
		fmt.Fprintf(stderr, "pgveil test: no test blocks to run in %s\n", *configPath)
		fmt.Fprintln(stdout, "0 passed, 0 failed")
		return 0
	}

	ctx := context.Background()
	var env *policytest.Env
	if *upstream {
		conn, err := proxy.ConnectService(ctx, cfg, "test")
		if err != nil {
			fmt.Fprintf(stderr, "pgveil test: connecting upstream to %s/%s as %s: %v\n",
				cfg.Upstream.Address, cfg.Upstream.Database, cfg.Upstream.User, err)
			return 1
		}
		defer conn.Close(context.Background())
		ids, diags := cfg.LoadIdentities(ctx, live.New(conn))
		writeDiags(stderr, files, diags)
		if diags.HasErrors() || ids == nil {
			return 1
		}
		cat, err := rewrite.LoadCatalog(ctx, conn, proxy.SearchPath(cfg.Upstream.SearchPath, cfg.Upstream.User))
		if err != nil {
			fmt.Fprintf(stderr, "pgveil test: loading the catalog: %v\n", err)
			return 1
		}
		env = policytest.Online(cfg, ids, cat, conn)
		writeDiags(stderr, files, env.CheckUsers(tests))
	} else {
		env = policytest.Offline(cfg, proxy.SearchPath(cfg.Upstream.SearchPath, cfg.Upstream.User))
	}

	sum := env.RunAll(ctx, tests, func(t *policy.Test, o policytest.Outcome) {
		fmt.Fprintln(stdout, o.String(t.Name))
		if o.Diag != nil {
			writeDiags(stderr, files, hcl.Diagnostics{o.Diag})
		}
	})
	if env.Broken() {
		fmt.Fprintln(stderr, "pgveil test: the upstream connection failed; stopping")
	}
	if sum.Skipped > 0 {
		fmt.Fprintf(stdout, "%d skipped: they need the live database; run pgveil test --upstream\n", sum.Skipped)
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", sum.Passed, sum.Failed)
	if sum.Failed > 0 {
		return 1
	}
	return 0
}
