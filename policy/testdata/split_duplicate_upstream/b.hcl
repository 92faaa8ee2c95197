upstream {
  address  = "127.0.0.2:5432"
  database = "feedback"
  user     = "pgveil_svc"
}
