listen {
  address = "127.0.0.1:6432"
}

upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
}

role "agent" {
  statements = ["select"]
}

table "public.responses" {}
table "public.*" { owner_column = "agent_login" }

rule "self" {
  tables = ["public.responses"]
  roles  = ["agent"]
  scope  = "self"
}

rule "team" {
  tables = ["public.responses", "public.surveys"]
  roles  = ["agent"]
  scope  = "own_team"
}

rule "pattern" {
  tables = ["public.*"]
  roles  = ["agent"]
  scope  = "own_team"
}
