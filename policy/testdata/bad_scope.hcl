listen {
  address = "127.0.0.1:6432"
}

upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
}

role "analyst" {
  statements = ["select", "selct", "copy"]
  scope      = "own_tem"
}

role "vendor" {
  scope = "groups"
}

table "public.responses" {
  owner_column = "agent_login"
}

rule "nobody" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  scope  = "none"
}

rule "typo" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  scope  = "slef"
  kind   = "restrictve"
}

rule "subtree" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  scope  = "team_subtree"
}
