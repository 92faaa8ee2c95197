listen {
  address = "127.0.0.1:6432"
}

upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
}

role "analyst" { statements = ["select"] }

ldap {
  url           = "ldaps://ldap.example.org"
  start_tls     = true
  prefix        = "uid="
  bind_dn       = "cn=pgveil,dc=example,dc=org"
  bind_password = "plain"
  group_filter  = "(member=$dn)"

  group "cn=analysts,ou=groups,dc=example,dc=org" {
    roles = ["analyst", "analyts"]
  }
  group "cn=empty,ou=groups,dc=example,dc=org" {
  }
  group "CN=Analysts, OU=groups,dc=example,dc=org" {
    roles = ["analyst"]
  }
}
