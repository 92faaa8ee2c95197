# pgveil demo configuration, used by `make demo` (cmd/pgveil-demo).
#
# The demo runner starts a throwaway PostgreSQL, loads testdata/demo/*.sql
# into the database "feedback", and sets the environment variables below.
# Every demo user's password is "demo-<login>" (e.g. marie / demo-marie);
# the verifiers were produced with `pgveil passwd`.
#
# The policy below (after the users) is documented in configs/README.md,
# "The demo policy". In short: user blocks give logins, passwords, roles
# and attributes; the identity block adds each employee's team and group
# from public.employees; rules decide which rows each role sees.

listen {
  address  = env("PGVEIL_DEMO_LISTEN", "127.0.0.1:6432")
  database = "feedback"
}

upstream {
  address  = env("PGVEIL_DEMO_UPSTREAM", "127.0.0.1:5432")
  database = "feedback"
  # The least-privilege service account created by testdata/demo/05_service_account.sql.
  user     = "pgveil_svc"
  password = env("PGVEIL_DEMO_UPSTREAM_PASSWORD")

  # Uncomment to share a pool of backends between sessions, each held for a
  # transaction only (the demo keeps one backend per session).
  # pool {
  #   mode = "transaction"
  #   size = 20
  # }
}

# The audit trail: one MAC-chained JSON line per statement and session
# event. Check it with `pgveil audit verify`, query it with `pgveil audit
# search` (the demo runner prints both commands).
audit {
  file     = env("PGVEIL_DEMO_AUDIT", "pgveil-demo-audit.log")
  hmac_key = env("PGVEIL_DEMO_AUDIT_KEY", "demo-audit-key")
}

# Prometheus metrics on /metrics, health on /healthz and /readyz.
admin {
  address = env("PGVEIL_DEMO_ADMIN", "127.0.0.1:9187")
}

# French analyst — password demo-marie
user "marie" {
  password = "SCRAM-SHA-256$4096:UhSmBtEvd3peBj1P+aiWVQ==$m1CEsm/JM1LTWyYa7PjZhlruMkwsJtDCrvwQ1+Do+8Q=:sJ1/SRpjmzujYW5rhvGW9Ht0EBUXt1WgDUar42e3Idw="
  roles      = ["country_analyst"]
  attributes = { country = "France" }
}

# central analyst (all countries) — password demo-hq
user "hq" {
  password = "SCRAM-SHA-256$4096:en3FQnOKAi5j3SoFbrNZfA==$WFynQmQQUb+ys1qRICfdLwPWkyyQT7k5pUtzTmcUj74=:QDquHuGo5D905I9rRMgApWdgizw/SgCTxs/wY7ftvpw="
  roles    = ["central_analyst"]
}

# sends surveys; may see personal data — password demo-survey_admin
user "survey_admin" {
  password = "SCRAM-SHA-256$4096:HG+Xh57c78rWWQ1QsWF8sw==$Y34ZN8zraVnZL3Fa2+i1h3AwBOsrK0ptqRhe6ZN9vg4=:WhF7YdbDJ/kepTB5Xj2R9dEZzi/E1B1OgOHB9z9sTfo="
  roles    = ["survey_admin"]
}

# manager of Frozen Food — password demo-paul
user "paul" {
  password = "SCRAM-SHA-256$4096:Xvyk9M+gnL28n0DY4qi7vA==$FesrI49QPC+2XJwkWBnGh+ehaiO/FaP0E41Doubiml8=:BlvBiYHrVVEFmmmM9BcUkVws+BSdiQnW4ZbPxtVaLH4="
  roles    = ["manager"]
}

# agent in Thick Crust — password demo-tom
user "tom" {
  password = "SCRAM-SHA-256$4096:z/q6cDiAXfcxPvoCA7AizQ==$Vf5LK2In4M52e1KNisa8TR/QNV3/qzTMTJT12h0VMZg=:P05qVfNgPfzhV5TiWB67tsqO89rDo/iXM9a0gc8wXk0="
  roles    = ["agent"]
}

