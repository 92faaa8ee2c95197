listen {
  address = "127.0.0.1:6432"
}

upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
}

user "marie" {
  password = "SCRAM-SHA-256$4096:tM3638kbvBaqewmnHMUitg==$4wgDS+lH1sZ4reFIqXqIg9KxgnZdH1swCujYLzee1To=:8cxO8EiIgGIgTqPIaffUPnTmo2uupikXWXNH6jLBLFs="
  roles    = ["analyst"]
}

# A typo in a login and a role, itself, an empty role: and a duplicate.
user "metabase" {
  password = "SCRAM-SHA-256$4096:tM3638kbvBaqewmnHMUitg==$4wgDS+lH1sZ4reFIqXqIg9KxgnZdH1swCujYLzee1To=:8cxO8EiIgGIgTqPIaffUPnTmo2uupikXWXNH6jLBLFs="
  roles    = ["analyst"]
  act_for  = ["mari", "role:analist", "metabase", "role:", "group:sales", "marie", "marie"]
}

# A valid one.
user "superset" {
  password = "SCRAM-SHA-256$4096:tM3638kbvBaqewmnHMUitg==$4wgDS+lH1sZ4reFIqXqIg9KxgnZdH1swCujYLzee1To=:8cxO8EiIgGIgTqPIaffUPnTmo2uupikXWXNH6jLBLFs="
  roles    = ["analyst"]
  act_for  = ["marie", "role:analyst"]
}

role "analyst" {
  statements = ["select"]
}
