package firewall

import "github.com/pgveil/pgveil/internal/sqlstate"

// Rule is one firewall rule: a reason pgveil refuses a statement.
type Rule struct {
	// Name is what refusals, the audit trail and the README call it.
	Name string
	// Code is the SQLSTATE of its refusals.
	Code string
	// Hint says what a user (often a BI tool's user, who did not write
	// the SQL) can do instead; it reaches the client as the error's HINT.
	// Empty when there is nothing useful to say.
	Hint string
	// Doc is the rule's line in the README's rule table: what it refuses,
	// in Markdown.
	Doc string
}

// Rules is the registry of firewall rules, in the order of the README's
// table. Every rule a refusal names is here (TestRulesInCode), and the
// README's table lists exactly these (TestReadme).
var Rules = []Rule{
	{Name: "statement_kind", Code: sqlstate.InsufficientPrivilege,
		Hint: "pgveil only forwards the statement kinds your roles allow: reads, and for some roles exports and scoped writes. Ask the DBA who maintains the pgveil policy if you need more.",
		Doc:  "statement kinds not on the allow-list (DDL, VACUUM, …), kinds the user's roles do not allow, and writes inside WITH (run them as statements of their own)"},
	{Name: "procedural_code", Code: sqlstate.InsufficientPrivilege,
		Doc: "DO and CALL"},
	{Name: "ddl", Code: sqlstate.InsufficientPrivilege,
		Doc: "CREATE FUNCTION, CREATE VIEW, CREATE TABLE AS"},
	{Name: "select_into", Code: sqlstate.InsufficientPrivilege,
		Doc: "SELECT INTO, which creates a table"},
	{Name: "listen_notify", Code: sqlstate.InsufficientPrivilege,
		Doc: "LISTEN, NOTIFY and the notification functions (pg_notify, …): notifications cross sessions (UNLISTEN, which stops nothing, passes)"},
	{Name: "two_phase_commit", Code: sqlstate.InsufficientPrivilege,
		Doc: "PREPARE TRANSACTION, COMMIT PREPARED, ROLLBACK PREPARED"},
	{Name: "merge", Code: sqlstate.InsufficientPrivilege,
		Doc: "MERGE"},
	{Name: "act_for", Code: sqlstate.InsufficientPrivilege,
		Hint: "Only a login whose user block has act_for may act for another user, with SET ROLE login or SET pgveil.act_for = 'login' as a statement of its own, for a user its act_for lists; RESET ROLE returns to the login.",
		Doc:  "SET ROLE, RESET ROLE and SET/RESET `pgveil.act_for` from a login without `act_for`; acting for a user outside the service's `act_for`, or no longer in it after a reload; such a switch with other statements in its text, pipelined after other statements, as SET LOCAL, or through set_config (see BI tools below)"},
	{Name: "pinned_settings", Code: sqlstate.InsufficientPrivilege,
		Hint: "pgveil fixes this setting for the session. Set application_name and formatting settings with SET, with set_config('name', …) naming the setting as a literal, or in the connection parameters.",
		Doc:  "SET/RESET of settings outside a formatting and limits allow-list (search_path, session_authorization, client_encoding, log_\\*, debug_\\*, trace_\\*, …), except a SET of search_path, client_encoding or standard_conforming_strings to the very value pgveil pins (drivers send SET NAMES 'UTF8' or SET search_path = public on connecting); `client_min_messages` other than notice, warning or error (below NOTICE the server sends DEBUG and LOG messages that quote the statements pgveil sends); set_config unless its first argument is a string literal naming a setting of that allow-list (a column, parameter or expression as the name is refused), and for client_min_messages a string literal value of the same list; application_name set to anything but one constant; `SET … FROM CURRENT` (its text names no value, which a transaction pool's replay of settings relies on)"},
	{Name: "explain_governed", Code: sqlstate.InsufficientPrivilege,
		Hint: "pgveil does not show plans of governed tables. Run the query without EXPLAIN.",
		Doc:  "EXPLAIN (with or without ANALYZE) of statements on governed tables"},
	{Name: "copy_file", Code: sqlstate.InsufficientPrivilege,
		Hint: "Use COPY … TO STDOUT (psql's \\copy) instead of a server file or program.",
		Doc:  "COPY to or from files and programs"},
	{Name: "copy_columns", Code: sqlstate.UndefinedColumn,
		Doc: "a column list of COPY … TO naming something other than a column of the governed table (42703), a column twice (42701), or a generated column (42P10), as PostgreSQL refuses it: pgveil copies through a SELECT, where the name could read the whole row or call a function"},
	{Name: "copy_relation", Code: sqlstate.WrongObjectType,
		Hint: "Use COPY (SELECT * FROM …) TO STDOUT, which reads the relation as a query does.",
		Doc:  "COPY … TO of a governed relation that is not a plain table (a partitioned table, a view, a materialized view, a foreign table), as PostgreSQL refuses it: pgveil copies through a SELECT, which would read it"},
	{Name: "copy_option", Code: sqlstate.InsufficientPrivilege,
		Doc: "COPY options other than HEADER and FREEZE given without a value (pg_query's deparser cannot print them)"},
	{Name: "function", Code: sqlstate.InsufficientPrivilege,
		Hint: "Only PostgreSQL's built-in functions and those a role lists may be called through pgveil.",
		Doc:  "functions and operators outside pg_catalog not allowed by a role; function names with a database; an operator qualified with a schema other than pg_catalog (`OPERATOR(public.<@)`: write it unqualified, its schema on `upstream.search_path`, as an extension's operators such as ltree's `<@` are used)"},
	{Name: "unclassified_function", Code: sqlstate.InsufficientPrivilege,
		Hint: "pgveil classifies every function of the PostgreSQL versions it knows; this one is newer, so it is refused until pgveil's classification (rewrite/functions.tsv) names it.",
		Doc:  "pg_catalog functions that [rewrite/functions.tsv](rewrite/functions.tsv) does not name (a newer PostgreSQL's); it classifies every pg_catalog function of PostgreSQL 15 as allowed, refused by one of the rules below, or answered NULL, and a test fails when the upstream has a function it lacks"},
	{Name: "unclassified_relation", Code: sqlstate.InsufficientPrivilege,
		Hint: "pgveil classifies every pg_catalog relation of the PostgreSQL versions it knows; this one is newer, so it is refused until pgveil's classification (rewrite/relations.tsv) names it.",
		Doc:  "pg_catalog relations that [rewrite/relations.tsv](rewrite/relations.tsv) does not name, in the same way"},
	{Name: "files", Code: sqlstate.InsufficientPrivilege,
		Hint: "pgveil hides the server's files, directories and configuration files. Ask the DBA for what you need from them; turn off the tool's server or file browser for this connection.",
		Doc:  "pg_catalog functions and views that read files, directories or configuration files, or show file paths or file nodes (pg_class shows no file node for user relations); pg_tablespace_location answers NULL (psql's \\db)"},
	{Name: "query_text", Code: sqlstate.InsufficientPrivilege,
		Hint: "pgveil checks and rewrites every query before it runs; a query given to a function as text would run unchecked. Send the query itself as a statement.",
		Doc:  "functions that run a query given as text, or read a table or cursor named by text (query_to_xml, ts_stat, …), where the rewriter never sees it"},
	{Name: "large_objects", Code: sqlstate.InsufficientPrivilege,
		Hint: "pgveil does not serve large objects, which are stored outside every table a policy governs. Ask the DBA to keep such data in a table column (bytea) a policy publishes.",
		Doc:  "large objects, stored outside every table a policy governs"},
	{Name: "server_control", Code: sqlstate.InsufficientPrivilege,
		Doc: "functions that change the server: reload, signals, backups, replication slots and origins, WAL, index maintenance"},
	{Name: "sequences", Code: sqlstate.InsufficientPrivilege,
		Hint: "pgveil hides sequence values, which count the rows of the tables they number.",
		Doc:  "reading or advancing sequences (nextval, setval, pg_sequences' last_value), which count the rows of the tables they number"},
	{Name: "statement_text", Code: sqlstate.InsufficientPrivilege,
		Hint: "pgveil hides the text of statements (cursors, prepared statements, activity, pg_stat_statements): it holds the rewritten SQL. Keep the statement text on the client side.",
		Doc:  "the text of statements, which holds the rewritten SQL: pg_cursor(), pg_prepared_statement(), current_query(), pg_cursors, pg_prepared_statements, pg_stat_activity, pg_backend_memory_contexts; pg_stat_statements, pg_stat_monitor and similar extensions by name in any schema, whatever the policy allows"},
	{Name: "server_state", Code: sqlstate.InsufficientPrivilege,
		Hint: "pgveil hides other sessions, server internals and user mappings (whose options hold the upstream account's credentials). Turn off the tool's session or lock monitor for this connection; ask the DBA which foreign servers are mapped.",
		Doc:  "other sessions and server internals: pg_locks and pg_lock_status(), blocking pids, transaction ids and snapshots (txid_current, pg_current_snapshot, pg_xact_status…), WAL positions and the control file, pg_backend_pid, server addresses, start time, shared memory, replication slots, pg_config, user mappings and their options (pg_user_mappings, information_schema.user_mapping_options: the upstream account's credentials)"},
	{Name: "advisory_locks", Code: sqlstate.InsufficientPrivilege,
		Hint: "Advisory locks are shared by every session of the server, across users, so pgveil does not allow them. Coordinate through a table instead.",
		Doc:  "advisory locks (a covert channel between users)"},
	{Name: "statistics", Code: sqlstate.InsufficientPrivilege,
		Hint: "pgveil hides table statistics, which reveal how many rows a table holds beyond yours (sizes are answered NULL). Turn off the tool's table statistics display for this connection.",
		Doc:  "pg_stats, pg_statistic, pg_stat_\\* and pg_statio_\\* views (pg_stat_xact_\\*, pg_stat_\\*_indexes, pg_stat_progress_\\* included), statistics functions; the size functions (pg_relation_size, pg_table_size, pg_total_relation_size, pg_indexes_size, pg_database_size, pg_tablespace_size) answer NULL; pg_class shows no row estimates for user tables, and pg_stat_{all,user,sys}_tables and pg_statio_{all,user,sys}_tables are served with relid, schemaname and relname only, every counter and timestamp NULL"},
	{Name: "internal_function", Code: sqlstate.InsufficientPrivilege,
		Hint: "This is a support function PostgreSQL calls itself (for types, indexes, aggregates or triggers); call the function or operator it supports.",
		Doc:  "pg_catalog support functions PostgreSQL calls itself (type receive, index, planner, aggregate state, trigger and handler functions)"},
	{Name: "ungoverned_table", Code: sqlstate.InsufficientPrivilege,
		Hint: "pgveil does not publish this table to you; the message says why. Ask the DBA who maintains the pgveil policy if you need it.",
		Doc:  "tables without a table block in a schema whose default is deny; and relations no one block governs alone: matched by equally specific blocks, or inheriting through lines whose blocks differ (add a block naming it), a parent whose partitions or children are governed otherwise, a view a pattern governs reading past it, and a partition whose bound (its own or an ancestor's) reads a column masked for the user (which rows it holds would tell the value: query the partitioned table)"},
	{Name: "catalog", Code: sqlstate.InsufficientPrivilege,
		Doc: "any write (INSERT, UPDATE, DELETE, COPY FROM) of a pg_catalog, information_schema or pg_toast relation, whatever is served of it to read; pg_catalog and information_schema relations the rules above allow but a policy denies (pgveil's compiled policies open them all; the rule is there for other Policy implementations)"},
	{Name: "write_governed", Code: sqlstate.InsufficientPrivilege,
		Doc: "ON CONFLICT, UPDATE … FROM, DELETE … USING and other writes pgveil cannot scope on governed tables; in a scoped UPDATE or DELETE's WHERE, a column reference naming a database or another schema, or a system column (`ctid`, `xmin`, …), which would read the real table; a system column in SET or RETURNING, which reads the real row (a transaction id, the table's size in pages); the target's whole row in SET or RETURNING, and a bare name pgveil cannot place in a governed write (both could read columns added upstream since the catalog snapshot)"},
	{Name: "policy_input", Code: sqlstate.InsufficientPrivilege,
		Hint: "The policy reads this table, or a table a write of it would write through a rule or as a view's base table: change it upstream, as its owner.",
		Doc:  "any write of a table the policy itself reads: the `teams` table, a table of an identity query, of a rule's or a mask's subquery, the tables such a relation reads when it is a view (a manager who may update could otherwise rewrite the tree her scope walks); and any write of a table or view whose write may write one of them, through a rule (`CREATE RULE … DO ALSO UPDATE`) or as a view's base table (triggers are not followed)"},
	{Name: "write_scope", Code: sqlstate.InsufficientPrivilege,
		Hint: "Your row scope limits the rows you read; pgveil cannot check that a row you insert, or a change of a column the scope reads, stays within it. Such writes need a role without a row scope on this table (an application's own login, for instance): ask the DBA who maintains the pgveil policy.",
		Doc:  "writes that could leave the scope: INSERT and COPY FROM into a table with a row scope, UPDATE of a column the scope reads, or of one a generated column the scope reads is computed from"},
	{Name: "write_key", Code: sqlstate.InsufficientPrivilege,
		Doc: "writes a key's check would answer with a hidden row: UPDATE of a unique key's column under a row scope (or of a column a generated key column is computed from); a foreign key's column referencing a table the user may not read in full (every row and column); DELETE, or UPDATE of a referenced column, of a table such a table's foreign key references, at any depth of its cascade; DELETE of a row whose masked column a foreign key references (the cascade would tell the value); INSERT or COPY leaving to its default a column a foreign key of such a table references without validating it, a column whose own foreign key references such a table (its check would tell whether the default's row exists), or a column a unique key holds with a column masked for the user (its default, or a NULL a key of expressions or NULLS NOT DISTINCT compares, meets the real masked values: a duplicate would tell whether a row holds it); UPDATE of a referenced column, or DELETE under an ON DELETE SET DEFAULT key (or a SET NULL one, whose change meets the ON UPDATE actions of the keys referencing the column), whose cascade writes a column another foreign key of which references a table the user may not read in full (its check would tell whether a hidden row holds the value written); UPDATE of a column an index of any kind holds with a column masked for the user (whether the index row fits its size limit would tell the masked value's length); UPDATE of a column a CHECK constraint, or a partition key of the table's partition tree, reads with a column masked for the user (the verdict, or the partition the row moves to, would answer a question about the masked value); writes of views and foreign tables"},
	{Name: "masked_write", Code: sqlstate.InsufficientPrivilege,
		Doc: "SET/RETURNING reading masked columns; UPDATE, INSERT and COPY FROM writing one (a unique constraint on it would tell whether another row holds the value)"},
	{Name: "internal", Code: sqlstate.InsufficientPrivilege,
		Hint: "The schema pgveil holds pgveil's own keys and functions; no statement may use it.",
		Doc:  "functions of the schema `pgveil`, which holds the hash masks' keys (its relations are refused as `ungoverned_table`)"},
	{Name: "grammar_version", Code: sqlstate.SyntaxError,
		Hint: "pgveil parses with a newer PostgreSQL grammar than the server's, and the two read this word or number differently. Quote a word as an identifier (\"word\") if it names a column, table or alias; write a number in decimal (31, not 0x1F; 1000, not 1_000); otherwise the construct is not available through pgveil on this server version.",
		Doc:  "words the upstream's grammar reads differently from pgveil's parser (PostgreSQL 17), used unquoted where the two grammars may read them apart: with PostgreSQL 15 upstream, SYSTEM_USER and the SQL/JSON words (JSON, JSON_OBJECT, JSON_TABLE, …), except as a type after `::` or `AS` (`x::json`, `CAST(x AS JSON)`), a typed literal `json '…'`, an alias after `AS` or a name after a dot; with an upstream before PostgreSQL 16, the numbers it introduced (`0x1F`, `0o17`, `0b101`, `1_000`), which it reads as a syntax error and a rebuilt statement would forward as their value; see [SECURITY.md](SECURITY.md)"},
	{Name: "tablesample", Code: sqlstate.InsufficientPrivilege,
		Doc: "TABLESAMPLE on governed tables"},
	{Name: "cross_database", Code: sqlstate.InsufficientPrivilege,
		Doc: "references to other databases"},
	{Name: "temp_objects", Code: sqlstate.InsufficientPrivilege,
		Hint: "pgveil does not allow temporary tables. In Tableau, set the capabilities CAP_CREATE_TEMP_TABLES and CAP_SELECT_INTO to 'no' in a TDC file; other tools have a similar option, or work without them.",
		Doc:  "temporary tables and relations"},
	{Name: "locking", Code: sqlstate.InsufficientPrivilege,
		Doc: "FOR UPDATE, FOR SHARE and the other row locks in a statement that reads a governed table"},
	{Name: "complexity", Code: sqlstate.InsufficientPrivilege,
		Doc: "statements too costly to parse or rewrite, refused before the work: before parsing, texts over 1 MiB, over 50 000 tokens (words, numbers, punctuation), over 10 000 operators or parentheses nested deeper than 1 000 (pg_query's parser recurses once per level and would overflow its stack); once parsed, trees deeper than 2 000 levels, statements referencing over 1 000 relations or holding over 1 000 SELECTs (subqueries, set operation arms, CTEs, VALUES lists); rewrites longer than 4 MiB. The largest statements of the BI tools tested are 4.5 KiB, 270 tokens, 7 relations; see [Statement limits](#how-the-proxy-behaves)"},
	{Name: "syntax", Code: sqlstate.SyntaxError,
		Doc: "statements that do not parse, parameters ($n) a statement does not have, a field or subscript of a constant; a rewritten statement holding a NUL byte (08P01)"},
	{Name: "unknown_relation", Code: sqlstate.UndefinedTable,
		Doc: "relations (42P01), operators (42883) and types (42704) missing from pgveil's catalog snapshot, after one refresh of it: an operator or a cast created since it was read could call a function the policy refuses; columns (42703) a governed write names that the snapshot lacks, which would read the real row"},
	{Name: "no_policy", Code: sqlstate.InsufficientPrivilege,
		Doc: "every statement of a login whose policy does not compile"},
	{Name: "rewrite", Code: sqlstate.InsufficientPrivilege,
		Doc: "statements the rewriter could not rewrite, or whose rewrite does not parse back into as many statements (fail closed)"},
	{Name: "internal_error", Code: sqlstate.InsufficientPrivilege,
		Doc: "statements whose check failed with an unexpected error (fail closed; the message reveals nothing of the error)"},
	{Name: "function_call", Code: sqlstate.InsufficientPrivilege,
		Hint: "Call the function from a SELECT statement instead.",
		Doc:  "the fast-path FunctionCall message, which calls a function by OID past every statement check"},
	{Name: "audit_unavailable", Code: sqlstate.IOError,
		Hint: "pgveil cannot write its audit trail and does not run statements it cannot record. Try again later; the operator must free the audit log's disk.",
		Doc:  "with `audit { on_error = \"refuse\" }`, every statement (Query and Execute) while the audit trail cannot be written: from a failed write or fsync of the audit file until a write and its fsync succeed (58030)"},
	{Name: "transaction_pooling", Code: sqlstate.FeatureNotSupported,
		Hint: "Prepare statements with the extended protocol (every driver's prepared statements) instead: pgveil keeps those for the session from one transaction to the next.",
		Doc:  "in transaction pooling (`upstream { pool { mode = \"transaction\" } }`), SQL PREPARE, EXECUTE and DEALLOCATE (but a DEALLOCATE of the session's own protocol-level statements, as psqlODBC sends, and DEALLOCATE ALL, as psycopg 3 sends): a shared backend's statement names would reach other sessions' statements"},
	{Name: "policy_mismatch", Code: sqlstate.InsufficientPrivilege,
		Hint: "The database changed since pgveil loaded its policy, which no longer matches this table. Ask the DBA who maintains the pgveil policy to run pgveil check --upstream, update the policy and reload pgveil.",
		Doc:  "tables the policy no longer matches after DDL run upstream since it was loaded: a table a table block governed renamed or moved (to a name another block, or no block, governs), a column a column block classifies renamed or dropped, a name a table block, mask or rule reads gone (what `pgveil check --upstream` reports as an error), and the views and parents reading them; refused until a reload with a policy that matches (see DDL while pgveil runs)"},
	{Name: "unsettled_portal", Code: sqlstate.InsufficientPrivilege,
		Hint: "Wait for the answer to the portal's Bind (its Sync's ReadyForQuery) before executing it in a later batch, and give protocol portals and SQL cursors different names.",
		Doc:  "an Execute of a portal that may run another statement than its last Bind's, which pgveil could not tell apart for the audit trail, the acting user or a transaction pool's settings: pipelined in a later batch than that Bind, not answered yet, which may fail (a named portal that exists, a wrong parameter) and leave the portal as it was; or of a name a cursor was DECLAREd under since that Bind (a COMMIT destroyed its portal), or is being declared under"},
	{Name: "policy_changed", Code: sqlstate.InsufficientPrivilege,
		Hint: "A reload, a change of the identity rows upstream (read every refresh of the identity blocks), a switch of the user a BI service acts for (SET ROLE), or a change of a directory login's groups changed the policy in force: DECLARE the cursor or prepare the statement again (or reconnect) to run it under that policy.",
		Doc:  "after a policy reload, or an identity refresh that changed any identity row (anyone's), running a statement, portal or cursor that may have been checked under the old policy (see live reload); likewise after a BI service switched the user it acts for, or a reload changed a directory login's groups"},
}

// byName indexes Rules.
var byName = func() map[string]Rule {
	m := make(map[string]Rule, len(Rules))
	for _, r := range Rules {
		m[r.Name] = r
	}
	return m
}()

// Known reports whether the registry has a rule named name.
func Known(name string) bool {
	_, ok := byName[name]
	return ok
}

// Names returns the names of the registry's rules, in its order.
func Names() []string {
	names := make([]string, len(Rules))
	for i, r := range Rules {
		names[i] = r.Name
	}
	return names
}

// Lookup returns the rule named name. A name the registry lacks gets a
// rule with SQLSTATE 42501 and no hint: a refusal stays a refusal.
func Lookup(name string) Rule {
	if r, ok := byName[name]; ok {
		return r
	}
	return Rule{Name: name, Code: defaultCode}
}
