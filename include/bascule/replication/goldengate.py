"""Replication through Oracle GoldenGate Microservices (Oracle 19c source).

State comes from the Administration Service REST API (``info/status`` of the
extract and the replicat). End-to-end lag comes from GoldenGate's automatic
heartbeats, read from the REST ``heartbeatData`` endpoint, or from the target's
``GG_LAG`` view when no REST heartbeat connection is configured.

What the API does and does not expose, and so how positions are mapped:

* The documented ``info/status`` answers give the replicat's *trail* position
  (trail name, sequence, offset), not a source SCN, so no "applied SCN" exists
  to compare with. ``applied_through(scn)`` therefore turns the SCN into the
  source's own clock (``SCN_TO_TIMESTAMP``, plus a margin for its few-seconds
  precision) and waits until the target has applied a heartbeat generated on the
  source *after* that time. Heartbeats are transactions on the source, so once
  one committed after the freeze point has been applied, so has every
  transaction committed before it, provided the replicat applies in source
  commit order (classic/integrated Replicat, or Parallel Replicat with commit
  serialization). Both timestamps are on the source's clock: no skew.
* Lag: a heartbeat's lag only describes the moment it arrived. If heartbeats
  stop arriving, the flow is at least ``lag + age - frequency`` behind (the next
  heartbeat, due ``frequency`` seconds after the last one, has not arrived), so
  the reading reports ``max(lag, lag + age - frequency)``. A stalled flow thus
  never looks healthy just because its last heartbeat was fast.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from bascule.hooks.goldengate import GoldenGateApiError, GoldenGateHook
from bascule.hooks.oracle_heartbeat import OracleHeartbeatHook
from bascule.privacy.sanitize import SafeText
from bascule.replication.base import LagReading, Replication, ReplicationBroken, ReplicationState

# Documented status enum of info/status: starting, running, stopped, killed, abended.
_FAILED = frozenset({"abended", "killed"})

DEFAULT_HEARTBEAT_FREQUENCY_SECONDS = 60.0  # ADD HEARTBEATTABLE's documented default FREQUENCY
DEFAULT_SCN_TIME_MARGIN_SECONDS = 3.0


def path_hops(path: str | None) -> list[str]:
    """``"EXT2 ==> REP2"`` -> ``["EXT2", "REP2"]``."""
    return [hop.strip() for hop in (path or "").split("==>") if hop.strip()]


def effective_lag(lag: float | None, age: float | None, frequency: float) -> float | None:
    """Lower bound on the current end-to-end lag from the newest heartbeat's lag and age."""
    if lag is None:
        return None
    if age is None:
        return lag
    return max(lag, lag + age - frequency)


