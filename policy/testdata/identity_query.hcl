listen {
  address = "127.0.0.1:6432"
}

upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
}

identity "delete" {
  query = "DELETE FROM public.employees RETURNING login"
}

identity "cte" {
  query = "WITH gone AS (DELETE FROM public.employees RETURNING login) SELECT login FROM gone"
}

identity "two" {
  query = "SELECT login FROM public.employees; SELECT 1"
}

identity "syntax" {
  query = "SELECT login FORM public.employees"
}

identity "lock" {
  query = "SELECT login FROM public.employees FOR UPDATE"
}

user "marie" {
  roles = ["analyst"]
}

role "analyst" {
  statements = ["select"]
}

identity "soon" {
  query   = "SELECT login FROM public.employees"
  refresh = "soon"
}

identity "never" {
  query   = "SELECT login FROM public.employees"
  refresh = "0s"
}
