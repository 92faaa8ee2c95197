# pgveil production policy: who sees which rows and columns. Install as
# /etc/pgveil/policy.hcl; `systemctl reload pgveil` applies edits, and a
# policy with an error is refused while the running one keeps serving.

# Users, teams and groups come from the HR tables upstream, read again
# every refresh and at every reload: no login needs a block here. A
# `password` column holding SCRAM-SHA-256 verifiers (`pgveil passwd`) lets
# them log in.
identity "employees" {
  query = "SELECT login, roles, team_id AS team, group_name AS groups, country, password FROM hr.pgveil_users"
  # Read again every minute (the default): a leaver is refused, a move
  # applies, without a reload.
  refresh = "1m"
}

teams {
  table         = "public.teams"
  id_column     = "id"
  parent_column = "parent_id"
}

role "country_analyst" {
  statements = ["select", "copy_out"]
}

role "central_analyst" {
  statements = ["select", "copy_out"]
  columns    = ["technical"]
}

role "survey_admin" {
  statements = ["select"]
  columns    = ["pii"]
}

role "manager" {
  statements = ["select"]
  scope      = "team_subtree"         # a ceiling: rules grant, the scope bounds
  own_rows   = true
}

# Tables nobody listed here are refused.
schema "public" {
  default = "deny"
}

table "public.responses" {
  owner_column = "agent_login"
  team_column  = "team_id"

  column "contact" { class = "pii" }
  column "email" {
    class      = "pii"
    mask       = "partial"
    keep_start = 1
    keep_end   = 4
  }
  column "score" { class = "technical" }
}

# Dimension tables filter dropdowns read: no row scope.
table "public.countries" {
  reference = true
}
table "public.teams" {
  reference = true
}

rule "own_country" {
  tables = ["public.responses"]
  roles  = ["country_analyst"]
  where  = "country = me.country"
}

rule "everything" {
  tables = ["public.responses"]
  roles  = ["central_analyst", "survey_admin"]
  scope  = "all"
}

rule "managed_teams" {
  tables = ["public.responses"]
  roles  = ["manager"]
  scope  = "team_subtree"
}
