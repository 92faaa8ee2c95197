listen {
  address = "127.0.0.1:6432"
  relay   = "eventloop"
}

upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
}
