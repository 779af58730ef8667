-- A bed manager moves an inpatient to another ward: an update of one encounter.
\set eid random(:min_eid, :max_eid)
UPDATE clinic.encounters SET ward = 'W' || (:eid % 12)::text WHERE encounter_id = :eid;
