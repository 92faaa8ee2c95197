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
  roles      = "analyst"
  team       = "France"
  attributes = { login = "x", Country = "France", nested = { a = 1 }, mixed = ["a", 1], ok = "yes" }
}

user "paul" {
  roles = ["analyst"]
}

role "analyst" {
  statements = ["select"]
  functions  = ["my_func", "public.f(int)"]
  own_rows   = "sometimes"
}

user "lea" {
  password   = "SCRAM-SHA-256$4096:tM3638kbvBaqewmnHMUitg==$4wgDS+lH1sZ4reFIqXqIg9KxgnZdH1swCujYLzee1To=:8cxO8EiIgGIgTqPIaffUPnTmo2uupikXWXNH6jLBLFs="
  roles      = ["analyst"]
  attributes = { country = "France", region = "north", "country" = "Spain" }
}
