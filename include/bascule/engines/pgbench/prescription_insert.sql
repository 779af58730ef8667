-- A prescription written during an existing encounter.
\set eid random(:min_eid, :max_eid)
\set sid random(:min_sid, :max_sid)
INSERT INTO clinic.prescriptions (encounter_id, patient_id, prescriber_id, drug_code, drug_name, dose_mg, route, frequency, prescribed_at) SELECT e.encounter_id, e.patient_id, :sid, 'N02BE01', 'paracetamol', 500, 'oral', 'qds', now() FROM clinic.encounters e WHERE e.encounter_id = :eid;
