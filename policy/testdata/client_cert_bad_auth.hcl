listen {
  address = "127.0.0.1:6432"
  tls {
    cert_file       = "server.crt"
    key_file        = "server.key"
    client_ca_file  = "ca.pem"
  }
}

upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
}

role "analyst" { statements = ["select"] }

user "erin" {
  auth  = "certificate"
  roles = ["analyst"]
}

user "frank" {
  auth  = "scram"
  roles = ["analyst"]
}
