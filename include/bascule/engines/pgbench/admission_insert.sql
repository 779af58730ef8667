-- An emergency admission: a new encounter for an existing patient, and its audit row.
\set pid random(:min_pid, :max_pid)
\set sid random(:min_sid, :max_sid)
\set hid random(:min_hid, :max_hid)
BEGIN;
INSERT INTO clinic.encounters (patient_id, hospital_id, attending_staff_id, encounter_type, ward, admitted_at) SELECT p.patient_id, :hid, :sid, 'emergency', 'ED', now() FROM clinic.patients p WHERE p.patient_id = :pid;
INSERT INTO clinic.audit_log (logged_at, staff_id, patient_id, action, object_type, object_id) VALUES (now(), :sid, :pid, 'create', 'encounter', :pid);
COMMIT;
