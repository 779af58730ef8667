-- Lab activity (source only): demographic corrections touch whole patient rows.
\set pid random(:min_pid, :max_pid)
UPDATE clinic.patients SET updated_at = now(), postcode = postcode WHERE patient_id = :pid;
