# pgveil demo configuration, used by `make demo` (cmd/pgveil-demo).
#
# The demo runner starts a throwaway PostgreSQL, loads testdata/demo/*.sql
# into the database "feedback", and sets the environment variables below.
# Every demo user's password is "demo-<login>" (e.g. marie / demo-marie);
# the verifiers were produced with `pgveil passwd`.

listen {
  address  = env("PGVEIL_DEMO_LISTEN", "127.0.0.1:6432")
  database = "feedback"
}

upstream {
  address  = env("PGVEIL_DEMO_UPSTREAM", "127.0.0.1:5432")
  database = "feedback"
  # The least-privilege service account created by testdata/demo/05_service_account.sql.
  user     = "pgveil_svc"
  password = env("PGVEIL_DEMO_UPSTREAM_PASSWORD")
}

# French analyst — password demo-marie
user "marie" {
  password = "SCRAM-SHA-256$4096:UhSmBtEvd3peBj1P+aiWVQ==$m1CEsm/JM1LTWyYa7PjZhlruMkwsJtDCrvwQ1+Do+8Q=:sJ1/SRpjmzujYW5rhvGW9Ht0EBUXt1WgDUar42e3Idw="
}

# central analyst (all countries) — password demo-hq
user "hq" {
  password = "SCRAM-SHA-256$4096:en3FQnOKAi5j3SoFbrNZfA==$WFynQmQQUb+ys1qRICfdLwPWkyyQT7k5pUtzTmcUj74=:QDquHuGo5D905I9rRMgApWdgizw/SgCTxs/wY7ftvpw="
}

# sends surveys; may see personal data — password demo-survey_admin
user "survey_admin" {
  password = "SCRAM-SHA-256$4096:HG+Xh57c78rWWQ1QsWF8sw==$Y34ZN8zraVnZL3Fa2+i1h3AwBOsrK0ptqRhe6ZN9vg4=:WhF7YdbDJ/kepTB5Xj2R9dEZzi/E1B1OgOHB9z9sTfo="
}

# manager of Frozen Food — password demo-paul
user "paul" {
  password = "SCRAM-SHA-256$4096:Xvyk9M+gnL28n0DY4qi7vA==$FesrI49QPC+2XJwkWBnGh+ehaiO/FaP0E41Doubiml8=:BlvBiYHrVVEFmmmM9BcUkVws+BSdiQnW4ZbPxtVaLH4="
}

# agent in Thick Crust — password demo-tom
user "tom" {
  password = "SCRAM-SHA-256$4096:z/q6cDiAXfcxPvoCA7AizQ==$Vf5LK2In4M52e1KNisa8TR/QNV3/qzTMTJT12h0VMZg=:P05qVfNgPfzhV5TiWB67tsqO89rDo/iXM9a0gc8wXk0="
}

# team lead of Desserts — password demo-lea
user "lea" {
  password = "SCRAM-SHA-256$4096:IQRU0ab/yAqpOe+frlJCDg==$GcVdCscmhbPPH2bPMWaGLZUxWPWQQC82qN8oHpjhKXA=:BkW/gevUEGEHylIgb3Z7lxvl/9Jn4MglbVLbgccUi88="
}

# outsourced agent, group vendor_a — password demo-bpo_a
user "bpo_a" {
  password = "SCRAM-SHA-256$4096:V3gIfxWxjlGtIcH5C8CDEw==$CX/5nqTtUqYGemD7SKmeWiNAJS7IZecaqgC9ojHBJ3k=:s/r6ds9cvIFbKq41wzvLSFyV1T8nJ9IodB6Z4S0cl+U="
}

# operations, groups vendor_a and vendor_b — password demo-ops
user "ops" {
  password = "SCRAM-SHA-256$4096:aNhSIvEiGNbI6JlxDKabdQ==$VztxuHhOJfKppPTh/OQuWBP8JnWwAeAhZoxffLN7NRU=:8yn7+VpJCm34WQXESytmM+nVtF0R10y9RGHcB2AqlXU="
}

# Banking App product team — password demo-bank_app
user "bank_app" {
  password = "SCRAM-SHA-256$4096:aDsb57YhlMBLlzAWBWcsqQ==$0pqT9GzqqBfUlDedyW0wYeO8uPeZ0lLTQfrswXPZhw8=:eU61ILqqhjPnX1xoUjeNOkpVLIytUZ/8xDGxCs856U8="
}
