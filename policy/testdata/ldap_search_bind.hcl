listen {
  address = "127.0.0.1:6432"
}

upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
}

role "analyst" { statements = ["select"] }
role "manager" { statements = ["select"] }

ldap {
  url                 = "ldap://ldap.example.org"
  start_tls           = true
  ca_file             = "ca.pem"
  base_dn             = "ou=people,dc=example,dc=org"
  bind_dn             = "cn=pgveil,dc=example,dc=org"
  bind_password       = env("PGVEIL_UPSTREAM_PASSWORD")
  search_filter       = "(&(objectClass=person)(uid=$username))"
  member_of_attribute = "memberOf"

  group "cn=analysts,ou=groups,dc=example,dc=org" {
    roles  = ["analyst"]
    groups = ["analysts"]
  }
  group "cn=managers,ou=groups,dc=example,dc=org" {
    roles = ["manager"]
  }
}

user "marie" {
  auth       = "ldap"
  attributes = { country = "France" }
}
