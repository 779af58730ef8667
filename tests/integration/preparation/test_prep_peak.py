"""The peak replay through the lab's real PgBouncer: every client active, latencies per type, the pool's wait."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration


def test_many_clients_through_pgbouncer_each_active(lab: Any, airflow_env: dict[str, str], tmp_path) -> None:
    from bascule.hooks.assessment import AssessmentHook
    from bascule.hooks.pgbouncer import PgBouncerHook
    from bascule.plan import default_plan_path, load_plan
    from bascule.preparation import peak, replay

    plan = load_plan(default_plan_path())
    endpoint = plan.cutover.endpoint.pgbouncer
    source = AssessmentHook(db_conn_id=plan.source.conn_id)
    pooler = PgBouncerHook(pgbouncer_conn_id=endpoint.admin_conn_id)
    # Small here (the bench runs 500): 60 client connections into the lab's pool of 20, 4 s.
    settings = peak.PeakSettings(clients=60, rate_tps=60, duration_s=4, threads=2, latency_limit_ms=3000)
    try:
        run = peak.run_through_pooler(source, pooler, settings, side="source", repeat=0,
                                      variables=replay.workload_variables(source), app_conn_id=endpoint.app_conn_id,
                                      database="clinic", workdir=tmp_path)
    finally:
        source.close()
    assert run.failed == 0 and run.transactions > 100
    assert run.active_clients >= 50 and run.min_client_tx >= 0  # Poisson arrivals: nearly all of them
    by_type = {s.script: s for s in run.stats}
    assert set(by_type) == set(settings.workload) and by_type["chart_read"].transactions > 0
    assert by_type["chart_read"].p95_ms >= by_type["chart_read"].p50_ms > 0
    wait = run.pool_wait
    # The counters moved by at least what pgbench completed (the pooler counts each statement of a chart open).
    assert wait["samples"] >= 8 and wait["pooled_xacts"] >= run.transactions and wait["maxwait_ms_p95"] >= 0
    assert list(tmp_path.iterdir()) == []  # the logs were read and removed
