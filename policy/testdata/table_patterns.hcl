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
}

table "responses" {}
table "public.a.b" {}
table "public.resp?" {}
table "pg_catalog.pg_class" {}
table "public.*" {}
table "public.*" {}
table "public.a*" {}
table "public.*b" {}

schema "pg_catalog" { default = "allow" }
schema "public" { default = "alow" }

rule "tables" {
  tables = ["surveys", "information_schema.tables", "public.ab", "public.x", "other.t"]
  roles  = ["analyst"]
  scope  = "all"
}
