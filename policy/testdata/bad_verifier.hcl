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
  password = "SCRAM-SHA-256$4096:tM3638kbvBaqewmnHMUitg==$4wgDS+lH1sZ4reFIqXqIg9KxgnZdH1swCujYLzee:8cxO8EiIgGIgTqPIaffUPnTmo2uupikXWXNH6jLBLFs="
}

user "paul" {
  password = "SCRAM-SHA-256$0:tM3638kbvBaqewmnHMUitg==$4wgDS+lH1sZ4reFIqXqIg9KxgnZdH1swCujYLzee1To=:8cxO8EiIgGIgTqPIaffUPnTmo2uupikXWXNH6jLBLFs="
}
