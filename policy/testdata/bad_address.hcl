listen {
  address = "127.0.0.1"
}

upstream {
  address  = ":5432"
  database = ""
  user     = "pgveil_svc"
}
