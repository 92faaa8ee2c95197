package ddlnotify

// Channel is the channel pgveil listens on upstream for DDL.
const Channel = "pgveil_catalog"

// TriggerSQL installs, run by a superuser in the proxied database, the
// event trigger that notifies Channel at the end of every DDL command.
const TriggerSQL = `CREATE SCHEMA IF NOT EXISTS pgveil;
CREATE OR REPLACE FUNCTION pgveil.notify_ddl() RETURNS event_trigger
  LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('pgveil_catalog', ''); END $$;
CREATE EVENT TRIGGER pgveil_ddl ON ddl_command_end EXECUTE FUNCTION pgveil.notify_ddl();
CREATE EVENT TRIGGER pgveil_drop ON sql_drop EXECUTE FUNCTION pgveil.notify_ddl();`
