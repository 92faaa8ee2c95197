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
    expression = "CASE WHEN EXISTS (SELECT 1 FROM public.t x) THEN comment END"
  }
}

rule "qualified" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "responses.country = 'France' OR other.x = 1"
}

rule "parameter" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "country = $1"
}

rule "unqualified_table" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "survey_id IN (SELECT ts.survey_id FROM team_surveys ts)"
}

rule "unqualified_subquery_column" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "survey_id IN (SELECT survey_id FROM public.team_surveys ts WHERE ts.team_id = me.team)"
}

rule "aggregates" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "count(*) > 1 OR rank() OVER () = 1"
}

rule "functions" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "public.is_visible(id) AND country OPERATOR(public.===) 'x'"
}

rule "subquery_clauses" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "survey_id IN (SELECT ts.survey_id FROM public.team_surveys ts ORDER BY 1) OR id IN (WITH x AS (SELECT 1) SELECT x.a FROM x)"
}

rule "joins" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "id IN (SELECT a.id FROM public.a a JOIN public.b b ON a.id = b.id)"
}

rule "xml" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "xmlelement(name foo) IS NOT NULL"
}

rule "session" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "tenant = current_setting('app.tenant') OR owner = current_user OR nps::numeric($2) > 1"
}

rule "unqualifiable_operators" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "country IS DISTINCT FROM 'x' OR NULLIF(nps, 0) > 1 OR CASE nps WHEN 1 THEN true END OR nps BETWEEN SYMMETRIC 1 AND 2"
}

rule "setting_dependent" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "submitted_at::date = CURRENT_DATE OR submitted_at > '03/02/2025' OR submitted_at > now() - '-1 day'::interval"
}
