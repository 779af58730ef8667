"""The three months before the night: assessment, schema comparison, replay, storage, rehearsals, readiness."""
