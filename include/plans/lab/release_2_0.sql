-- Release 2.0 of the clinic application: schema migration for the TARGET
-- database only, applied to the schema-only copy before the subscription's
-- initial copy. Run atomically (bascule_lab.seed.apply_release_migration, or
-- psql -1 -v ON_ERROR_STOP=1 -f); it holds no BEGIN/COMMIT of its own.
--
-- Logical replication matches columns by name, so the target may gain columns
-- but must keep every source column with a type that accepts the source's
-- values: hence only additions and a widening, no drop, rename or narrowing.
-- Rerunnable: every step is IF NOT EXISTS or converges.

SET ROLE bascule_admin;

-- Rows replicated from the old release carry no language; the default fills
-- it. A constant default is metadata-only in PostgreSQL 11+, so no rewrite.
ALTER TABLE clinic.patients
    ADD COLUMN IF NOT EXISTS preferred_language text NOT NULL DEFAULT 'und';

-- Nullable: the old release never sets it, and replicated rows must apply.
ALTER TABLE clinic.encounters
    ADD COLUMN IF NOT EXISTS triage_score smallint;
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_constraint
                   WHERE conrelid = 'clinic.encounters'::regclass AND conname = 'encounters_triage_score_check') THEN
        ALTER TABLE clinic.encounters
            ADD CONSTRAINT encounters_triage_score_check CHECK (triage_score BETWEEN 1 AND 5);
    END IF;
END
$$;

-- International numbers with extensions. Widening a varchar is metadata-only.
ALTER TABLE clinic.patients
    ALTER COLUMN phone TYPE varchar(32);

-- The 2.0 emergency-department board lists open encounters by hospital and
-- triage score. Not CONCURRENTLY: the target takes no traffic before cutover
-- and the statement runs inside the migration's transaction.
CREATE INDEX IF NOT EXISTS encounters_open_triage_idx
    ON clinic.encounters (hospital_id, triage_score, admitted_at)
    WHERE discharged_at IS NULL;

RESET ROLE;
