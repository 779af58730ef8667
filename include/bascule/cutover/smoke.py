"""Smoke tests through the application's endpoint: a chart read and a rolled-back write.

Run as the application role, through the endpoint (in the lab the PgBouncer
``clinic_smoke`` entry, which follows every switch but is never paused). Only
counts, keys and SQLSTATE classes come back, never a value of the chart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from psycopg import sql


@dataclass(frozen=True)
class SmokeResult:
    server: str  # cluster_name of the server that answered ('' if unset)
    patient_id: int
    chart: dict[str, int]  # row counts per chart section
    read_ok: bool
    write_ok: bool
    write_error: str | None  # SQLSTATE class name when the write was refused
    observation_id: int | None  # key the rolled-back insert got (never visible afterwards)
    seconds: float

    @property
    def ok(self) -> bool:
        return self.read_ok and self.write_ok

    def as_dict(self) -> dict[str, Any]:
        return {"server": self.server, "patient_id": self.patient_id, "chart": self.chart,
                "read_ok": self.read_ok, "write_ok": self.write_ok, "write_error": self.write_error,
                "observation_id": self.observation_id, "seconds": round(self.seconds, 3), "ok": self.ok}


def read_chart(conn: Any, patient_id: int, *, schema: str = "clinic") -> dict[str, int]:
    """Counts of one patient's chart sections; raises LookupError if the patient is absent."""
    s = sql.Identifier(schema)
    q = sql.SQL("""
        SELECT (SELECT count(*) FROM {s}.patients WHERE patient_id = %(p)s),
               (SELECT count(*) FROM {s}.encounters WHERE patient_id = %(p)s),
               (SELECT count(*) FROM {s}.prescriptions WHERE patient_id = %(p)s),
               (SELECT count(*) FROM {s}.observations o JOIN {s}.encounters e USING (encounter_id)
                 WHERE e.patient_id = %(p)s),
               (SELECT count(*) FROM {s}.clinical_notes n JOIN {s}.encounters e USING (encounter_id)
                 WHERE e.patient_id = %(p)s)""").format(s=s)
    patients, encounters, prescriptions, observations, notes = conn.execute(q, {"p": patient_id}).fetchone()
    if not patients:
        raise LookupError(f"patient_id {patient_id} not found")
    return {"encounters": encounters, "prescriptions": prescriptions, "observations": observations,
            "clinical_notes": notes}


def write_observation_rolled_back(conn: Any, patient_id: int, *, schema: str = "clinic") -> int:
    """Insert an observation on the patient's latest encounter, check it is visible, roll back.

    Returns the key it had. The transaction never commits, whatever happens.
    """
    s = sql.Identifier(schema)
    with conn.transaction(force_rollback=True):
        row = conn.execute(sql.SQL(
            "SELECT encounter_id FROM {s}.encounters WHERE patient_id = %s ORDER BY admitted_at DESC LIMIT 1"
        ).format(s=s), (patient_id,)).fetchone()
        if row is None:
            raise LookupError(f"patient_id {patient_id} has no encounter to write an observation on")
        (obs_id,) = conn.execute(sql.SQL(
            "INSERT INTO {s}.observations (encounter_id, code, value_num, unit, observed_at) "
            "VALUES (%s, 'SMOKE', 0, 'n/a', now()) RETURNING observation_id").format(s=s), (row[0],)).fetchone()
        (seen,) = conn.execute(sql.SQL("SELECT count(*) FROM {s}.observations WHERE observation_id = %s")
                               .format(s=s), (obs_id,)).fetchone()
        if seen != 1:
            raise RuntimeError("the smoke observation is not visible inside its own transaction")
    return int(obs_id)


def run_smoke(conn: Any, *, patient_id: int | None = None, schema: str = "clinic") -> SmokeResult:
    """Both smoke tests on ``conn`` (autocommit psycopg connection as the application role)."""
    import psycopg

    started = time.monotonic()
    (server,) = conn.execute("SELECT current_setting('cluster_name')").fetchone()
    if patient_id is None:
        (patient_id,) = conn.execute(sql.SQL("SELECT min(patient_id) FROM {}.encounters")
                                     .format(sql.Identifier(schema))).fetchone()
        if patient_id is None:
            raise LookupError("no patient with an encounter to smoke-test")
    chart = read_chart(conn, patient_id, schema=schema)
    write_ok, error, obs_id = True, None, None
    try:
        obs_id = write_observation_rolled_back(conn, patient_id, schema=schema)
    except psycopg.Error as exc:
        # The class only (e.g. InsufficientPrivilege): messages can carry values.
        write_ok, error = False, type(exc).__name__
    return SmokeResult(server=str(server), patient_id=int(patient_id), chart=chart, read_ok=True,
                       write_ok=write_ok, write_error=error, observation_id=obs_id,
                       seconds=time.monotonic() - started)


def smoke_through(app_conn_id: str, *, database: str | None = None, patient_id: int | None = None,
                  schema: str = "clinic") -> SmokeResult:
    """Smoke tests through an Airflow connection (the endpoint's application connection)."""
    import psycopg
    from airflow.sdk import BaseHook

    c = BaseHook.get_connection(app_conn_id)
    # prepare_threshold=None: PgBouncer's transaction pooling forbids server-side prepared statements.
    with psycopg.connect(host=c.host, port=c.port, user=c.login, password=c.password,
                         dbname=database or c.schema, autocommit=True, connect_timeout=10,
                         prepare_threshold=None) as conn:
        return run_smoke(conn, patient_id=patient_id, schema=schema)
