package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/policy/live"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/rewrite"
)

// checkUpstream checks a loaded configuration against the live database:
// it connects as the service account, loads the identities and the
// catalog snapshot as serve does, then reports (policy.CheckCatalog,
// policy.CheckServiceAccount) table blocks naming missing tables or
// columns, masks and rules PostgreSQL rejects, privileges the service
// account should not have, and test blocks naming unknown users. Exit
// status 1 on any error.
//
// loadErrs and loadWarns are the numbers of errors and warnings loading
// the files printed: they count in the summary line with the database's
// own. loadErrs is not 0 only for errors in test blocks, which leave the
// rest of cfg whole (policy.Loader.WithoutTests).
func checkUpstream(ctx context.Context, path string, cfg *policy.Config, files map[string]*hcl.File, loadErrs, loadWarns int, stdout, stderr io.Writer) int {
	up := fmt.Sprintf("%s/%s as %s", cfg.Upstream.Address, cfg.Upstream.Database, cfg.Upstream.User)
	conn, err := proxy.ConnectService(ctx, cfg, "check")
	if err != nil {
		fmt.Fprintf(stderr, "pgveil check: connecting upstream to %s: %v\n", up, err)
		return 1
	}
	defer conn.Close(context.Background())
	srv := live.New(conn)

	ids, diags := cfg.LoadIdentities(ctx, srv)
	if diags.HasErrors() || ids == nil {
		writeDiags(stderr, files, diags)
		return 1
	}
	if len(cfg.Users) == 0 && len(cfg.IdentitySources) > 0 && len(ids.Logins()) == 0 {
		fmt.Fprintln(stderr, "pgveil check: warning: no users: the identity queries returned no row, so pgveil will accept no one")
	}
	cat, err := rewrite.LoadCatalog(ctx, conn, proxy.SearchPath(cfg.Upstream.SearchPath, cfg.Upstream.User))
	if err != nil {
		writeDiags(stderr, files, diags)
		fmt.Fprintf(stderr, "pgveil check: loading the catalog from %s: %v\n", up, err)
		return 1
	}
	diags = append(diags, cfg.CheckCatalog(ctx, srv, cat, ids)...)
	diags = append(diags, cfg.CheckServiceAccount(ctx, srv, cat)...)
	diags = append(diags, cfg.CheckMaskKeys(ctx, srv)...)
	for _, t := range cfg.Tests {
		if d := cfg.CheckTestUser(t, ids); d != nil {
			diags = append(diags, d)
		}
	}
	writeDiags(stderr, files, diags)

	errs, warns := loadErrs, loadWarns
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			errs++
		} else {
			warns++
		}
	}
	if errs > 0 {
		fmt.Fprintf(stderr, "%s: %s, %s against upstream %s\n", path, plural(errs, "error"), plural(warns, "warning"), up)
		return 1
	}
	following := ""
	if fs := followers(cfg); len(fs) > 0 {
		following = " (" + strings.Join(fs, ", ") + ")"
	}
	fmt.Fprintf(stdout, "%s: configuration is valid against upstream %s: %s governed%s, %s, %s, %s\n",
		path, up, plural(len(cfg.GovernedRelations(cat)), "table"), following, plural(len(cfg.Rules), "rule"),
		plural(len(ids.Logins()), "user"), plural(warns, "warning"))
	return 0
}

// followers lists the table blocks that follow another ("fb.tags
// follows fb.responses"), for the summaries: a follower has no rule of
// its own, and they would otherwise not say why its rows show.
func followers(cfg *policy.Config) []string {
	var fs []string
	for _, t := range cfg.Tables {
		if f := t.Follows; f != nil {
			fs = append(fs, t.Pattern.String()+" follows "+f.Table.String())
		}
	}
	return fs
}

// writeDiags prints diagnostics with their source lines.
func writeDiags(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics) {
	if len(diags) == 0 {
		return
	}
	if err := policy.WriteDiagnostics(w, files, diags); err != nil {
		fmt.Fprintf(w, "pgveil: %v\n", err)
	}
}

// plural renders "1 table", "2 tables".
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