# team lead of Desserts — password demo-lea
user "lea" {
  password = "SCRAM-SHA-256$4096:IQRU0ab/yAqpOe+frlJCDg==$GcVdCscmhbPPH2bPMWaGLZUxWPWQQC82qN8oHpjhKXA=:BkW/gevUEGEHylIgb3Z7lxvl/9Jn4MglbVLbgccUi88="
  roles    = ["team_lead"]
}

# outsourced agent, group vendor_a — password demo-bpo_a
user "bpo_a" {
  password = "SCRAM-SHA-256$4096:V3gIfxWxjlGtIcH5C8CDEw==$CX/5nqTtUqYGemD7SKmeWiNAJS7IZecaqgC9ojHBJ3k=:s/r6ds9cvIFbKq41wzvLSFyV1T8nJ9IodB6Z4S0cl+U="
  roles    = ["vendor_agent"]
}

# operations, groups vendor_a and vendor_b — password demo-ops
user "ops" {
  password = "SCRAM-SHA-256$4096:aNhSIvEiGNbI6JlxDKabdQ==$VztxuHhOJfKppPTh/OQuWBP8JnWwAeAhZoxffLN7NRU=:8yn7+VpJCm34WQXESytmM+nVtF0R10y9RGHcB2AqlXU="
  roles    = ["operations"]
}

# Banking App product team — password demo-bank_app
user "bank_app" {
  password = "SCRAM-SHA-256$4096:aDsb57YhlMBLlzAWBWcsqQ==$0pqT9GzqqBfUlDedyW0wYeO8uPeZ0lLTQfrswXPZhw8=:eU61ILqqhjPnX1xoUjeNOkpVLIytUZ/8xDGxCs856U8="
  roles    = ["product_team"]
}

# Metabase's shared connection, a BI service: alone it sees only the
# reference tables; with connection impersonation (SET ROLE <login>) it acts
# for hq and for every country analyst, under their policies — password
# demo-metabase
user "metabase" {
  password = "SCRAM-SHA-256$4096:dqGsuE5+431/ACUMnYbinw==$9Y9ESNwXJLMjG3NpJX6H/JvNcpofKomXxZGB4HTdnik=:ngnxLLsvY7SYhYyC2fMJjId1VgBVK8bPUt6M4bESKnQ="
  roles    = ["bi_service"]
  act_for  = ["hq", "role:country_analyst"]
}

# ---------------------------------------------------------------------------
# Who users are: team and group of every employee, read upstream. User
# blocks above win field by field (they give roles and attributes).

identity "employees" {
  query = "SELECT login, team_id AS team, group_name AS groups FROM public.employees"
}

# The organisation tree, read live: a team added to public.teams is covered
# by team_subtree at once.
teams {
  table         = "public.teams"
  id_column     = "id"
  parent_column = "parent_id"
}

# ---------------------------------------------------------------------------
# Roles. `scope` is a ceiling: rules grant rows, the ceiling bounds them.

# marie: responses and countries of her country; no personal data, no score.
role "country_analyst" {
  statements = ["select", "copy_out"]
}

# hq: every country, and the internal score.
role "central_analyst" {
  statements = ["select", "copy_out"]
  columns    = ["technical"]
}

# survey_admin: every response, with the respondents' contact and email.
role "survey_admin" {
  statements = ["select", "copy_out"]
  columns    = ["pii"]
}

# paul: his team and every team below it.
role "manager" {
  statements = ["select", "copy_out"]
  scope      = "team_subtree"
}

# tom: only the responses he handled.
role "agent" {
  statements = ["select"]
  scope      = "self"
}

# lea: her own team at most (see the escalations rule), and always the
# responses she handled herself.
role "team_lead" {
  statements = ["select", "copy_out"]
  scope      = "own_team"
  own_rows   = true
}

# bpo_a: the responses of the agents of her vendor.
role "vendor_agent" {
  statements = ["select"]
  scope      = "own_groups"
}

# ops: oversees the vendors, and sees the responses he handled himself.
role "operations" {
  statements = ["select", "copy_out"]
  own_rows   = true
}

