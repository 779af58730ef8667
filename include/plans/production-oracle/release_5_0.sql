-- Release 5.0 of the hospital application: schema change for the TARGET (Oracle 19c) only, applied to the
-- schema-only copy before GoldenGate's initial load (an example: adjust to the release's own script).
-- GoldenGate's Replicat maps columns by name (MAPPING via COLMAP for the rename below, in the replicat's
-- parameter file); the comparison reads the same mapping from the plan's release.column_mapping.
-- Run as the schema owner with SQL*Plus: WHENEVER SQLERROR EXIT FAILURE.

-- New: the preferred language, filled for rows replicated from release 4.
ALTER TABLE hosp.patients ADD (preferred_language VARCHAR2(8 CHAR) DEFAULT 'und' NOT NULL);

-- Renamed: release 5 calls the attending physician's id by its role.
ALTER TABLE hosp.encounters RENAME COLUMN doctor_id TO attending_id;

-- New and nullable: the old release never sets it.
ALTER TABLE hosp.encounters ADD (triage_score NUMBER(2));

-- Dropped by release 5 (kept on the source until the rollback window closes): the fax number.
ALTER TABLE hosp.patients SET UNUSED (fax_number);
