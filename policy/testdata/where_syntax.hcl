listen {
  address = "127.0.0.1:6432"
}

upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
}

role "analyst" {
  statements = ["select"]
}

table "public.responses" {
  column "comment" {
    class      = "pii"
    mask       = "expression"
    expression = "left(comment, 20 ||"
  }
}

rule "quoted" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "country = = me.country"
}

rule "escapes" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "comment = \"x\" AND nps >> AND"
}

rule "heredoc" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = <<SQL
country = 'France'
  AND nps BETWEEN 1 AND
SQL
}

rule "two_statements" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "true; DROP TABLE responses"
}

rule "from_clause" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "true FROM public.responses"
}

rule "two_expressions" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "country = 'France', nps > 3"
}

rule "unicode" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "comment = 'é€' AND )"
}