# bank_app: feedback about the Banking App that needs action.
role "product_team" {
  statements = ["select"]
}

# metabase: no rule grants it responses; it reads them only while acting
# for a user. As itself it reads the reference tables (all_countries,
# reference_data).
role "bi_service" {
  statements = ["select"]
}

# ---------------------------------------------------------------------------
# Governed tables. Tables of public without a block (employees,
# team_surveys) are denied to every user.

schema "public" {
  default = "deny"
}

table "public.responses" {
  owner_column = "agent_login"
  team_column  = "team_id"

  column "contact" { class = "pii" }
  column "email" { class = "pii" }
  column "score" { class = "technical" }
}

# Follow-up notes on responses: a note is visible exactly when its response
# is, for every user, through the responses' rules (no rule of its own).
table "public.response_comments" {
  follows = { table = "public.responses", column = "response_id", key = "id" }

  column "author_email" { class = "pii" }
}

table "public.countries" {
  reference = true
}
table "public.surveys" {
  reference = true
}
table "public.teams" {
  reference = true
}

# ---------------------------------------------------------------------------
# Rules on responses.

rule "france_only" {
  tables = ["public.responses"]
  roles  = ["country_analyst"]
  where  = "country = me.country"
}

rule "all_responses" {
  tables = ["public.responses"]
  roles  = ["central_analyst", "survey_admin"]
  scope  = "all"
}

rule "managed_teams" {
  tables = ["public.responses"]
  roles  = ["manager"]
  scope  = "team_subtree"
}

rule "handled_by_me" {
  tables = ["public.responses"]
  roles  = ["agent"]
  scope  = "self"
}

rule "my_team" {
  tables = ["public.responses"]
  roles  = ["team_lead"]
  scope  = "own_team"
}

# Written once for every lead and manager: detractors (nps <= 3) anywhere.
# Each role's ceiling keeps its users within their teams: for lea (ceiling
# own_team) it adds nothing outside Desserts.
rule "escalations" {
  tables = ["public.responses"]
  roles  = ["manager", "team_lead"]
  where  = "nps <= 3"
}

# Team leads see only the surveys their team may see (public.team_surveys,
# itself denied to them: the policy reads it as the service account).
rule "team_surveys_only" {
  tables = ["public.responses"]
  roles  = ["team_lead"]
  kind   = "restrictive"
  where  = "survey_id IN (SELECT ts.survey_id FROM public.team_surveys ts WHERE ts.team_id = me.team)"
}

rule "my_vendor" {
  tables = ["public.responses"]
  roles  = ["vendor_agent"]
  scope  = "own_groups"
}

rule "vendor_oversight" {
  tables = ["public.responses"]
  roles  = ["operations"]
  scope  = "groups"
  groups = ["vendor_a", "vendor_b"]
}

rule "banking_app" {
  tables = ["public.responses"]
  roles  = ["product_team"]
  where  = "'Banking App' = ANY(tags)"
}

# The product team triages what needs action: praise is left out.
rule "banking_app_triage" {
  tables = ["public.responses"]
  roles  = ["product_team"]
  kind   = "restrictive"
  where  = "sentiment IN ('neutral', 'negative')"
}

# ---------------------------------------------------------------------------
# Rules on reference data.

rule "own_country" {
  tables = ["public.countries"]
  roles  = ["country_analyst"]
  where  = "name = me.country"
}

rule "all_countries" {
  tables = ["public.countries"]
  roles  = ["central_analyst", "survey_admin", "manager", "agent", "team_lead", "vendor_agent", "operations", "product_team", "bi_service"]
  scope  = "all"
}

# bi_service reads the reference tables as itself: Metabase's sync, which
# runs without impersonation, fills its filters' drop-downs from them.
rule "reference_data" {
  tables = ["public.surveys", "public.teams"]
  roles  = ["country_analyst", "central_analyst", "survey_admin", "manager", "agent", "team_lead", "vendor_agent", "operations", "product_team", "bi_service"]
  scope  = "all"
}

