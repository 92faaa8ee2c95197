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
  team     = 42
}

team "HQ" {
  id = 1
}

team "France" {
  id     = 2
  parent = "HQQ"
}

team "Lyon" {
  id     = 2
  parent = "France"
}

team "A" {
  id     = 3
  parent = "B"
}

team "B" {
  id     = 4
  parent = "A"
}

team "Half" {
  id = 2.5
}
