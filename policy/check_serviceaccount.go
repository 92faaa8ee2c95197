package policy

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/pgveil/pgveil/rewrite"
)

// CheckServiceAccount warns about privileges of the upstream service
// account that a least-privilege account does not need, and that would
// let a mistake (or a bypass) reach beyond the policies: superuser,
// BYPASSRLS, CREATEROLE, CREATEDB, membership of predefined roles that
// reach files, programs, other sessions or every table (riskyRoles),
// owning (or being a member of the owner of) a governed table, creating
// temporary objects, creating objects in a schema of the search_path. cat is the catalog snapshot read from srv.
func (c *Config) CheckServiceAccount(ctx context.Context, srv Server, cat *rewrite.Catalog) hcl.Diagnostics {
	ck := &catalogChecker{cfg: c, ctx: ctx, srv: srv, cat: cat}
	user := c.Upstream.User
	rng := ck.attrRange("upstream.user", hcl.Range{})
	if rng.Filename == "" {
		rng = nil
	}
	_, rows, err := srv.Query(ctx, `SELECT r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb,
		pg_catalog.has_database_privilege(pg_catalog.current_database(), 'TEMP')
		FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER`)
	if err != nil {
		return hcl.Diagnostics{ck.cannot(err)}
	}
	superuser := false
	if len(rows) == 1 {
		row := rows[0]
		flag := func(i int) bool { return string(row[i]) == "t" }
		superuser = flag(0)
		if superuser {
			ck.report(hcl.DiagWarning, rng, "Service account is a superuser", fmt.Sprintf(
				"%s is a superuser: it bypasses every privilege and row-level security, and can read files and run programs "+
					"on the server. pgveil needs SELECT on the governed tables and little else: use an account "+
					"created with NOSUPERUSER (see testdata/demo/05_service_account.sql).", user))
		}
		if flag(1) {
			ck.report(hcl.DiagWarning, rng, "Service account bypasses row-level security", fmt.Sprintf(
				"%s has BYPASSRLS: row-level security policies of the database, a second line of defence behind pgveil, "+
					"do not apply to it. ALTER ROLE %s NOBYPASSRLS.", user, user))
		}
		if flag(2) {
			ck.report(hcl.DiagWarning, rng, "Service account can create roles", fmt.Sprintf(
				"%s has CREATEROLE: it can create roles and grant itself their memberships. ALTER ROLE %s NOCREATEROLE.", user, user))
		}
		if flag(3) {
			ck.report(hcl.DiagWarning, rng, "Service account can create databases", fmt.Sprintf(
				"%s has CREATEDB. ALTER ROLE %s NOCREATEDB.", user, user))
		}
		// NOTE: a superuser has every privilege whatever is granted or
		// revoked: the advice below would not help it.
		if flag(4) && !superuser {
			ck.report(hcl.DiagWarning, rng, "Service account can create temporary tables", fmt.Sprintf(
				"%s may create temporary objects in database %s, which could shadow governed tables or functions on the "+
					"search_path (pg_temp is searched first). REVOKE TEMP ON DATABASE %s FROM PUBLIC, %s.",
				user, c.Upstream.Database, c.Upstream.Database, user))
		}
	}
	if superuser {
		ck.owned()
		return ck.diags
	}
	_, rows, err = srv.Query(ctx, `SELECT s.nspname FROM pg_catalog.unnest(pg_catalog.current_schemas(false)) AS s(nspname)
		WHERE pg_catalog.has_schema_privilege(s.nspname, 'CREATE')`)
	if err != nil {
		return append(ck.diags, ck.cannot(err))
	}
	if len(rows) > 0 {
		var schemas, quoted []string
		for _, r := range rows {
			schemas = append(schemas, string(r[0]))
			quoted = append(quoted, sqlName(string(r[0])))
		}
		srng := ck.attrRange("upstream.search_path", hcl.Range{})
		if srng.Filename == "" {
			srng = rng
		}
		ck.report(hcl.DiagWarning, srng, "Service account can create objects on the search_path", fmt.Sprintf(
			"%s may CREATE in %s, on the pinned search_path %q: a table or function created there could shadow what "+
				"statements name unqualified. REVOKE CREATE ON SCHEMA %s FROM PUBLIC, %s.",
			user, strings.Join(schemas, ", "), c.Upstream.SearchPath, strings.Join(quoted, ", "), sqlName(user)))
	}
	ck.predefinedRoles(rng)
	ck.owned()
	return ck.diags
}

