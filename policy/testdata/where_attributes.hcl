listen {
  address = "127.0.0.1:6432"
}

upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
}

user "marie" {
  password   = "SCRAM-SHA-256$4096:tM3638kbvBaqewmnHMUitg==$4wgDS+lH1sZ4reFIqXqIg9KxgnZdH1swCujYLzee1To=:8cxO8EiIgGIgTqPIaffUPnTmo2uupikXWXNH6jLBLFs="
  roles      = ["analyst"]
  attributes = { country = "France", regions = ["north"] }
}

role "analyst" {
  statements = ["select"]
}

table "public.responses" {}

rule "alone" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "country = me"
}

rule "fields" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "country = me.country.name OR me.* IS NULL"
}

rule "subscript" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "region = me.regions[1]"
}

rule "function" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "me.country(1) AND country::me.type IS NULL"
}

rule "hcl_reference" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "country = '${me.country}'"
}

rule "typo" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "country = me.contry"
}

rule "schema_me" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "EXISTS (SELECT 1 FROM me.t x) OR EXISTS (SELECT 1 FROM public.t me)"
}
