"""A recording double of two Oracle databases: DB-API connections that answer from a script and record
every statement, for the Oracle night under ``dag.test()`` (tests/integration/runbook/test_oracle_night.py).

Every statement is labelled by the first pattern of :data:`LABELS` it matches (an unlabelled statement
is recorded as ``?`` and fails the test that reads the record), answered by the scenario, and kept with
its connection id and binds. The scenario is a healthy night by default; a test changes one answer to
script a failure (a session that survives the freeze, say).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# (label, pattern), first match wins.
LABELS: tuple[tuple[str, str], ...] = (
    ("session_setup", r"^ALTER SESSION "),
    ("meta", r"FROM all_tables WHERE owner = 'BASCULE_META'"),
    ("probe_grant", r"^GRANT INSERT ON BASCULE_META\.WRITE_PROBE"),
    ("probe_write", r"^INSERT INTO BASCULE_META\.WRITE_PROBE"),
    ("freeze_proof", r"dba_2pc_pending"),
    ("freeze_grants", r"FROM dba_tab_privs p\s+JOIN dba_objects o .* UNION ALL\s+SELECT 'column'"),
    ("role", r"FROM dba_users WHERE username = :role"),
    ("record_freeze", r"^INSERT INTO BASCULE_META\.FREEZE_STATE"),
    ("update_grants", r"SET grants = :grants"),
    ("mark_frozen", r"SET frozen_at ="),
    ("read_frozen", r"^SELECT frozen_at, frozen_position FROM BASCULE_META"),
    ("release_freeze", r"SET released_at = SYSTIMESTAMP"),
    ("active_freeze", r"FROM BASCULE_META\.FREEZE_STATE WHERE role_name = :role AND released_at IS NULL"),
    ("restrict", r"^ALTER SYSTEM ENABLE RESTRICTED SESSION$"),
    ("unrestrict", r"^ALTER SYSTEM DISABLE RESTRICTED SESSION$"),
    ("stop_service", r"DBMS_SERVICE\.STOP_SERVICE"),
    ("start_service", r"DBMS_SERVICE\.START_SERVICE"),
    ("revoke", r"^REVOKE "),
    ("grant", r"^GRANT "),
    ("lock_user", r"^ALTER USER .* ACCOUNT LOCK$"),
    ("unlock_user", r"^ALTER USER .* ACCOUNT UNLOCK$"),
    ("sessions", r"FROM gv\$session"),
    ("kill", r"^ALTER SYSTEM KILL SESSION "),
    ("restore_point_lookup", r"FROM v\$restore_point WHERE name = :name"),
    ("create_restore_point", r"^CREATE RESTORE POINT "),
    ("identity", r"FROM v\$containers"),
    ("position", r"SELECT TO_CHAR\(current_scn\), SYSTIMESTAMP FROM v\$database"),
    ("current_scn", r"^SELECT current_scn FROM v\$database$"),
    ("scn_to_utc", r"SCN_TO_TIMESTAMP\(:scn\)"),
    ("gg_watermark", r"GG_HEARTBEAT_HISTORY"),
    ("gg_lag", r"GG_LAG"),
    ("sequences", r"FROM dba_sequences WHERE sequence_owner IN"),
    ("sequence_last", r"SELECT last_number FROM dba_sequences"),
    ("advance_sequence", r"^ALTER SEQUENCE "),
    ("constraints", r"FROM dba_constraints WHERE owner IN"),
    ("triggers", r"FROM dba_triggers"),
    ("inventory_tables", r"FROM all_tables t\s+WHERE t\.owner IN"),
    ("table_columns", r"FROM all_tab_columns\s+WHERE owner = :owner AND table_name = :table_name\s+ORDER BY column_id"),
    ("primary_key", r"FROM all_constraints c\s+JOIN all_cons_columns"),
    ("key_bounds", r"^SELECT MIN\(.*\), MAX\(.*\) FROM "),
    ("range_hashes", r"^SELECT bucket, COUNT\(\*\), SUM\(row_hash\)"),
    ("rows_by_keys", r"^SELECT t\.\".* IN \(\(:k0_0"),
    ("leaf_rows", r'^SELECT t\."[^"]+"(, t\."[^"]+")*, '),
    ("count_rows", r"^SELECT count\(\*\) FROM "),
    ("ping", r"^SELECT 1 FROM dual$"),
    ("server_name", r"SYS_CONTEXT\('USERENV', 'INSTANCE_NAME'\)"),
    ("server_version", r"FROM product_component_version"),
    ("smoke_write", r"^INSERT INTO hosp\."),
    ("smoke_read", r"FROM hosp\."),
)


def label(sql: str) -> str:
    text = " ".join(sql.split())
    for name, pattern in LABELS:
        if re.search(pattern, text, re.IGNORECASE | re.DOTALL):
            return name
    return "?"


@dataclass
class Sent:
    conn_id: str
    label: str
    sql: str
    binds: dict[str, Any]


Answer = Callable[[str, str, str, dict[str, Any]], Any]


@dataclass
class OracleNight:
    """The scenario: two databases (by connection id) whose answers make a healthy night.

    ``surviving_session``: the source's application session is still listed after every KILL.
    ``mismatch_after_freeze``: once the source is frozen, the target's hash of one key range differs (a row
    lost in the drain, say): the window's comparison must fail the night.
    """

    source_conn_ids: tuple[str, ...]
    target_conn_ids: tuple[str, ...]
    tables: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # "OWNER.TABLE" -> source columns
    target_columns: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    surviving_session: bool = False
    mismatch_after_freeze: bool = False
    sent: list[Sent] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _freeze: dict[str, Any] = field(default_factory=dict)  # side -> the recorded freeze row
    _differing: set[int] = field(default_factory=set)  # keys whose row differs on the target

    def side(self, conn_id: str) -> str:
        if conn_id in self.source_conn_ids:
            return "source"
        if conn_id in self.target_conn_ids:
            return "target"
        raise AssertionError(f"the double knows no connection {conn_id!r}")

    def labels(self, conn_id: str | None = None) -> list[str]:
        return [s.label for s in self.sent if conn_id is None or s.conn_id == conn_id]

    def connection(self, conn_id: str) -> DoubleConnection:
        return DoubleConnection(self, conn_id)

    # ------------------------------------------------------------------------------------- answers
    def answer(self, conn_id: str, name: str, sql: str, binds: dict[str, Any]) -> Any:
        side = self.side(conn_id)
        now = datetime.now(UTC)
        if name == "role":
            return [(1, None)]
        if name == "active_freeze":
            row = self._freeze.get(side)
            return [row] if row is not None else []
        if name == "record_freeze":
            self._freeze[side] = (7 if side == "source" else 8, binds["grants"], binds["can_login"],
                                  binds["services"], now, None)
            return None
        if name == "release_freeze":
            self._freeze.pop(side, None)
            return None
        if name == "read_frozen":
            return [(now, "4242000" if side == "source" else "9191000")]
        if name == "freeze_grants":
            return [("table", "HOSP", "PATIENTS", "INSERT", 0, None, None),
                    ("table", "HOSP", "PATIENTS", "UPDATE", 0, None, None)]
        if name == "sessions":
            if side == "source" and (self.surviving_session or not self._killed(conn_id)):
                return [(101, 7, 1)]
            return []
        if name == "freeze_proof":
            return []
        if name == "restore_point_lookup":
            made = [s for s in self.sent if s.conn_id == conn_id and s.label == "create_restore_point"]
            return [("4241000", now, "YES")] if made else []
        if name == "identity":
            return [("1111" if side == "source" else "2222", "-")]
        if name in ("position", "current_scn"):
            return [("4242000", now)] if name == "position" else [(4242000,)]
        if name == "scn_to_utc":
            return [(now.replace(tzinfo=None) - timedelta(seconds=30),)]
        if name == "gg_watermark":
            return [(now.replace(tzinfo=None),)]
        if name == "gg_lag":
            return []
        if name in ("sequences", "constraints", "triggers"):
            return []
        if name == "inventory_tables":
            return [(t.split(".")[0], t.split(".")[1], 0, 0, 1 << 20, "PATIENT_ID", "supplemental")
                    for t in self.tables]
        if name == "table_columns":
            key = f"{binds['owner']}.{binds['table_name']}"
            return list((self.tables if side == "source" else self.target_columns).get(key, []))
        if name == "primary_key":
            return [("PATIENT_ID", "NUMBER")]
        if name == "key_bounds":
            return [(1, 1000)]
        if name == "range_hashes":
            if side == "target" and self.mismatch_after_freeze and self._source_frozen():
                return [(0, 500, 987654321), (1, 500, 123456780)]
            return [(0, 500, 987654321), (1, 500, 123456789)]
        if name == "leaf_rows":
            # A few rows of the range; with the scripted difference, its first key's row differs on the target.
            lo = int(binds.get("r_lo", 1))
            keys = range(lo, min(int(binds.get("r_hi", lo + 3)), lo + 3))
            if side == "target" and self.mismatch_after_freeze and self._source_frozen():
                self._differing.add(lo)
            return [(k, self._row_hash(side, k)) for k in keys]
        if name == "rows_by_keys":
            keys = [v for k, v in sorted(binds.items()) if k.startswith("k")]
            return [(k, self._row_hash(side, k)) for k in keys]
        if name == "count_rows":
            return [(1000,)]
        if name in ("ping", "smoke_read"):
            return [(1,)]
        if name == "server_name":
            return [("HOSP1",)]
        if name == "server_version":
            return [("12.2.0.1.0" if side == "source" else "19.0.0.0.0",)]
        return [] if sql.lstrip().upper().startswith(("SELECT", "WITH")) else None

    def _row_hash(self, side: str, key: Any) -> int:
        return 1000 + int(key) + (1 if side == "target" and key in self._differing else 0)

    def _source_frozen(self) -> bool:
        return any(s.label == "mark_frozen" and self.side(s.conn_id) == "source" for s in self.sent)

    def _killed(self, conn_id: str) -> bool:
        return any(s.conn_id == conn_id and s.label == "kill" for s in self.sent)


class DoubleCursor:
    def __init__(self, conn: DoubleConnection) -> None:
        self.conn = conn
        self.description: Any = None
        self.rowcount = -1
        self._rows: list[tuple[Any, ...]] = []

    def __enter__(self) -> DoubleCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, sql: str, params: Any = None, **kwargs: Any) -> None:
        binds = dict(params or {}) if isinstance(params, dict) else {}
        night = self.conn.night
        name = label(sql)
        with night._lock:
            night.sent.append(Sent(self.conn.conn_id, name, sql, binds))
            rows = night.answer(self.conn.conn_id, name, sql, binds)
        self.description = None if rows is None else [("c",)]
        self._rows = list(rows or [])
        self.rowcount = len(self._rows) if rows is not None else 1

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def close(self) -> None:
        pass


class DoubleConnection:
    def __init__(self, night: OracleNight, conn_id: str) -> None:
        self.night = night
        self.conn_id = conn_id
        self.autocommit = False
        self.closed = False
        self.module: str | None = None

    def cursor(self) -> DoubleCursor:
        if self.closed:
            raise AssertionError(f"{self.conn_id}: cursor() on a closed connection")
        return DoubleCursor(self)

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def driver_connect(night: OracleNight) -> Callable[..., DoubleConnection]:
    """A stand-in for ``oracledb.connect``: the provider's OracleHook builds the DSN from the Airflow
    connection, whose host names the double's connection id (see :func:`connection_json`)."""

    def connect(*args: Any, dsn: str | None = None, **kwargs: Any) -> DoubleConnection:
        conn_id = (dsn or "").split(":", 1)[0].split("/", 1)[0].removesuffix(DSN_SUFFIX)
        night.side(conn_id)  # an unknown DSN fails here, naming it
        return night.connection(conn_id)

    return connect


DSN_SUFFIX = ".oracle-double.invalid"


def connection_json(conn_id: str) -> str:
    """The Airflow connection (``AIRFLOW_CONN_<ID>``) whose DSN leads :func:`driver_connect` to ``conn_id``."""
    import json

    return json.dumps({"conn_type": "oracle", "host": conn_id + DSN_SUFFIX, "login": "bascule",
                       "password": "double"})
