listen {
  address = "127.0.0.1:6432"
}

upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
}

teams {
  table     = "public.*"
  id_column = ""
}

teams {
  table         = "public.teams"
  id_column     = "id"
  parent_column = "parent_id"
}
