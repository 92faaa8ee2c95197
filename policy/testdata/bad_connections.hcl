listen {
  address              = "127.0.0.1:6432"
  max_connections      = 0
  max_user_connections = -1
}

upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
  password = env("PGVEIL_UPSTREAM_PASSWORD")
}

user "marie" {
  password        = "SCRAM-SHA-256$4096:tM3638kbvBaqewmnHMUitg==$4wgDS+lH1sZ4reFIqXqIg9KxgnZdH1swCujYLzee1To=:8cxO8EiIgGIgTqPIaffUPnTmo2uupikXWXNH6jLBLFs="
  max_connections = 2.5
}
