listen {
  address = "127.0.0.1:6432"
}

upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
}

user "marie" {
  password = "SCRAM-SHA-256$4096:tM3638kbvBaqewmnHMUitg==$4wgDS+lH1sZ4reFIqXqIg9KxgnZdH1swCujYLzee1To=:8cxO8EiIgGIgTqPIaffUPnTmo2uupikXWXNH6jLBLFs="
  roles    = ["analyst"]
  groups   = ["vendor_a"]
}

role "analyst" {
  statements = ["select"]
}

table "public.responses" {
  owner_column = "agent_login"
}

rule "nobody" {
  tables = ["public.responses"]
  scope  = "all"
}

rule "both" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "true"
  scope  = "all"
}

rule "neither" {
  tables = ["public.responses"]
  roles  = ["analyst"]
}

rule "groups_without_scope" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  scope  = "self"
  groups = ["vendor_a"]
}

rule "scope_without_groups" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  scope  = "groups"
}

rule "empty_group" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  scope  = "groups"
  groups = ["vendor_b", "vendor_a", "vendor_a"]
}

rule "empty_tables" {
  tables  = []
  users   = ["marie"]
  scope   = "all"
  enabled = "yes"
}

rule "empty_roles" {
  tables = ["public.responses"]
  roles  = []
  kind   = "restrictive"
  where  = "country = 'France'"
}
