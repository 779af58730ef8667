-- A clinician opens a patient's chart: demographics, recent encounters,
-- prescriptions, observations and the access history; the access itself is audited.
\set pid random(:min_pid, :max_pid)
\set sid random(:min_sid, :max_sid)
SELECT patient_id, birth_date, sex, home_hospital_id FROM clinic.patients WHERE patient_id = :pid;
SELECT encounter_id, encounter_type, admitted_at, discharged_at FROM clinic.encounters WHERE patient_id = :pid ORDER BY admitted_at DESC LIMIT 20;
SELECT prescription_id, drug_code, dose_mg, prescribed_at FROM clinic.prescriptions WHERE patient_id = :pid ORDER BY prescribed_at DESC LIMIT 20;
SELECT o.observation_id, o.code, o.observed_at FROM clinic.observations o JOIN clinic.encounters e ON e.encounter_id = o.encounter_id WHERE e.patient_id = :pid ORDER BY o.observed_at DESC LIMIT 50;
SELECT audit_id, action, logged_at FROM clinic.audit_log WHERE patient_id = :pid ORDER BY logged_at DESC LIMIT 10;
INSERT INTO clinic.audit_log (logged_at, staff_id, patient_id, action, object_type, object_id) VALUES (now(), :sid, :pid, 'view', 'patient', :pid);
