package rewrite

import (
	"sort"
	"strings"
)

// deniedFunctions are pg_catalog functions no user may call through
// pgveil: they read files or other tables by name, reach large objects,
// notify, change pinned settings, signal backends, or reveal statistics
// of governed tables (row counts, sizes). set_config is checked by
// setConfigProblem instead: allowed for the settings SET may change.
var deniedFunctions = map[string]string{
	// Files and the server.
	"pg_read_file": "files", "pg_read_binary_file": "files", "pg_ls_dir": "files",
	"pg_stat_file": "files", "pg_ls_logdir": "files", "pg_ls_waldir": "files",
	"pg_ls_tmpdir": "files", "pg_ls_archive_statusdir": "files", "pg_ls_logicalmapdir": "files",
	"pg_ls_logicalsnapdir": "files", "pg_ls_replslotdir": "files", "pg_current_logfile": "files",
	"pg_reload_conf": "server_control", "pg_rotate_logfile": "server_control", "pg_promote": "server_control",
	"pg_terminate_backend": "server_control", "pg_cancel_backend": "server_control",
	"pg_log_backend_memory_contexts": "server_control", "pg_switch_wal": "server_control",
	"pg_backup_start": "server_control", "pg_backup_stop": "server_control",
	"pg_create_restore_point": "server_control", "pg_export_snapshot": "server_control",
	"pg_logical_emit_message": "server_control",
	// Queries run from text: they would read tables the rewriter never sees.
	"query_to_xml": "query_text", "query_to_xmlschema": "query_text", "query_to_xml_and_xmlschema": "query_text",
	"table_to_xml": "query_text", "table_to_xmlschema": "query_text", "table_to_xml_and_xmlschema": "query_text",
	"cursor_to_xml": "query_text", "cursor_to_xmlschema": "query_text",
	"schema_to_xml": "query_text", "schema_to_xmlschema": "query_text", "schema_to_xml_and_xmlschema": "query_text",
	"database_to_xml": "query_text", "database_to_xmlschema": "query_text", "database_to_xml_and_xmlschema": "query_text",
	"ts_stat": "query_text", "ts_rewrite": "query_text",
	// Large objects.
	"lo_import": "large_objects", "lo_export": "large_objects", "lo_get": "large_objects", "lo_put": "large_objects",
	"lo_open": "large_objects", "lo_close": "large_objects", "lo_creat": "large_objects", "lo_create": "large_objects",
	"lo_unlink": "large_objects", "loread": "large_objects", "lowrite": "large_objects", "lo_from_bytea": "large_objects",
	"lo_truncate": "large_objects", "lo_truncate64": "large_objects", "lo_lseek": "large_objects", "lo_lseek64": "large_objects",
	"lo_tell": "large_objects", "lo_tell64": "large_objects",
	// Notifications and settings.
	"pg_notify":  "listen_notify",
	"set_config": "pinned_settings", // but see setConfigProblem
	// Statistics and sizes of relations.
	"pg_relation_size": "statistics", "pg_total_relation_size": "statistics", "pg_table_size": "statistics",
	"pg_indexes_size": "statistics", "pg_stat_get_activity": "statistics",
	// Sequences count the rows of the tables they number, and nextval
	// writes.
	"setval": "sequences", "nextval": "sequences", "currval": "sequences", "lastval": "sequences",
	"pg_sequence_last_value": "sequences",
	// Sizes and the statements of this session (they hold the rewritten
	// SQL, with policy predicates and mask keys).
	"pg_database_size": "statistics", "pg_tablespace_size": "statistics",
	"current_query": "server_state",
	// currtid and currtid2 follow a tuple of any table by name.
	"currtid": "statistics", "currtid2": "statistics",
}

// deniedFunctionPrefixes deny whole families.
var deniedFunctionPrefixes = map[string]string{
	"pg_stat_get_":             "statistics",
	"pg_stat_reset":            "statistics",
	"pg_create_":               "server_control",
	"pg_drop_replication_slot": "server_control",
	"pg_replication_":          "server_control",
	"pg_file_":                 "files",
}

