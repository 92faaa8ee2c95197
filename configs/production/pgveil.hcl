# pgveil production configuration: the server side. Install as
# /etc/pgveil/pgveil.hcl next to policy.hcl and run
#
#   pgveil check --config /etc/pgveil/ --upstream
#   pgveil serve --config /etc/pgveil/
#
# Relative paths are resolved against /etc/pgveil. Secrets come from the
# environment (configs/systemd/pgveil.env); none is written here.

listen {
  address          = "0.0.0.0:6432"
  database         = "feedback"
  shutdown_timeout = "30s"            # keep systemd's TimeoutStopSec above it

  # Every session holds a backend of the one service account: cap each
  # login below PostgreSQL's max_connections (a user block's
  # max_connections raises it for a BI tool's shared login).
  max_connections      = 2000
  max_user_connections = 20

  # Before login: 10 failed logins a minute per login and client address,
  # 128 connections authenticating at once per address (the defaults).
  # Behind a load balancer that hides clients' addresses, every client
  # shares one: set both to 0 (or raise them) there.
  max_auth_failures       = 10
  max_startup_per_address = 128

  # Clients must use TLS: psql "sslmode=verify-full sslrootcert=…", JDBC
  # ssl=true&sslmode=verify-full. Certificates are read at start.
  tls {
    cert_file = "tls/server.crt"      # chain clients verify (CN/SAN = the proxy's host name)
    key_file  = "tls/server.key"      # 0600, readable by the pgveil user only
    require   = true
  }
}

upstream {
  address         = "db.internal:5432"
  database        = "feedback"
  # Least privilege: a role that owns nothing, is not superuser, has no
  # BYPASSRLS and cannot create TEMP objects (`pgveil check --upstream`
  # warns otherwise), with SELECT on the published tables only.
  user            = "pgveil_svc"
  password        = env("PGVEIL_UPSTREAM_PASSWORD")
  search_path     = "public"
  connect_timeout = "5s"

  tls {
    mode    = "verify-full"
    ca_file = "tls/upstream-ca.pem"   # the CA that signed PostgreSQL's certificate
  }

  # Built-in transaction pooling: sessions share `size` backends, each held
  # for a transaction only. Without this block (or with mode = "session")
  # each client session has a backend of its own; up to keep_idle backends
  # of sessions that ended cleanly are reset with DISCARD ALL and kept for
  # the same user's next session. Read at start only.
  # pool {
  #   mode = "transaction"
  #   size = 20                       # under PostgreSQL's max_connections
  #   keep_idle = 100                 # session mode only; 0 keeps none
  #   max_per_user = 5                # backends one login may hold at once; 0 = no cap
  # }
}

# The audit trail auditors read: one MAC-chained JSON line per statement and
# session event. Ship rotated files to write-once storage; verify with
#   PGVEIL_AUDIT_KEY=… pgveil audit verify /var/log/pgveil/audit.log*
audit {
  file            = "/var/log/pgveil/audit.log"
  max_size        = "256MiB"
  on_full         = "block"           # an audited system does not drop records
  on_error        = "refuse"          # and runs nothing it cannot record (58030)
  hmac_key        = env("PGVEIL_AUDIT_KEY")
  rewritten_sql   = "hash"
  redact_literals = true              # WHERE email = '…' is itself personal data
  # log_parameters = true             # the values of $1…, instead of redact_literals:
  #                                   # personal data in the trail, off by default
}

# Prometheus /metrics and the probes /healthz and /readyz, on loopback: put a
# scraper or an authenticating reverse proxy in front, never the open network.
admin {
  address = "127.0.0.1:9187"
}
