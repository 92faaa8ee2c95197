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
  roles    = ["analyst", "countyr_analyst"]
}

role "country_analyst" {
  statements = ["select"]
  columns    = ["technicl"]
}

table "public.responses" {
  column "score" { class = "technical" }
}

rule "france" {
  tables = ["public.responses"]
  roles  = ["country_analyts"]
  users  = ["mairie"]
  scope  = "all"
}
