listen {
  address = "127.0.0.1:6432"
}

upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
}

table "public.responses" {
  column "email" {
    class = "pii"
    mask  = "hsh"
  }
  column "contact" {
    class = "pii"
    mask  = "hash"
  }
  column "phone" {
    class      = "pii"
    keep_start = 2
  }
  column "comment" {
    class = "pii"
    mask  = "expression"
  }
  column "branch" {
    class    = "internal"
    mask     = "partial"
    keep_end = -1
  }
  column "score" {
    class  = "technical"
    mask   = "hash"
    secret = "written-in-the-file"
  }
  column "nps" {
    class = "technical"
    mask  = "redact"
    value = ["a"]
  }
  column "country" {
    mask = "null"
  }
}

# A mask may read its own column and unclassified ones (id), never
# another classified column: name's value would show through code's mask.
table "public.customers" {
  column "code" {
    class      = "internal"
    mask       = "expression"
    expression = "upper(left(name, 3)) || '-' || id || left(code, 1)"
  }
  column "name" {
    class = "pii"
  }
  column "phone" {
    class      = "pii"
    mask       = "expression"
    expression = "right(phone, 2)"
  }
}