class GoldenGateReplication(Replication):
    """An extract/replicat pair, watched through REST and the heartbeat tables."""

    method = "goldengate"

    def __init__(
        self,
        *,
        goldengate_conn_id: str,
        extract: str,
        replicat: str,
        heartbeat_connection: str | None = None,
        source_oracle_conn_id: str | None = None,
        target_oracle_conn_id: str | None = None,
        extract_goldengate_conn_id: str | None = None,
        heartbeat_schema: str | None = None,
        heartbeat_incoming_path: str | None = None,
        expect_running: bool = True,
        heartbeat_frequency_seconds: float = DEFAULT_HEARTBEAT_FREQUENCY_SECONDS,
        scn_time_margin_seconds: float = DEFAULT_SCN_TIME_MARGIN_SECONDS,
    ) -> None:
        self.goldengate_conn_id = goldengate_conn_id
        # The extract may live in another deployment (source side of a distribution path).
        self.extract_goldengate_conn_id = extract_goldengate_conn_id or goldengate_conn_id
        self.extract = extract.upper()
        self.replicat = replicat.upper()
        self.heartbeat_connection = heartbeat_connection
        self.source_oracle_conn_id = source_oracle_conn_id
        self.target_oracle_conn_id = target_oracle_conn_id
        self.heartbeat_schema = heartbeat_schema
        self.heartbeat_incoming_path = heartbeat_incoming_path
        self.expect_running = expect_running
        self.heartbeat_frequency_seconds = float(heartbeat_frequency_seconds)
        self.scn_time_margin_seconds = float(scn_time_margin_seconds)

    @cached_property
    def gg(self) -> GoldenGateHook:
        return GoldenGateHook(goldengate_conn_id=self.goldengate_conn_id)

    @cached_property
    def gg_extract(self) -> GoldenGateHook:
        if self.extract_goldengate_conn_id == self.goldengate_conn_id:
            return self.gg
        return GoldenGateHook(goldengate_conn_id=self.extract_goldengate_conn_id)

    @cached_property
    def source_db(self) -> OracleHeartbeatHook:
        if not self.source_oracle_conn_id:
            raise ValueError("goldengate: source_oracle_conn_id is needed for SCN positions")
        return OracleHeartbeatHook(oracle_conn_id=self.source_oracle_conn_id)

    @cached_property
    def target_db(self) -> OracleHeartbeatHook | None:
        if not self.target_oracle_conn_id:
            return None
        return OracleHeartbeatHook(oracle_conn_id=self.target_oracle_conn_id,
                                   heartbeat_schema=self.heartbeat_schema)

    # -- status -----------------------------------------------------------------

    def _status(self, hook: GoldenGateHook, kind: str, name: str) -> tuple[str, dict[str, Any]]:
        try:
            document = hook.get_process_status(kind, name)
        except GoldenGateApiError as exc:
            if exc.status == 404:
                return "missing", {}
            raise
        return str(document.get("status", "unknown")).lower(), document

    def _problem(self, kind: str, name: str, status: str) -> str | None:
        if status == "missing":
            return f"{kind} {name} does not exist in the GoldenGate deployment"
        if status in _FAILED:
            return f"{kind} {name} is {status.upper()}"
        if status == "stopped" and self.expect_running:
            return f"{kind} {name} is STOPPED but expected to run"
        if status not in ("running", "starting", "stopped"):
            return f"{kind} {name} reports unknown status {status.upper()}"
        return None

    # -- lag ----------------------------------------------------------------------

    def _matches(self, path: str | None) -> bool:
        hops = path_hops(path)
        return bool(hops) and hops[-1] == self.replicat and (hops[0] == self.extract or len(hops) == 1)

    def _heartbeat_lag(self) -> tuple[float | None, dict[str, Any]]:
        frequency = self.heartbeat_frequency_seconds
        if self.heartbeat_connection:
            entries = [hb for hb in self.gg.get_heartbeat_data(self.heartbeat_connection)
                       if self._matches(hb.get("path"))]
            if entries:
                newest = min(entries, key=lambda hb: float(hb.get("ageSeconds", float("inf"))))
                lag, age = float(newest["lagSeconds"]), float(newest["ageSeconds"])
                return effective_lag(lag, age, frequency), {
                    "lag_source": "rest:heartbeatData", "heartbeat_lag_seconds": lag,
                    "heartbeat_age_seconds": age, "heartbeat_path": str(newest.get("path")),
                }
        if self.target_db is not None:
            rows = [r for r in self.target_db.gg_lag() if self._matches(r.incoming_path)]
            if rows:
                newest = min(rows, key=lambda r: r.incoming_heartbeat_age
                             if r.incoming_heartbeat_age is not None else float("inf"))
                return effective_lag(newest.incoming_lag, newest.incoming_heartbeat_age, frequency), {
                    "lag_source": "oracle:GG_LAG", "heartbeat_lag_seconds": newest.incoming_lag,
                    "heartbeat_age_seconds": newest.incoming_heartbeat_age,
                    "heartbeat_path": newest.incoming_path,
                }
        return None, {"lag_source": "none"}

    # -- Replication ----------------------------------------------------------------

    def reading(self) -> LagReading:
        observed_at = datetime.now(UTC)
        ext_status, ext_doc = self._status(self.gg_extract, "extract", self.extract)
        rep_status, rep_doc = self._status(self.gg, "replicat", self.replicat)
        details: dict[str, Any] = {
            "extract": self.extract, "extract_status": ext_status.upper(),
            "replicat": self.replicat, "replicat_status": rep_status.upper(),
            "replicat_process_lag_seconds": _number(rep_doc.get("lag")),
            "replicat_synchronized": rep_doc.get("synchronized"),
        }
        trail = rep_doc.get("position")
        if isinstance(trail, dict):
            details["replicat_trail_position"] = (
                f"{trail.get('name')}:{trail.get('sequence')}:{trail.get('offset')}"
            )

        problems = [p for p in (self._problem("replicat", self.replicat, rep_status),
                                self._problem("extract", self.extract, ext_status)) if p]
        if problems:
            return LagReading(state=ReplicationState.BROKEN, observed_at=observed_at,
                              cause=SafeText("; ".join(problems)), details=details)

        lag, lag_details = self._heartbeat_lag()
        details.update(lag_details)
        source_position = str(self.source_db.current_scn()) if self.source_oracle_conn_id else None

        if ext_status == rep_status == "running":
            return LagReading(state=ReplicationState.STREAMING, observed_at=observed_at,
                              lag_seconds=lag, source_position=source_position, details=details)
        not_running = [f"{k} {n} is {s.upper()}" for k, n, s in
                       (("replicat", self.replicat, rep_status), ("extract", self.extract, ext_status))
                       if s != "running"]
        return LagReading(state=ReplicationState.STOPPED, observed_at=observed_at, lag_seconds=lag,
                          source_position=source_position, cause=SafeText("; ".join(not_running)), details=details)

    def source_position(self) -> str | None:
        return str(self.source_db.current_scn())

    # -- lifecycle --------------------------------------------------------------------

    def disable(self, *, timeout_s: float = 120.0, poll_s: float = 1.0) -> None:
        """Stop the replicat (the extract keeps capturing; the trail keeps the changes for ``enable()``).

        Idempotent: a stopped replicat is left as it is. A failed one raises: a
        person must look at why it stopped before the cutover goes on.
        """
        self._lifecycle("stop", target="stopped", timeout_s=timeout_s, poll_s=poll_s)
        # Stopped on purpose from here on: readings say STOPPED, not BROKEN.
        self.expect_running = False

    def enable(self, *, timeout_s: float = 120.0, poll_s: float = 1.0) -> None:
        """Start the replicat again; it resumes from its checkpoint in the trail. Idempotent."""
        self._lifecycle("start", target="running", timeout_s=timeout_s, poll_s=poll_s)
        self.expect_running = True

    def start_capture(self, *, timeout_s: float = 120.0, poll_s: float = 1.0) -> None:
        """Start the extract (capture from this direction's source), without its replicat. Idempotent.

        The reverse path's first half (ADR 0055): started while the new database is still closed to the
        application, so it captures every write made after GO LIVE; its replicat stays stopped until then.
        The replicat must be stopped here: running, it would apply to the old database before the night
        is decided.
        """
        status, _ = self._status(self.gg, "replicat", self.replicat)
        if status == "missing" or status in _FAILED:
            raise ReplicationBroken(self._problem("replicat", self.replicat, status) or status)
        if status != "stopped":
            raise ReplicationBroken(f"replicat {self.replicat} is {status.upper()}: it must be stopped until "
                                    "GO LIVE (it would apply to the database it replicates into)")
        self._lifecycle("start", target="running", timeout_s=timeout_s, poll_s=poll_s, kind="extract")

    def _lifecycle(self, action: str, *, target: str, timeout_s: float, poll_s: float,
                   kind: str = "replicat") -> None:
        import time

        hook, name = (self.gg_extract, self.extract) if kind == "extract" else (self.gg, self.replicat)
        status, _ = self._status(hook, kind, name)
        if status == "missing" or status in _FAILED:
            raise ReplicationBroken(self._problem(kind, name, status) or status)
        if status == target:
            return
        hook.execute_command(action, kind, name)
        deadline = time.monotonic() + timeout_s
        while True:
            status, _ = self._status(hook, kind, name)
            if status == target:
                return
            if status == "missing" or status in _FAILED:
                raise ReplicationBroken(f"{kind} {name} is {status.upper()} after {action.upper()}")
            if time.monotonic() > deadline:
                raise ReplicationBroken(f"{kind} {name} still {status.upper()} {timeout_s:.0f} s "
                                        f"after {action.upper()}")
            time.sleep(poll_s)

    def applied_through(self, position: str) -> bool:
        scn = int(position)
        rep_status, _ = self._status(self.gg, "replicat", self.replicat)
        # A stopped replicat may be the drained end state; only a failed one can never get there.
        if rep_status in _FAILED or rep_status == "missing":
            raise ReplicationBroken(self._problem("replicat", self.replicat, rep_status) or rep_status)
        if self.target_db is None:
            raise ValueError("goldengate: target_oracle_conn_id is needed for applied_through")
        freeze_time = self.source_db.scn_to_utc(scn) + timedelta(seconds=self.scn_time_margin_seconds)
        watermark = self.target_db.applied_heartbeat_watermark(incoming_path=self.heartbeat_incoming_path)
        return watermark is not None and watermark >= freeze_time


def _number(value: Any) -> float | None:
    # The documented example sends "lag":"0" although the schema says integer.
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
