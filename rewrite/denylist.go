package rewrite

import (
	"slices"
	"sort"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// catalogRelationRule returns the firewall rule refusing the pg_catalog
// relation name, or "" when catalogRelations allows it (the policy then
// decides) or masks it (maskedCatalogRelations serves it). A relation the
// classification does not name is refused: a newer PostgreSQL may add
// views of anything.
func catalogRelationRule(name string) string {
	c, ok := catalogRelations[name]
	switch {
	case !ok:
		return ruleUnclassifiedRelation
	case c.class == classRefuse:
		return c.rule
	case c.class == classMasked:
		if _, served := maskedCatalogRelations[name]; !served {
			// Classified masked, but catalogmask.go does not serve it.
			return ruleUnclassifiedRelation
		}
	}
	return ""
}

// catalogRelationReason says why the pg_catalog relation name is refused.
func catalogRelationReason(name string) string {
	if c, ok := catalogRelations[name]; ok && c.class == classRefuse {
		return "pg_catalog." + name + " reveals " + strings.ReplaceAll(c.rule, "_", " ")
	}
	return "pg_catalog." + name + " is not classified by this version of pgveil, so it is not allowed"
}

// informationSchemaRefused names the information_schema views that show
// what a refused pg_catalog relation holds, with the rule refusing it:
// information_schema is otherwise open, as pg_catalog's allowed relations
// are. user_mapping_options shows the options of the current user's
// mappings (the upstream account's: a postgres_fdw password) as
// pg_user_mappings does; _pg_user_mappings, its base, holds them all.
//
// NOTE: names are PostgreSQL 13-18's; a view a newer version adds is
// open, so a new information_schema view of credentials, statistics or
// statement text must be added here.
var informationSchemaRefused = map[string]string{
	"user_mapping_options": "server_state",
	"_pg_user_mappings":    "server_state",
}

// informationSchemaReason says why the information_schema view name is
// refused.
func informationSchemaReason(name string) string {
	return "information_schema." + name + " reveals " + strings.ReplaceAll(informationSchemaRefused[name], "_", " ") +
		": the upstream account's user mapping options (credentials)"
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

// pinnedSettings are the settings pgveil pins upstream that a client may
// SET to the pinned value only (setsPinnedValue).
var pinnedSettings = map[string]bool{"search_path": true, "client_encoding": true, "standard_conforming_strings": true}

// setsPinnedValue reports whether SET name = args, a setting pgveil
// pins upstream, sets the value pinned already: drivers and tools send
// SET client_encoding = 'UTF8' or SET search_path = public on connecting,
// and such a SET changes nothing. search is the pinned search path.
//
// NOTE: the values compare as PostgreSQL reads them: each element of
// args is a string constant, the identifier downcased by the parser or
// the literal as written (search_path quotes it as an identifier).
func setsPinnedValue(name string, args []*pg_query.Node, search []string) bool {
	vals := make([]string, 0, len(args))
	for _, a := range args {
		c := a.GetAConst()
		if c == nil || c.GetSval() == nil {
			return false
		}
		vals = append(vals, c.GetSval().Sval)
	}
	switch name {
	case "search_path":
		return len(vals) > 0 && slices.Equal(vals, search)
	case "client_encoding":
		// PostgreSQL ignores case and punctuation in encoding names;
		// UNICODE is UTF8's alias.
		if len(vals) != 1 {
			return false
		}
		clean := strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
				return r
			}
			if r >= 'A' && r <= 'Z' {
				return r + 'a' - 'A'
			}
			return -1
		}, vals[0])
		return clean == "utf8" || clean == "unicode"
	case "standard_conforming_strings":
		return len(vals) == 1 && slices.Contains([]string{"on", "true", "yes", "1"}, strings.ToLower(vals[0]))
	}
	return false
}

// pinnedValueText is the value pgveil pins setting to, for messages.
func pinnedValueText(setting string, search []string) string {
	switch setting {
	case "search_path":
		return strings.Join(search, ", ")
	case "client_encoding":
		return "UTF8"
	}
	return "on"
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
	// More of the planner's costs and switches, which analysts and BI
	// tools tune: a plan never crosses the OFFSET 0 fence of a scoped
	// subquery, whatever they say.
	"max_parallel_workers_per_gather": true, "parallel_setup_cost": true, "parallel_tuple_cost": true,
	"effective_cache_size": true, "seq_page_cost": true, "cpu_tuple_cost": true, "cpu_index_tuple_cost": true,
	"cpu_operator_cost": true, "hash_mem_multiplier": true, "enable_hashagg": true, "enable_material": true,
	"enable_indexonlyscan": true, "enable_memoize": true, "enable_incremental_sort": true, "enable_gathermerge": true,
	"enable_parallel_hash": true, "enable_parallel_append": true, "enable_partitionwise_join": true,
	"enable_partitionwise_aggregate": true, "enable_partition_pruning": true, "enable_tidscan": true,
}
