"""Read GoldenGate heartbeat views and SCN positions from Oracle through ``OracleHook``.

The database I/O is delegated to ``airflow.providers.oracle`` so credentials stay
in the Airflow Connection. Any object with ``get_first`` / ``get_records`` (the
DbApiHook API) can be injected as ``db_hook``, which is how the unit tests run
without a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, Protocol

from airflow.sdk.bases.hook import BaseHook

from bascule.engines import goldengate_sql as sql


class _DbApi(Protocol):
    def get_first(self, sql: str, parameters: Any = None) -> Any: ...

    def get_records(self, sql: str, parameters: Any = None) -> Any: ...


@dataclass(frozen=True)
class GgLagRow:
    """One ``GG_LAG`` row; lags and ages in seconds. Carries no user data, only process paths."""

    local_database: str | None
    current_local_ts: datetime | None
    remote_database: str | None
    incoming_path: str | None
    incoming_lag: float | None
    incoming_heartbeat_age: float | None
    outgoing_path: str | None
    outgoing_lag: float | None
    outgoing_heartbeat_age: float | None


def _seconds(value: Any) -> float | None:
    # The views expose lag as NUMBER in current releases; INTERVAL arrives as timedelta.
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"expected a timestamp, got {type(value).__name__}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class OracleHeartbeatHook(BaseHook):
    """SCN positions (source) and heartbeat lag/watermark (target) of a GoldenGate flow."""

    conn_name_attr = "oracle_conn_id"
    default_conn_name = "oracle_default"
    hook_name = "GoldenGate heartbeat views (Oracle)"

    def __init__(
        self,
        *,
        oracle_conn_id: str = default_conn_name,
        heartbeat_schema: str | None = None,
        db_hook: _DbApi | None = None,
    ) -> None:
        super().__init__()
        self.oracle_conn_id = oracle_conn_id
        # Validate now so a bad schema fails at DAG parse, not in the middle of a cutover.
        sql.heartbeat_owner(heartbeat_schema)
        self.heartbeat_schema = heartbeat_schema
        self._injected = db_hook

    @cached_property
    def db_hook(self) -> _DbApi:
        if self._injected is not None:
            return self._injected
        from airflow.providers.oracle.hooks.oracle import OracleHook

        return OracleHook(oracle_conn_id=self.oracle_conn_id)

    def current_scn(self) -> int:
        row = self.db_hook.get_first(sql.CURRENT_SCN)
        if not row or row[0] is None:
            raise RuntimeError("v$database returned no current_scn")
        return int(row[0])

    def scn_to_utc(self, scn: int) -> datetime:
        row = self.db_hook.get_first(sql.SCN_TO_UTC, parameters={"scn": int(scn)})
        ts = _utc(row[0]) if row else None
        if ts is None:
            raise RuntimeError("SCN_TO_TIMESTAMP returned nothing")
        return ts

    def gg_lag(self, *, remote_database: str | None = None) -> list[GgLagRow]:
        rows = self.db_hook.get_records(
            sql.gg_lag_sql(self.heartbeat_schema), parameters={"remote_database": remote_database}
        )
        return [
            GgLagRow(
                local_database=r[0],
                current_local_ts=_utc(r[1]),
                remote_database=r[2],
                incoming_path=r[3],
                incoming_lag=_seconds(r[4]),
                incoming_heartbeat_age=_seconds(r[5]),
                outgoing_path=r[6],
                outgoing_lag=_seconds(r[7]),
                outgoing_heartbeat_age=_seconds(r[8]),
            )
            for r in rows or []
        ]

    def max_incoming_lag_since(self, since: datetime, *, remote_database: str | None = None) -> float | None:
        """Worst ``incoming_lag`` in ``GG_LAG_HISTORY`` since ``since``: lag spikes between polls."""
        rows = self.db_hook.get_records(
            sql.gg_lag_history_sql(self.heartbeat_schema),
            parameters={"since": since.astimezone(UTC).replace(tzinfo=None),
                        "remote_database": remote_database},
        )
        lags = [lag for r in rows or [] if (lag := _seconds(r[4])) is not None]
        return max(lags) if lags else None

    def applied_heartbeat_watermark(self, *, incoming_path: str | None = None) -> datetime | None:
        """Source time (UTC) of the newest heartbeat applied on this (target) database."""
        row = self.db_hook.get_first(
            sql.applied_heartbeat_watermark_sql(self.heartbeat_schema),
            parameters={"incoming_path": incoming_path},
        )
        return _utc(row[0]) if row else None
