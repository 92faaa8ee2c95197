# Every policy block and attribute, in a configuration that loads.
listen {
  address = "127.0.0.1:6432"
}

upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
  password = env("PGVEIL_UPSTREAM_PASSWORD")
}

user "marie" {
  password   = "SCRAM-SHA-256$4096:tM3638kbvBaqewmnHMUitg==$4wgDS+lH1sZ4reFIqXqIg9KxgnZdH1swCujYLzee1To=:8cxO8EiIgGIgTqPIaffUPnTmo2uupikXWXNH6jLBLFs="
  roles      = ["country_analyst", "auditor"]
  team       = 2
  groups     = ["vendor_a"]
  attributes = { country = "France", regions = ["north", "south"], level = 3, ratio = 0.5, active = true, empty = [] }
}

user "paul" {
  password = "SCRAM-SHA-256$4096:DGL9f/NOD5LAze6pwkXRtA==$S2Dk4JiLOOEr9PIm5FrTKjNlIwxrC0sbP/7wrpSPhIg=:4tYSuagG1rodp35nRQB8PMq5VIziZ6kt6/hL6SST0xM="
  roles    = ["manager"]
  team     = 7
}

team "HQ" {
  id = 1
}

team "France" {
  id     = 2
  parent = "HQ"
}

team "Frozen Food" {
  id     = 7
  parent = "HQ"
}

team "Pizza" {
  id     = 8
  parent = "Frozen Food"
}

role "country_analyst" {
  statements = ["select", "copy_out"]
  columns    = ["technical"]
  scope      = "all"
  own_rows   = true
  functions  = ["public.business_days"]
}

role "auditor" {
  statements = ["select"]
  scope      = "none"
}

role "manager" {
  statements = ["select", "insert", "update", "delete"]
  scope      = "team_subtree"
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
  column "phone" {
    class = "pii"
    mask  = "redact"
  }
  column "branch" {
    class = "internal"
    mask  = "redact"
    value = "(hidden)"
  }
  column "agent_login" {
    class  = "pii"
    mask   = "hash"
    secret = env("PGVEIL_TEST_HASH_SECRET", "not-a-good-secret")
  }
  column "comment" {
    class      = "pii"
    mask       = "expression"
    expression = "left(comment, 20) || '…'"
  }
  column "score" { class = "technical" }
}

table "public.*" {}
table "archive.responses_*" {
  owner_column = "agent_login"
  pushdown     = false
}

schema "public" { default = "deny" }
schema "reports" { default = "allow" }

rule "france_only" {
  tables = ["public.responses"]
  roles  = ["country_analyst"]
  where  = "country = me.country AND region = ANY(me.regions)"
}

rule "recent" {
  tables = ["public.responses", "archive.responses_*"]
  users  = ["marie"]
  kind   = "restrictive"
  where  = <<-SQL
    submitted_at > now() - interval '1 year'
    AND public.business_days(submitted_at) < 400
  SQL
}

rule "managers" {
  tables = ["public.responses"]
  roles  = ["manager"]
  scope  = "team_subtree"
}

rule "vendors" {
  tables = ["public.*"]
  roles  = ["manager"]
  scope  = "groups"
  groups = ["vendor_a"]
}

rule "surveys_of_my_team" {
  tables  = ["public.responses"]
  roles   = ["manager"]
  kind    = "restrictive"
  where   = "survey_id IN (SELECT ts.survey_id FROM public.team_surveys ts WHERE ts.team_id = me.team) OR EXISTS (SELECT 1 FROM public.overrides o, public.teams t WHERE o.team_id = t.id AND t.id = me.team)"
  enabled = false
}