# ---------------------------------------------------------------------------
# Policy tests: `pgveil test --config configs/demo.hcl` checks what the
# rewrite alone decides (refusals, masked columns); with --upstream it also
# runs each statement, rewritten for the user, against the demo database.

test "marie sees French responses only" {
  user  = "marie"
  query = "SELECT DISTINCT country FROM responses"
  rows  = [["France"]]
}

test "marie sees every French response" {
  user  = "marie"
  query = "SELECT count(*) FROM responses"
  rows  = [[1171]]
}

test "marie sees France only among countries" {
  user  = "marie"
  query = "SELECT name FROM countries"
  rows  = [["France"]]
}

test "marie sees neither personal data nor the score" {
  user   = "marie"
  query  = "SELECT * FROM responses"
  masked = ["public.responses.contact", "public.responses.email", "public.responses.score"]
}

test "marie reads only NULL in masked columns" {
  user  = "marie"
  query = "SELECT count(*) FROM responses WHERE contact IS NOT NULL OR email IS NOT NULL OR score IS NOT NULL"
  rows  = [[0]]
}

test "hq sees every country and the score, no personal data" {
  user   = "hq"
  query  = "SELECT country, score, contact, email FROM responses"
  masked = ["public.responses.contact", "public.responses.email"]
}

test "hq sees responses from six countries" {
  user  = "hq"
  query = "SELECT count(DISTINCT country) FROM responses"
  rows  = [[6]]
}

test "survey_admin sees personal data but not the score" {
  user   = "survey_admin"
  query  = "SELECT contact, email, score FROM responses"
  masked = ["public.responses.score"]
}

test "tom sees only the responses he handled" {
  user  = "tom"
  query = "SELECT DISTINCT agent_login FROM responses"
  rows  = [["tom"]]
}

test "tom may not export" {
  user   = "tom"
  query  = "COPY responses TO STDOUT"
  denied = true
  rule   = "statement_kind"
}

test "paul sees Frozen Food and every team below it" {
  user      = "paul"
  query     = "SELECT DISTINCT team_id FROM responses"
  rows      = [[9], [10], [11]]
  unordered = true
}

test "lea sees no escalation of another team" {
  user  = "lea"
  query = "SELECT count(*) FROM responses WHERE team_id <> 11 AND nps <= 3"
  rows  = [[0]]
}

test "bpo_a sees the responses of vendor_a's agents" {
  user  = "bpo_a"
  query = "SELECT DISTINCT agent_login FROM responses ORDER BY agent_login"
  rows  = [["bpo_a"], ["bpo_a2"], ["bpo_a3"]]
}

test "bank_app sees no praise" {
  user  = "bank_app"
  query = "SELECT DISTINCT sentiment FROM responses ORDER BY sentiment"
  rows  = [["negative"], ["neutral"]]
}

test "marie sees the notes on French responses only" {
  user  = "marie"
  query = "SELECT DISTINCT r.country FROM response_comments c JOIN responses r ON r.id = c.response_id"
  rows  = [["France"]]
}

test "marie sees every note on a French response, no author email" {
  user   = "marie"
  query  = "SELECT count(*), count(author_email) FROM response_comments"
  rows   = [[177, 0]]
}

test "tom sees the notes on his responses, his colleagues' included" {
  user      = "tom"
  query     = "SELECT DISTINCT author FROM response_comments ORDER BY author"
  rows      = [["hq"], ["survey_admin"], ["tom"]]
}

test "employees are denied to everyone" {
  user   = "hq"
  query  = "SELECT login FROM employees"
  denied = true
  rule   = "ungoverned_table"
}

test "team_surveys are denied even to the team lead" {
  user   = "lea"
  query  = "SELECT * FROM public.team_surveys"
  denied = true
  rule   = "ungoverned_table"
}

test "nobody writes responses through pgveil" {
  user   = "survey_admin"
  query  = "DELETE FROM responses"
  denied = true
}

test "procedural code is refused" {
  user   = "hq"
  query  = "DO $$ BEGIN PERFORM 1; END $$"
  denied = true
  rule   = "procedural_code"
}
