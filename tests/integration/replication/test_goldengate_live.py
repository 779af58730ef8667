"""GoldenGate and Oracle, live. Skipped unless a real deployment and database are named.

Required: ``BASCULE_GG_URL`` (e.g. ``https://ogg.example:9012`` or with the
reverse-proxy prefix ``https://ogg.example/hospdep/adminsrvr``),
``BASCULE_GG_USER``, ``BASCULE_GG_PASSWORD``, ``BASCULE_ORACLE_SOURCE_DSN`` (its SCN) and
``BASCULE_ORACLE_TARGET_DSN`` (``user/password@host:port/service``: where the replicat records the heartbeats).
Optional: ``BASCULE_GG_EXTRACT``, ``BASCULE_GG_REPLICAT``, ``BASCULE_GG_CONNECTION``
(``domain.alias``), ``BASCULE_GG_VERIFY`` (``false`` or a CA bundle path).

These also check the parts SOURCES.md marks as not confirmed from Oracle's pages:
the GG_LAG / GG_LAG_HISTORY / GG_HEARTBEAT_HISTORY column names.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import NoReturn

import pytest

from bascule.hooks.database import MigrationDatabaseError, MigrationDatabaseHook
from bascule.hooks.goldengate import GoldenGateHook
from bascule.hooks.oracle_heartbeat import OracleHeartbeatHook
from bascule_lab.testing import oracle_live as live

_REQUIRED = (live.GG_URL, live.GG_USER, live.GG_PASSWORD, live.SOURCE_DSN, live.TARGET_DSN)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.oracle_live,
    pytest.mark.skipif(not all(os.environ.get(v) for v in _REQUIRED),
                       reason="needs " + ", ".join(_REQUIRED)),
]

def _fail(message: str) -> NoReturn:
    # One line: what is wrong and where, without the driver's chained errors.
    raise pytest.fail.Exception(message, pytrace=False) from None


STATUSES = {"starting", "running", "stopped", "killed", "abended"}


@pytest.fixture
def gg(monkeypatch: pytest.MonkeyPatch) -> GoldenGateHook:
    try:
        monkeypatch.setenv("AIRFLOW_CONN_GG_LIVE", live.goldengate_connection())
    except live.LiveSettingError as exc:
        _fail(str(exc))
    return GoldenGateHook(goldengate_conn_id="gg_live")


def _heartbeat_hook(monkeypatch: pytest.MonkeyPatch, var: str) -> OracleHeartbeatHook:
    conn_id = f"oracle_live_{var.lower()}"
    try:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", live.oracle_connection(var))
        # Through the product's hook: its error is sanitised and names the connection.
        MigrationDatabaseHook(db_conn_id=conn_id, engine="oracle").connect().close()
    except live.LiveSettingError as exc:
        _fail(str(exc))
    except MigrationDatabaseError as exc:
        _fail(f"{var} ({live.dsn_target(var)}): {exc}")
    return OracleHeartbeatHook(oracle_conn_id=conn_id, heartbeat_schema=os.environ.get("BASCULE_GG_HEARTBEAT_SCHEMA"))


@pytest.fixture
def source(monkeypatch: pytest.MonkeyPatch) -> OracleHeartbeatHook:
    """The source: its SCN positions."""
    return _heartbeat_hook(monkeypatch, live.SOURCE_DSN)


@pytest.fixture
def target(monkeypatch: pytest.MonkeyPatch) -> OracleHeartbeatHook:
    """The target, where the replicat records the heartbeats: the lag and the watermark."""
    return _heartbeat_hook(monkeypatch, live.TARGET_DSN)


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


def test_scn_and_its_source_time(source: OracleHeartbeatHook) -> None:
    scn = source.current_scn()
    assert scn > 0
    assert abs(source.scn_to_utc(scn) - datetime.now(UTC)) < timedelta(minutes=5)


def test_heartbeat_views_have_the_expected_columns(target: OracleHeartbeatHook) -> None:
    target.gg_lag()
    target.max_incoming_lag_since(datetime.now(UTC) - timedelta(hours=1))
    target.applied_heartbeat_watermark()
