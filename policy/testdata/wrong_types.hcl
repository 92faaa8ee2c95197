listen {
  address = "127.0.0.1:6432"
  tls {
    cert_file = "server.crt"
    key_file  = "server.key"
    require   = "sometimes"
  }
}

upstream {
  address  = "127.0.0.1:5432"
  database = ["feedback"]
  user     = null
}

table "public.responses" {
  pushdown = "no"
}
