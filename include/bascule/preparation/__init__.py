"""The three months before the night: assessment, schema comparison, replay, storage, rehearsals, readiness."""

# The sign-off gates of the prepare DAG, in the order it asks them (dags/prepare.py builds them from this).
SIGNOFF_GATES: tuple[str, ...] = ("assessment_signoff", "schema_signoff", "replay_signoff", "storage_apply")
