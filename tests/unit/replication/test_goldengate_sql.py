"""GoldenGate heartbeat/SCN SQL as text, and the reading logic over a fake DB-API hook."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bascule.engines import goldengate_sql as sql
from bascule.hooks.oracle_heartbeat import OracleHeartbeatHook
from bascule.replication.base import ReplicationBroken, ReplicationState
from bascule.replication.goldengate import GoldenGateReplication, effective_lag, path_hops
from bascule.replication.none import NoReplication

pytestmark = pytest.mark.unit


def _binds(text: str) -> set[str]:
    return set(re.findall(r":([a-z_]+)", text.replace("'TZR'", "")))


class FakeDbHook:
    """Answers get_first/get_records from canned rows and records what was asked."""

    def __init__(self, first: Any = None, records: Any = None) -> None:
        self.first, self.records = first, records
        self.calls: list[tuple[str, Any]] = []

    def get_first(self, sql: str, parameters: Any = None) -> Any:
        self.calls.append((sql, parameters))
        return self.first

    def get_records(self, sql: str, parameters: Any = None) -> Any:
        self.calls.append((sql, parameters))
        return self.records


# -- SQL text --------------------------------------------------------------------


def test_current_scn_reads_v_database() -> None:
    assert sql.CURRENT_SCN == "SELECT current_scn FROM v$database"


def test_scn_to_utc_binds_the_scn_and_converts_to_utc() -> None:
    assert _binds(sql.SCN_TO_UTC) == {"scn"}
    assert "SCN_TO_TIMESTAMP(:scn)" in sql.SCN_TO_UTC
    assert "SYS_EXTRACT_UTC" in sql.SCN_TO_UTC


def test_gg_lag_selects_documented_columns_with_a_bind() -> None:
    text = sql.gg_lag_sql()
    assert text.startswith("SELECT local_database, current_local_ts, remote_database, incoming_path,")
    assert " FROM GG_LAG " in text
    for column in ("incoming_lag", "incoming_heartbeat_age", "outgoing_path", "outgoing_lag",
                   "outgoing_heartbeat_age"):
        assert column in text
    assert _binds(text) == {"remote_database"}


def test_gg_lag_history_is_bounded_by_time() -> None:
    text = sql.gg_lag_history_sql("ggadmin")
    assert " FROM GGADMIN.GG_LAG_HISTORY " in text
    assert "heartbeat_received_ts >= :since" in text
    assert _binds(text) == {"since", "remote_database"}


def test_watermark_reads_source_side_heartbeat_time() -> None:
    text = sql.applied_heartbeat_watermark_sql()
    assert text.startswith("SELECT MAX(incoming_heartbeat_ts) FROM GG_HEARTBEAT_HISTORY")
    assert _binds(text) == {"incoming_path"}


@pytest.mark.parametrize("owner", ["ggadmin; DROP TABLE x", "a.b", "1abc", "gg admin", '"GG"'])
def test_heartbeat_owner_rejects_anything_but_an_identifier(owner: str) -> None:
    with pytest.raises(ValueError):
        sql.gg_lag_sql(owner)


def test_no_value_is_formatted_into_sql() -> None:
    for text in (sql.gg_lag_sql("c##ggadmin"), sql.gg_lag_history_sql(), sql.applied_heartbeat_watermark_sql()):
        assert "'" not in text and "%" not in text and "{" not in text


# -- reading through a fake DB-API hook ---------------------------------------------------


def test_current_scn_and_scn_to_utc_through_the_hook() -> None:
    hook = OracleHeartbeatHook(oracle_conn_id="src", db_hook=FakeDbHook(first=(4242,)))
    assert hook.current_scn() == 4242
    fake = FakeDbHook(first=(datetime(2025, 1, 1, 12, 0, 0),))
    hook = OracleHeartbeatHook(oracle_conn_id="src", db_hook=fake)
    assert hook.scn_to_utc(4242) == datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert fake.calls == [(sql.SCN_TO_UTC, {"scn": 4242})]


def test_gg_lag_rows_are_typed() -> None:
    row = ("TGT", datetime(2025, 1, 1), "SRC", "EXTHOSP ==> REPHOSP", 2, timedelta(seconds=12.5),
           None, None, None)
    fake = FakeDbHook(records=[row])
    rows = OracleHeartbeatHook(oracle_conn_id="tgt", heartbeat_schema="ggadmin", db_hook=fake).gg_lag()
    assert rows[0].incoming_lag == 2.0
    assert rows[0].incoming_heartbeat_age == 12.5
    assert fake.calls[0] == (sql.gg_lag_sql("ggadmin"), {"remote_database": None})


def test_max_incoming_lag_since_takes_the_worst_spike() -> None:
    rows = [("T", datetime(2025, 1, 1), "S", "E ==> R", lag, None, None) for lag in (1, 45, 3)]
    hook = OracleHeartbeatHook(oracle_conn_id="tgt", db_hook=FakeDbHook(records=rows))
    assert hook.max_incoming_lag_since(datetime(2025, 1, 1, tzinfo=UTC)) == 45.0


# -- lag arithmetic ---------------------------------------------------------------


def test_path_hops() -> None:
    assert path_hops("EXT2 ==> REP2") == ["EXT2", "REP2"]
    assert path_hops("E ==> P ==> R") == ["E", "P", "R"]
    assert path_hops(None) == []


def test_effective_lag_grows_when_heartbeats_stop_arriving() -> None:
    assert effective_lag(2, 12.5, 60) == 2  # fresh heartbeat
    assert effective_lag(53, 97.78, 60) == pytest.approx(90.78)  # documented example: overdue
    assert effective_lag(None, 10, 60) is None


# -- applied_through with injected hooks --------------------------------------------


class FakeGG:
    def __init__(self, status: str) -> None:
        self.status = status

    def get_process_status(self, kind: str, name: str) -> dict[str, Any]:
        return {"status": self.status, "lag": "0"}


def _replication(status: str, source_time: datetime, watermark: datetime | None) -> GoldenGateReplication:
    rep = GoldenGateReplication(goldengate_conn_id="gg", extract="exthosp", replicat="rephosp",
                                source_oracle_conn_id="src", target_oracle_conn_id="tgt")
    rep.__dict__["gg"] = FakeGG(status)
    rep.__dict__["source_db"] = OracleHeartbeatHook(db_hook=FakeDbHook(first=(source_time,)))
    rep.__dict__["target_db"] = OracleHeartbeatHook(db_hook=FakeDbHook(first=(watermark,)))
    return rep


FREEZE = datetime(2025, 6, 1, 3, 0, 0)


def test_applied_through_needs_a_heartbeat_generated_after_the_freeze_plus_margin() -> None:
    assert _replication("running", FREEZE, FREEZE + timedelta(seconds=61)).applied_through("1000")
    assert not _replication("running", FREEZE, FREEZE + timedelta(seconds=2)).applied_through("1000")
    assert not _replication("running", FREEZE, None).applied_through("1000")
    # A drained, stopped replicat still answers from its last applied heartbeat.
    assert _replication("stopped", FREEZE, FREEZE + timedelta(seconds=5)).applied_through("1000")


def test_applied_through_raises_when_the_replicat_abended() -> None:
    with pytest.raises(ReplicationBroken, match="^replicat REPHOSP is ABENDED$"):
        _replication("abended", FREEZE, None).applied_through("1000")


def test_no_replication_has_nothing_to_wait_for() -> None:
    none = NoReplication()
    reading = none.reading()
    assert reading.state is ReplicationState.NOT_CONFIGURED
    assert reading.lag_seconds is None
    assert none.source_position() is None
    assert none.applied_through("anything") is True
    assert reading.to_json()["state"] == "not_configured"
