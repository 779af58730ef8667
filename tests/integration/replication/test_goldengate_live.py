"""GoldenGate and Oracle, live. Skipped unless a real deployment and database are named.

Required: ``BASCULE_GG_URL`` (e.g. ``https://ogg.example:9012`` or with the
reverse-proxy prefix ``https://ogg.example/hospdep/adminsrvr``),
``BASCULE_GG_USER``, ``BASCULE_GG_PASSWORD``, ``BASCULE_ORACLE_TARGET_DSN``
(``user/password@host:port/service``: the target, where the replicat records the heartbeats).
Optional: ``BASCULE_GG_EXTRACT``, ``BASCULE_GG_REPLICAT``, ``BASCULE_GG_CONNECTION``
(``domain.alias``), ``BASCULE_GG_VERIFY`` (``false`` or a CA bundle path).

These also check the parts SOURCES.md marks as not confirmed from Oracle's pages:
the GG_LAG / GG_LAG_HISTORY / GG_HEARTBEAT_HISTORY column names.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from bascule.hooks.goldengate import GoldenGateHook
from bascule.hooks.oracle_heartbeat import OracleHeartbeatHook
from bascule_lab.testing import oracle_live as live

_REQUIRED = (live.GG_URL, live.GG_USER, live.GG_PASSWORD, live.TARGET_DSN)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.oracle_live,
    pytest.mark.skipif(not all(os.environ.get(v) for v in _REQUIRED),
                       reason="needs " + ", ".join(_REQUIRED)),
]

STATUSES = {"starting", "running", "stopped", "killed", "abended"}


@pytest.fixture
def gg(monkeypatch: pytest.MonkeyPatch) -> GoldenGateHook:
    try:
        monkeypatch.setenv("AIRFLOW_CONN_GG_LIVE", live.goldengate_connection())
    except live.LiveSettingError as exc:
        pytest.fail(str(exc), pytrace=False)
    return GoldenGateHook(goldengate_conn_id="gg_live")


@pytest.fixture
def oracle(monkeypatch: pytest.MonkeyPatch) -> OracleHeartbeatHook:
    try:
        monkeypatch.setenv("AIRFLOW_CONN_ORACLE_LIVE", live.oracle_connection(live.TARGET_DSN))
    except live.LiveSettingError as exc:
        pytest.fail(str(exc), pytrace=False)
    return OracleHeartbeatHook(oracle_conn_id="oracle_live",
                               heartbeat_schema=os.environ.get("BASCULE_GG_HEARTBEAT_SCHEMA"))


def test_rest_service_answers(gg: GoldenGateHook) -> None:
    ok, message = gg.test_connection()
    assert ok, message


@pytest.mark.parametrize("kind,var", [("extract", "BASCULE_GG_EXTRACT"), ("replicat", "BASCULE_GG_REPLICAT")])
def test_process_status_has_documented_fields(gg: GoldenGateHook, kind: str, var: str) -> None:
    name = os.environ.get(var) or pytest.skip(f"{var} not set")
    status = gg.get_process_status(kind, name)
    assert str(status["status"]).lower() in STATUSES


def test_heartbeat_data_has_documented_fields(gg: GoldenGateHook) -> None:
    connection = os.environ.get("BASCULE_GG_CONNECTION") or pytest.skip("BASCULE_GG_CONNECTION not set")
    for beat in gg.get_heartbeat_data(connection):
        assert {"lagSeconds", "ageSeconds", "path"} <= beat.keys() or "processName" in beat


def test_scn_and_its_source_time(oracle: OracleHeartbeatHook) -> None:
    scn = oracle.current_scn()
    assert scn > 0
    assert abs(oracle.scn_to_utc(scn) - datetime.now(UTC)) < timedelta(minutes=5)


def test_heartbeat_views_have_the_expected_columns(oracle: OracleHeartbeatHook) -> None:
    oracle.gg_lag()
    oracle.max_incoming_lag_since(datetime.now(UTC) - timedelta(hours=1))
    oracle.applied_heartbeat_watermark()
