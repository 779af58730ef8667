-- Cluster-global roles of the lab. Idempotent: safe to run on a cluster where
-- they already exist. Passwords are NOT set here; bascule_lab.seed.ensure_roles
-- sets them from a SCRAM verifier computed client-side, so no plaintext password
-- ever reaches the server log or this file.
--
-- Attributes are enforced on every run for the two application roles so that a
-- drifted role is brought back to least privilege. bascule_admin only gets its
-- attributes at creation: PostgreSQL 15 requires SUPERUSER for CREATE
-- SUBSCRIPTION, and both clusters subscribe at some point (forward replication on
-- the target, reverse replication on the source), so the lab code
-- (bascule_lab.clusters.Lab._ensure_roles) grants SUPERUSER to bascule_admin on
-- BOTH clusters; re-running this file must not silently revoke it. A production
-- site decides what its migration role may be (docs/production.md).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'clinic_app') THEN
        CREATE ROLE clinic_app LOGIN;
    END IF;
    ALTER ROLE clinic_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT;

    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'bascule_repl') THEN
        CREATE ROLE bascule_repl LOGIN REPLICATION;
    END IF;
    ALTER ROLE bascule_repl LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS INHERIT;

    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'bascule_admin') THEN
        CREATE ROLE bascule_admin LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT;
    END IF;
END
$$;

-- Watching replication and cutover needs pg_stat_* visibility and the ability
-- to end application sessions at cutover, nothing more.
GRANT pg_monitor TO bascule_admin;
GRANT pg_signal_backend TO bascule_admin;
