-- A nurse records a vital sign during an existing encounter.
\set eid random(:min_eid, :max_eid)
INSERT INTO clinic.observations (encounter_id, code, value_num, unit, observed_at) SELECT e.encounter_id, '8867-4', 72, 'beats/min', now() FROM clinic.encounters e WHERE e.encounter_id = :eid;
