listen {
  address = "127.0.0.1:6432"
}

upstream {
  address  = "127.0.0.1:5432"
  database = env("PGVEIL_TEST_UNSET", "fallback_db")
  user     = "pgveil_svc"
  password = env("PGVEIL_UPSTREAM_PASSWORD", "unused default")
}
