-- The least-privilege account pgveil uses upstream. Its password is set by
-- the program that loads these files (ALTER ROLE pgveil_svc PASSWORD ...),
-- never here. The tables stay owned by the superuser that loads the files.
--
-- NOTE: roles belong to the whole cluster, not to this database: the role is
-- created only when missing (several demo databases may share a cluster),
-- and its attributes are enforced either way. The database-level statements
-- name the current database, "feedback" in the demo.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgveil_svc') THEN
        CREATE ROLE pgveil_svc LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
    END IF;
END
$$;
ALTER ROLE pgveil_svc LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;

-- Nobody but owners creates objects: no tables in public, no temporary
-- tables.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
DO $$
BEGIN
    EXECUTE format('REVOKE TEMP ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO pgveil_svc', current_database());
END
$$;

GRANT USAGE ON SCHEMA public TO pgveil_svc;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO pgveil_svc;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO pgveil_svc;
