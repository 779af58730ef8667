-- Lab activity (source only): an observation entered in error is deleted and re-entered.
\set eid random(:min_eid, :max_eid)
WITH gone AS (DELETE FROM clinic.observations WHERE observation_id = (SELECT min(observation_id) FROM clinic.observations WHERE encounter_id = :eid) RETURNING encounter_id, code, value_num, unit, observed_at)
INSERT INTO clinic.observations (encounter_id, code, value_num, unit, observed_at) SELECT encounter_id, code, value_num, unit, observed_at FROM gone;
