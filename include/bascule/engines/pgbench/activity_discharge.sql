-- Lab activity (source only): discharges and ward moves rewrite encounter rows.
\set eid random(:min_eid, :max_eid)
UPDATE clinic.encounters SET ward = ward, discharged_at = coalesce(discharged_at, admitted_at + interval '1 day') WHERE encounter_id = :eid;
