-- The front desk finds a patient by family name (the name of a known patient, so it matches).
\set pid random(:min_pid, :max_pid)
SELECT p.patient_id, p.given_name, p.birth_date FROM clinic.patients p WHERE p.family_name = (SELECT family_name FROM clinic.patients WHERE patient_id = :pid) ORDER BY p.given_name, p.birth_date LIMIT 20;
