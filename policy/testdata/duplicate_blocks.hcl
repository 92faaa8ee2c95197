listen {
  address = "127.0.0.1:6432"
}

upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
}

role "analyst" {
  statements = ["select"]
  columns    = ["customer_pii"] # defined by the duplicate table block only: no cascade
}

role "analyst" {
  statements = ["select"]
}

table "public.responses" {
  column "email" { class = "pii" }
  column "email" { class = "pii" }
}

table "public.responses" {
  column "card" { class = "customer_pii" }
}

schema "public" { default = "deny" }
schema "public" { default = "allow" }

identity "employees" {
  query = "SELECT login FROM public.employees"
}

identity "employees" {
  query = "SELECT login FROM public.contractors"
}

rule "r" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  scope  = "all"
}

rule "r" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  scope  = "all"
}

teams {
  table         = "public.teams"
  id_column     = "id"
  parent_column = "parent_id"
}

team "HQ" {
  id = 1
}
