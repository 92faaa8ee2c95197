package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/pgveil/pgveil/internal/ldapauth"
	"github.com/pgveil/pgveil/policy"
)

// explainedDirectory is what pgveil explain knows of the directory
// groups of a login that logs in through the ldap block.
type explainedDirectory struct {
	// groups are the login's directory groups, as the directory spells
	// them (or --groups); nil when they could not be read.
	// NOTE: nil means explain compiles the login as before, from its user
	// block and identity rows alone, and says so (from).
	groups []string
	// from says where groups come from: the directory's URL, --groups,
	// or why they were not read.
	from string
}

// explainDirectory returns the directory groups pgveil explain compiles
// login with, as serve would at her login: given (--groups, not nil),
// else looked up as the ldap block's bind DN when the block maps groups
// to roles and can look people up. Nil when the login does not log in
// through the directory, or its groups do not matter (no group block).
// An error when given groups for a login that does not log in through
// the directory, or when the directory does not hold login or does not
// answer: explain must never say "no access" for a person serve admits.
//
// With service, login is the person service acts for: she is looked up
// only when the proxy would look her up (Identities.ActsThroughDirectory),
// and only when some groups could let service act for her; otherwise the
// refusal is an *actRefused.
func explainDirectory(ctx context.Context, cfg *policy.Config, ids *policy.Identities, login, service string, given []string) (*explainedDirectory, error) {
	l := cfg.LDAP
	if given != nil {
		if l == nil {
			return nil, fmt.Errorf("--groups: the configuration has no ldap block, so no login has directory groups")
		}
		if !ids.LogsInThroughDirectory(login) {
			return nil, fmt.Errorf("--groups: %s does not log in through the directory (its user block or identity rows give it another authentication), so directory groups give it nothing", login)
		}
		if service != "" && !ids.ActsThroughDirectory(login) {
			// NOTE: the proxy then checks the switch, and rewrites, with
			// her user block and identity rows alone (MayActFor), as
			// explain does without --groups.
			return nil, fmt.Errorf("--groups: the proxy does not read %s's directory groups when %s acts for her (the ldap block has no group block, or cannot look people up, or she is a BI service), so they give her nothing there: leave --groups out", login, service)
		}
		return &explainedDirectory{groups: given, from: "--groups"}, nil
	}
	if l == nil || len(l.Groups) == 0 || !ids.LogsInThroughDirectory(login) {
		return nil, nil
	}
	if !l.Directory.CanLookup() {
		return &explainedDirectory{from: "not read: the ldap block has no base_dn and bind_dn to look people up; pass --groups"}, nil
	}
	if service != "" {
		if !ids.ActsThroughDirectory(login) {
			return nil, nil
		}
		if err := ids.ActForReachesDirectory(service, login); err != nil {
			return nil, &actRefused{err}
		}
	}
	res, err := l.Directory.Lookup(ctx, login)
	if err != nil {
		err = fmt.Errorf("could not look up %s in the directory at %s: %w", login, l.Directory.URL, err)
		// NOTE: a DBA's typo of a login (the CLI only).
		if errors.Is(err, ldapauth.ErrNotFound) {
			if s := policy.Suggest(login, ids.Logins()); s != "" && s != login {
				err = fmt.Errorf("%w (did you mean %q?)", err, s)
			}
		}
		return nil, err
	}
	groups := res.Groups
	if groups == nil {
		groups = []string{}
	}
	return &explainedDirectory{groups: groups, from: l.Directory.URL}, nil
}

// actRefused is explainDirectory's refusal of a service acting for a
// person, an outcome of explain (as "no access"), not a failure.
type actRefused struct{ err error }

func (e *actRefused) Error() string { return e.err.Error() }

// write prints the groups and the roles and groups the ldap block's
// group blocks map them to, a DBA's first question about a directory
// person.
func (d *explainedDirectory) write(w io.Writer, cfg *policy.Config) {
	if d.groups == nil {
		fmt.Fprintf(w, "directory groups: %s\n", d.from)
		return
	}
	fmt.Fprintf(w, "directory groups (%s): %s\n", d.from, listOrNone(d.groups))
	mapped := false
	for _, g := range cfg.LDAP.Groups {
		if !slices.ContainsFunc(d.groups, func(dn string) bool { return ldapauth.SameDN(dn, g.DN) }) {
			continue
		}
		mapped = true
		line := fmt.Sprintf("directory group %s gives roles: %s", g.DN, listOrNone(g.Roles))
		if len(g.Groups) > 0 {
			line += "; groups: " + strings.Join(g.Groups, ", ")
		}
		fmt.Fprintln(w, line)
	}
	if !mapped {
		fmt.Fprintln(w, "directory groups give roles: none (no group block of the ldap block names them)")
	}
}
