# The policy of the test-block cases of cmd/pgveil and policy/policytest,
# over their tests' tickets table: ann (clerk) sees her own tickets,
# without email; boss (auditor) sees every ticket with email. A fragment:
# the tests add the listen and upstream blocks. VERIFIER is replaced by a
# SCRAM verifier.

role "clerk"   { statements = ["select"] }
role "auditor" {
  statements = ["select", "copy_out"]
  columns    = ["pii"]
}
user "ann" {
  password = "VERIFIER"
  roles    = ["clerk"]
}
user "boss" {
  password = "VERIFIER"
  roles    = ["auditor"]
}
schema "public" { default = "deny" }
table "public.tickets" {
  owner_column = "owner"
  column "email" { class = "pii" }
}
rule "own_tickets" {
  tables = ["public.tickets"]
  roles  = ["clerk"]
  scope  = "self"
}
rule "all_tickets" {
  tables = ["public.tickets"]
  roles  = ["auditor"]
  scope  = "all"
}