// riskyRoles are the predefined roles whose membership gives the service
// account more than reading the governed tables, with what each allows.
// pg_monitor is not listed: what makes it risky is its members
// pg_read_all_stats and pg_read_all_settings, reported through it.
var riskyRoles = []struct{ name, allows string }{
	{"pg_execute_server_program", "run programs on the database server as its operating-system user (COPY … TO/FROM PROGRAM)"},
	{"pg_read_server_files", "read any file the database server can (COPY … FROM a file, pg_read_file), its configuration and keys included"},
	{"pg_write_server_files", "write any file the database server can (COPY … TO a file)"},
	{"pg_read_all_data", "read every table, view and sequence whatever their grants, pgveil.mask_keys included"},
	{"pg_write_all_data", "write every table, view and sequence whatever their grants"},
	{"pg_signal_backend", "cancel and terminate the sessions of other roles (pg_terminate_backend)"},
	{"pg_read_all_stats", "read the statement texts of every role's sessions (pg_stat_activity, pg_stat_statements), literals included"},
	{"pg_read_all_settings", "read every setting, those reserved to superusers included (file paths, library settings)"},
}

// predefinedRoles warns about the service account's memberships, direct
// or through other roles, of riskyRoles: a statement that got past the
// firewall would have their power. The hint names the role to revoke
// from the service account (the one it was granted).
func (ck *catalogChecker) predefinedRoles(rng *hcl.Range) {
	names := make([]string, len(riskyRoles))
	for i, r := range riskyRoles {
		names[i] = r.name
	}
	_, rows, err := ck.srv.Query(ck.ctx, `SELECT r.rolname, d.rolname
		FROM pg_catalog.pg_roles r, pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles d ON d.oid OPERATOR(pg_catalog.=) m.roleid
		WHERE r.rolname OPERATOR(pg_catalog.=) ANY($1::pg_catalog.text[])
		AND m.member OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER)
		AND pg_catalog.pg_has_role(d.oid, r.oid, 'MEMBER')
		ORDER BY d.rolname`, "{"+strings.Join(names, ",")+"}")
	if err != nil {
		ck.diags = append(ck.diags, ck.cannot(err))
		return
	}
	via := map[string][]string{}
	for _, r := range rows {
		via[string(r[0])] = append(via[string(r[0])], string(r[1]))
	}
	user := ck.cfg.Upstream.User
	for _, r := range riskyRoles {
		granted := via[r.name]
		if len(granted) == 0 {
			continue
		}
		how := ""
		if len(granted) > 1 || granted[0] != r.name {
			how = fmt.Sprintf(" (through %s)", strings.Join(granted, ", "))
		}
		revokes := make([]string, len(granted))
		for i, g := range granted {
			revokes[i] = fmt.Sprintf("REVOKE %s FROM %s", quoteIdent(g), quoteIdent(user))
		}
		ck.report(hcl.DiagWarning, rng, "Service account is a member of "+r.name, fmt.Sprintf(
			"%s is a member of %s%s: it can %s, and so could a statement that got past the firewall. "+
				"pgveil needs none of it: %s.", user, r.name, how, r.allows, strings.Join(revokes, "; ")))
	}
}

// owned warns, per table block, about governed relations the service
// account owns or whose owner role it is a member of: it could ALTER or
// DROP them, disable their row-level security or triggers.
func (ck *catalogChecker) owned() {
	byOID := map[string]*rewrite.Relation{}
	var oids []string
	for _, rel := range ck.cfg.GovernedRelations(ck.cat) {
		oid := strconv.FormatUint(uint64(rel.OID), 10)
		byOID[oid] = rel
		oids = append(oids, oid)
	}
	if len(oids) == 0 {
		return
	}
	_, rows, err := ck.srv.Query(ck.ctx, `SELECT c.oid::pg_catalog.text FROM pg_catalog.pg_class c
		WHERE c.oid OPERATOR(pg_catalog.=) ANY($1::pg_catalog.oid[]) AND pg_catalog.pg_has_role(c.relowner, 'MEMBER')`,
		"{"+strings.Join(oids, ",")+"}")
	if err != nil {
		ck.diags = append(ck.diags, ck.cannot(err))
		return
	}
	byTable := map[*Table][]*rewrite.Relation{}
	var order []*Table
	for _, r := range rows {
		rel := byOID[string(r[0])]
		if rel == nil {
			continue
		}
		t, _ := ck.cfg.tableFor(rel)
		if t == nil {
			continue
		}
		if byTable[t] == nil {
			order = append(order, t)
		}
		byTable[t] = append(byTable[t], rel)
	}
	slices.SortFunc(order, func(a, b *Table) int { return strings.Compare(a.Pattern.String(), b.Pattern.String()) })
	for _, t := range order {
		rels := byTable[t]
		slices.SortFunc(rels, func(a, b *rewrite.Relation) int { return strings.Compare(a.QName.String(), b.QName.String()) })
		ck.report(hcl.DiagWarning, t.DeclRange.Ptr(), "Service account owns a governed table", fmt.Sprintf(
			"%s owns %s (or is a member of the owning role): it could ALTER or DROP it, or disable its row-level "+
				"security and triggers. Let another role own it and GRANT SELECT to %s.",
			ck.cfg.Upstream.User, relationList(rels), ck.cfg.Upstream.User))
	}
}
