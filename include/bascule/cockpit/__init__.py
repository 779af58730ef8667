"""The migration view (the cockpit): a FastAPI app served by Airflow's API server, read-only (ADR 0045)."""
