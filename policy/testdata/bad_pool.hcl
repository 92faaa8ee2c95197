listen {
  address = "127.0.0.1:6432"
}

upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"

  pool {
    mode         = "transacton"
    size         = 0
    wait_timeout = "0s"
    idle_timeout = "-1m"
    max_clients  = 100
  }

  pool {
    mode = "transaction"
  }
}
