"""Reads for the migration view: Airflow's metadata database (its models) and the evidence store. Nothing else.

Runs in the API server's process, which already holds the metadata database's session factory; every query
filters on DAG ids the caller may read (``app.py`` passes them in).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from bascule.cockpit.data import GateRow, RunRows, TaskRow


def _xcom_value(row: Any) -> Any:
    from airflow.models.xcom import XComModel

    value = XComModel.deserialize_value(row)
    if isinstance(value, str):  # some values arrive as JSON text
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def list_runs(dag_ids: Iterable[str], *, limit: int = 20) -> list[dict[str, Any]]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = (session.query(DagRun).filter(DagRun.dag_id.in_(list(dag_ids)))
                .order_by(DagRun.run_after.desc()).limit(limit).all())
        return [{"dag_id": r.dag_id, "run_id": r.run_id, "state": str(r.state),
                 "start_date": r.start_date.isoformat() if r.start_date else None,
                 "end_date": r.end_date.isoformat() if r.end_date else None,
                 "rehearsal": bool((r.conf or {}).get("rehearsal"))} for r in runs]


def load_run(dag_id: str, run_id: str, *, keys: Iterable[str] | None = None) -> RunRows | None:
    """One run's task instances, XComs (``keys`` only, when given) and HITL details."""
    from airflow.models.dagrun import DagRun
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == run_id).one_or_none()
        if run is None:
            return None
        tis = session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id,
                                                 TaskInstance.run_id == run_id).all()
        query = session.query(XComModel).filter(XComModel.dag_id == dag_id, XComModel.run_id == run_id)
        if keys is not None:
            query = query.filter(XComModel.key.in_(list(keys)))
        xcoms: dict[str, dict[str, Any]] = {}
        for row in query.all():
            xcoms.setdefault(row.task_id, {})[row.key] = _xcom_value(row)
        ti_ids = {ti.id: ti.task_id for ti in tis}
        gates = []
        if ti_ids:
            for h in session.query(HITLDetail).filter(HITLDetail.ti_id.in_(list(ti_ids))).all():
                gates.append(GateRow(
                    task_id=ti_ids[h.ti_id], subject=h.subject, assignees=list(h.assignees or []),
                    created_at=h.created_at, responded=h.responded_at is not None,
                    chosen_options=list(h.chosen_options or []) or None, params_input=dict(h.params_input or {}),
                    responded_by=dict(h.responded_by) if h.responded_by else None))
        return RunRows(dag_id=dag_id, run_id=run_id, state=str(run.state), start_date=run.start_date,
                       end_date=run.end_date, gates=gates, xcoms=xcoms,
                       tasks=[TaskRow(task_id=ti.task_id, state=str(ti.state) if ti.state else None,
                                      start_date=ti.start_date, end_date=ti.end_date, hostname=ti.hostname)
                              for ti in tis])


def latest_xcoms(dag_id: str, *, key: str = "return_value") -> tuple[str | None, dict[str, Any]]:
    """The latest run of ``dag_id`` that pushed ``key``: its run id, and each task's value."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        latest = (session.query(XComModel.run_id).filter(XComModel.dag_id == dag_id, XComModel.key == key)
                  .order_by(XComModel.timestamp.desc()).first())
        if latest is None:
            return None, {}
        rows = session.query(XComModel).filter(XComModel.dag_id == dag_id, XComModel.run_id == latest[0],
                                               XComModel.key == key).all()
        return latest[0], {r.task_id: _xcom_value(r) for r in rows}
