package rewrite

// ruleHints say, for a refusal by each firewall rule, what a user (often
// a BI tool's user, who did not write the SQL) can do instead. They reach
// the client as the error's HINT.
var ruleHints = map[string]string{
	"statement_kind":        "pgveil only forwards the statement kinds your roles allow: reads, and for some roles exports and scoped writes. Ask the DBA who maintains the pgveil policy if you need more.",
	"temp_objects":          "pgveil does not allow temporary tables. In Tableau, set the capabilities CAP_CREATE_TEMP_TABLES and CAP_SELECT_INTO to 'no' in a TDC file; other tools have a similar option, or work without them.",
	"internal":              "The schema pgveil holds pgveil's own keys and functions; no statement may use it.",
	"grammar_version":       "pgveil parses with a newer PostgreSQL grammar than the server's, and the two read this word differently. Quote it as an identifier (\"word\") if it names a column, table or alias; otherwise the construct is not available through pgveil on this server version.",
	"pinned_settings":       "pgveil fixes this setting for the session. Set application_name and formatting settings with SET, with set_config('name', …) naming the setting as a literal, or in the connection parameters.",
	"statistics":            "pgveil hides table statistics, which reveal how many rows a table holds beyond yours (sizes are answered NULL). Turn off the tool's table statistics display for this connection.",
	"server_state":          "pgveil hides other sessions and server internals. Turn off the tool's session or lock monitor for this connection.",
	"sequences":             "pgveil hides sequence values, which count the rows of the tables they number.",
	"statement_text":        "pgveil hides the text of statements (cursors, prepared statements, activity, pg_stat_statements): it holds the rewritten SQL. Keep the statement text on the client side.",
	"advisory_locks":        "Advisory locks are shared by every session of the server, across users, so pgveil does not allow them. Coordinate through a table instead.",
	"unclassified_function": "pgveil classifies every function of the PostgreSQL versions it knows; this one is newer, so it is refused until pgveil's classification (rewrite/functions.tsv) names it.",
	"unclassified_relation": "pgveil classifies every pg_catalog relation of the PostgreSQL versions it knows; this one is newer, so it is refused until pgveil's classification (rewrite/relations.tsv) names it.",
	"internal_function":     "This is a support function PostgreSQL calls itself (for types, indexes, aggregates or triggers); call the function or operator it supports.",
	"ungoverned_table":      "This table is not published through pgveil. Ask the DBA who maintains the pgveil policy to add a table block for it.",
	"explain_governed":      "pgveil does not show plans of governed tables. Run the query without EXPLAIN.",
	"function":              "Only PostgreSQL's built-in functions and those a role lists may be called through pgveil.",
	"act_for":               "Only a login whose user block has act_for may act for another user, with SET ROLE login or SET pgveil.act_for = 'login' as a statement of its own, for a user its act_for lists; RESET ROLE returns to the login.",
	"copy_file":             "Use COPY … TO STDOUT (psql's \\copy) instead of a server file or program.",
}
