"""Comparisons and suites run in read-only transactions on both sides: a write in them is refused."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration


def test_comparison_sessions_and_suite_connections_refuse_writes(lab: Any, airflow_env: dict[str, str]) -> None:
    import sqlalchemy as sa

    from bascule.hooks.validation import ValidationDatabaseError
    from bascule.paths import LAB_PLAN
    from bascule.plan import load_plan
    from bascule.validation.runner import sqlalchemy_url
    from bascule.validation.service import hooks_for

    plan = load_plan(LAB_PLAN)
    for hook in hooks_for(plan):
        with hook.session() as session:
            assert session.rows(("SELECT count(*) FROM clinic.patients", {}))[0][0] >= 0
            with pytest.raises(ValidationDatabaseError, match="ReadOnlySqlTransaction"):
                session.rows(("UPDATE clinic.patients SET mrn = mrn WHERE false", {}))
            # Logical decoding slots (the incremental comparison's) are not transactions' writes.
            session.rows(("SELECT pg_create_logical_replication_slot('bascule_ro_probe', 'test_decoding')", {}))
            session.rows(("SELECT pg_drop_replication_slot('bascule_ro_probe')", {}))
        engine = sa.create_engine(sqlalchemy_url(hook))
        try:
            with engine.connect() as conn:
                assert conn.execute(sa.text("SHOW transaction_read_only")).scalar() == "on"
                with pytest.raises(sa.exc.DBAPIError, match="read-only transaction"):
                    conn.execute(sa.text("CREATE TEMP TABLE bascule_probe (i int)"))
        finally:
            engine.dispose()
