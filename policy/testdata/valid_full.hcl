# Every attribute, with values other than the defaults.
listen {
  address          = "127.0.0.1:6432"
  database         = "app"
  startup_timeout  = "15s"
  shutdown_timeout = "1m"
  max_message_size = 1048576
  max_connections  = 500
  max_user_connections = 20

  tls {
    cert_file = "server.crt"
    key_file  = "server.key"
    require   = true
  }
}

upstream {
  address         = "db.internal:5433"
  database        = "feedback"
  user            = "pgveil_svc"
  password        = env("PGVEIL_UPSTREAM_PASSWORD")
  search_path     = "app, public"
  connect_timeout = "2s"
  catalog_refresh = "30s"

  tls {
    mode        = "verify-full"
    ca_file     = "ca.pem"
    server_name = "db.internal"
  }

  pool {
    mode         = "transaction"
    size         = 50
    wait_timeout = "2s"
    idle_timeout = "30m"
  }
}

user "marie" {
  password = "SCRAM-SHA-256$4096:tM3638kbvBaqewmnHMUitg==$4wgDS+lH1sZ4reFIqXqIg9KxgnZdH1swCujYLzee1To=:8cxO8EiIgGIgTqPIaffUPnTmo2uupikXWXNH6jLBLFs="
  max_connections = 3
}

user "jean" {
  password = env("PGVEIL_TEST_JEAN_VERIFIER", "SCRAM-SHA-256$4096:DGL9f/NOD5LAze6pwkXRtA==$S2Dk4JiLOOEr9PIm5FrTKjNlIwxrC0sbP/7wrpSPhIg=:4tYSuagG1rodp35nRQB8PMq5VIziZ6kt6/hL6SST0xM=")
}
