listen {
  address          = "127.0.0.1:6432"
  startup_timeout  = "10 seconds"
  shutdown_timeout = "-5s"
}

upstream {
  address         = "127.0.0.1:5432"
  database        = "feedback"
  user            = "pgveil_svc"
  connect_timeout = 5
  client_connection_check_interval = "1000h"
}