// deniedFunction returns the firewall rule refusing pg_catalog function
// name, or "".
func deniedFunction(name string) string {
	if r := deniedFunctions[name]; r != "" {
		return r
	}
	for p, r := range deniedFunctionPrefixes {
		if strings.HasPrefix(name, p) {
			return r
		}
	}
	return ""
}

// deniedCatalogRelation returns the firewall rule refusing a pg_catalog
// relation, or "": views of statistics (which summarise governed data)
// and of other sessions. The relations of maskedCatalogRelations (such as
// pg_stat_user_tables) are served with their statistics hidden instead:
// access checks them first.
func deniedCatalogRelation(name string) string {
	switch {
	case name == "pg_stats" || name == "pg_stats_ext" || name == "pg_stats_ext_exprs" ||
		name == "pg_statistic" || name == "pg_statistic_ext_data":
		return "statistics"
	case strings.HasPrefix(name, "pg_stat_") || strings.HasPrefix(name, "pg_statio_"):
		return "statistics"
	case name == "pg_locks" || name == "pg_prepared_xacts" || name == "pg_largeobject" ||
		name == "pg_largeobject_metadata" || name == "pg_file_settings" || name == "pg_hba_file_rules" ||
		name == "pg_ident_file_rules" || name == "pg_authid" || name == "pg_shadow" || name == "pg_user_mappings" ||
		name == "pg_cursors" || name == "pg_prepared_statements":
		return "server_state"
	case name == "pg_sequences":
		// Its last_value is the highest number a sequence handed out: a
		// count of the rows of the table it numbers. The catalog table
		// pg_sequence holds only each sequence's definition (start,
		// increment, bounds, cache, cycle), as CREATE SEQUENCE gave it;
		// SQLAlchemy's column reflection reads it for identity columns.
		return "sequences"
	}
	return ""
}

// settingValues restricts the values of some allowedSettings:
// client_min_messages below NOTICE would have the server send the client
// DEBUG and LOG messages, which quote the statements pgveil sends (the
// rewritten SQL, with policy predicates: "parse <unnamed>: …", and
// log_statement's "statement: …"). pgveil pins it to notice at startup,
// so RESET and SET … TO DEFAULT go back there.
//
// NOTE: a check of a value is a check of a constant: readsConstantValues
// must keep such statements out of the caches shared between texts that
// differ only in constants.
var settingValues = map[string]map[string]bool{
	"client_min_messages": {"notice": true, "warning": true, "error": true},
}

// settingValueAllowed reports whether setting may take the value v: any
// value, unless settingValues restricts it.
func settingValueAllowed(setting, v string) bool {
	allowed, ok := settingValues[setting]
	return !ok || allowed[strings.ToLower(v)]
}

// allowedValuesText lists the values settingValues allows setting, for
// messages.
func allowedValuesText(setting string) string {
	var vs []string
	for v := range settingValues[setting] {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	return strings.Join(vs, ", ")
}

// allowedSettings are the settings a client may SET, SET LOCAL or RESET:
// they change formatting and resource limits, never how SQL parses or
// resolves names, and never the session's identity.
var allowedSettings = map[string]bool{
	"application_name": true, "datestyle": true, "timezone": true, "intervalstyle": true,
	"extra_float_digits": true, "bytea_output": true, "client_min_messages": true,
	"lc_monetary": true, "lc_numeric": true, "lc_time": true,
	"statement_timeout": true, "lock_timeout": true, "idle_in_transaction_session_timeout": true,
	"default_transaction_isolation": true, "default_transaction_read_only": true,
	"default_transaction_deferrable": true, "transaction_isolation": true, "transaction_read_only": true,
	"transaction_deferrable": true, "work_mem": true, "geqo": true, "jit": true,
	"enable_seqscan": true, "enable_indexscan": true, "enable_bitmapscan": true, "enable_hashjoin": true,
	"enable_mergejoin": true, "enable_nestloop": true, "enable_sort": true, "random_page_cost": true,
	"synchronous_commit": true, "xmloption": true,
	// SET TRANSACTION / SET SESSION CHARACTERISTICS arrive as these names.
	"transaction": true, "session characteristics": true,
	"timezone_abbreviations": true, "join_collapse_limit": true, "from_collapse_limit": true,
	"cursor_tuple_fraction": true, "plan_cache_mode": true,
}
