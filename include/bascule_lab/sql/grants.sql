-- Least-privilege grants on schema clinic; run after schema.sql (and again after
-- any migration that adds tables, although the default privileges below already
-- cover objects bascule_admin creates later).

REVOKE ALL ON SCHEMA clinic FROM PUBLIC;
GRANT USAGE ON SCHEMA clinic TO clinic_app, bascule_repl;

-- clinic_app: DML, never DDL (no CREATE on the schema, no TRUNCATE, REFERENCES or
-- TRIGGER). The audit trail is append-only for the application.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA clinic TO clinic_app;
REVOKE UPDATE, DELETE ON clinic.audit_log FROM clinic_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA clinic TO clinic_app;

-- Partitions are reachable by name too, so they must not be a side door around
-- the append-only rule above.
DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_catalog.pg_inherits
                WHERE inhparent = 'clinic.audit_log'::regclass
    LOOP
        EXECUTE format('REVOKE UPDATE, DELETE ON %s FROM clinic_app', part);
    END LOOP;
END
$$;

-- bascule_repl: read-only, enough for the initial table copy of a subscription.
GRANT SELECT ON ALL TABLES IN SCHEMA clinic TO bascule_repl;

-- Future objects. Default privileges cannot tell a new audit partition from a
-- new ordinary table, so they grant the append-only set (SELECT, INSERT); a
-- migration adding an ordinary table grants UPDATE/DELETE explicitly. Erring
-- that way keeps a new monthly partition from ever being updatable.
ALTER DEFAULT PRIVILEGES FOR ROLE bascule_admin IN SCHEMA clinic
    GRANT SELECT, INSERT ON TABLES TO clinic_app;
ALTER DEFAULT PRIVILEGES FOR ROLE bascule_admin IN SCHEMA clinic
    GRANT USAGE ON SEQUENCES TO clinic_app;
ALTER DEFAULT PRIVILEGES FOR ROLE bascule_admin IN SCHEMA clinic
    GRANT SELECT ON TABLES TO bascule_repl;
