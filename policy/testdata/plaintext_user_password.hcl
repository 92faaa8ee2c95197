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
  password = "marie-secret-123"
}

user "paul" {
  password = "md5d41d8cd98f00b204e9800998ecf8427e"
}
