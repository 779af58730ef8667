-- A doctor writes a progress note on an existing encounter (fixed synthetic text: no patient value).
\set eid random(:min_eid, :max_eid)
\set sid random(:min_sid, :max_sid)
INSERT INTO clinic.clinical_notes (encounter_id, author_id, note_type, written_at, note_text) SELECT e.encounter_id, :sid, 'progress', now(), 'Reviewed on the ward round; observations stable; plan unchanged.' FROM clinic.encounters e WHERE e.encounter_id = :eid;
