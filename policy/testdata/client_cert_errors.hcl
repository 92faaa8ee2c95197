listen {
  address = "127.0.0.1:6432"
  tls {
    cert_file       = "server.crt"
    key_file        = "server.key"
    client_crl_file = "crl.pem"
    client_name     = "cn"
  }
}

upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
}

role "analyst" { statements = ["select"] }

user "carol" {
  auth  = "cert"
  roles = ["analyst"]
}

user "dave" {
  auth     = "cert"
  password = "SCRAM-SHA-256$4096:UhSmBtEvd3peBj1P+aiWVQ==$m1CEsm/JM1LTWyYa7PjZhlruMkwsJtDCrvwQ1+Do+8Q=:sJ1/SRpjmzujYW5rhvGW9Ht0EBUXt1WgDUar42e3Idw="
  roles    = ["analyst"]
}

user "gina" {
  auth  = "ldap"
  roles = ["analyst"]
}
