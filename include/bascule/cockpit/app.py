"""The migration view: a FastAPI app the Airflow API server serves under ``/bascule`` (ADR 0045).

Every route depends on an Airflow login: ``requires_authenticated`` for the page and its assets, and
``requires_access_dag`` (the user's DAG permissions, from whatever auth manager the deployment runs) for the
data. A plugin's FastAPI routes are not protected by Airflow unless they ask, so each route here asks.
The page and its script are served by the app itself (no CDN): it works on an isolated network.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from importlib import resources
from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag, requires_authenticated
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse, Response

from bascule.cockpit import data

ASSETS = {"cockpit.js": "text/javascript", "cockpit.css": "text/css"}
URL_PREFIX = "/bascule"

app = FastAPI(title="bascule migration view", docs_url=None, redoc_url=None, openapi_url=None)
can_read_run = Depends(requires_access_dag("GET", DagAccessEntity.RUN))
logged_in = Depends(requires_authenticated())


@lru_cache(maxsize=1)
def _plan() -> Any:
    from bascule.plan import default_plan_path, load_plan

    return load_plan(default_plan_path())


def _base_url() -> str:
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback="") or ""


def _asset(name: str) -> str:
    return resources.files("bascule.cockpit").joinpath("static", name).read_text()


@app.get("/", response_class=HTMLResponse, dependencies=[logged_in])
async def page() -> HTMLResponse:
    return HTMLResponse(_asset("index.html"))


@app.get("/assets/{name}", dependencies=[logged_in])
async def asset(name: str) -> Response:
    if name not in ASSETS:
        raise HTTPException(status_code=404, detail="no such asset")
    return Response(_asset(name), media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})


def _readable(user: Any) -> set[str]:
    from airflow.api_fastapi.app import get_auth_manager

    return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))


@app.get("/api/runs")
async def runs(user: GetUserDep) -> dict[str, Any]:
    """The runbooks' runs the user may read, newest first."""
    from bascule.cockpit import metadata

    allowed = await asyncio.to_thread(_readable, user)
    dag_ids = [d for d in data.BASCULE_RUNBOOK_DAGS if d in allowed]
    return {"runs": await asyncio.to_thread(metadata.list_runs, dag_ids) if dag_ids else []}


def _night(dag_id: str, run_id: str) -> dict[str, Any]:
    from bascule.cockpit import metadata
    from bascule.runbook.report import previous_report
    from bascule.today import utc_now

    try:
        runbook = data.runbook_for(dag_id)
    except KeyError as exc:
        raise HTTPException(status_code=404, detail=exc.args[0]) from None
    rows = metadata.load_run(dag_id, run_id)
    if rows is None:
        raise HTTPException(status_code=404, detail=f"no run {run_id!r} of {dag_id!r}")
    plan = _plan()
    try:
        previous = previous_report(plan.name, dag_id, before_run=run_id)
    except (OSError, ValueError):
        previous = None
    return data.night(rows, runbook=runbook, plan=plan, now=utc_now(), base_url=_base_url(),
                      previous_report=previous)


@app.get("/api/night/{dag_id}/{run_id}", dependencies=[can_read_run])
async def night(dag_id: str, run_id: str) -> dict[str, Any]:
    return await asyncio.to_thread(_night, dag_id, run_id)


def _validation(dag_id: str, run_id: str) -> dict[str, Any]:
    from bascule.cockpit import metadata
    from bascule.hooks import evidence

    rows = metadata.load_run(dag_id, run_id)
    if rows is None:
        raise HTTPException(status_code=404, detail=f"no run {run_id!r} of {dag_id!r}")
    folder = evidence.run_folder(_plan().name, dag_id, run_id)
    docs = []
    if folder.exists():
        for p in folder.glob("*.json"):
            if p.name not in {"report.json", "manifest.json", "validation.json"}:
                doc = evidence.read_json(p)
                if isinstance(doc, dict) and isinstance(doc.get("tables"), list):
                    docs.append(doc)
    return data.validation(rows, docs)


@app.get("/api/validation/{dag_id}/{run_id}", dependencies=[can_read_run])
async def validation(dag_id: str, run_id: str) -> dict[str, Any]:
    return await asyncio.to_thread(_validation, dag_id, run_id)


def _preparation() -> dict[str, Any]:
    from bascule.cockpit import metadata
    from bascule.hooks import evidence
    from bascule.preparation import rehearsal

    plan = _plan()
    history = rehearsal.load_history(plan.name)
    run_id, values = metadata.latest_xcoms("prepare")
    readiness = next((v for v in values.values() if isinstance(v, dict) and "html" in v), None)
    storage = next((v for v in values.values() if isinstance(v, dict) and "before_bytes" in v), None)
    folder = evidence.dag_folder(plan.name, "prepare")
    return {"plan": plan.name, "rehearsals": rehearsal.summary(history, budget_s=plan.budget_seconds),
            "prepare_run": run_id, "readiness": readiness,
            "readiness_url": f"api/readiness/{run_id}" if readiness else None,
            "storage": {k: storage.get(k) for k in ("before_bytes", "after_bytes", "reduction_pct")}
            if storage else None,
            "storage_manifest": (folder / "storage_archive_manifest.json").exists()}


@app.get("/api/preparation", dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.RUN,
                                                                        param_dag_id="prepare"))])
async def preparation() -> dict[str, Any]:
    return await asyncio.to_thread(_preparation)


@app.get("/api/readiness/{run_id}", response_class=HTMLResponse,
         dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id="prepare"))])
async def readiness(run_id: str) -> HTMLResponse:
    """The readiness page from the evidence store (names, counts and timings only, by construction)."""
    from bascule.hooks import evidence

    path = evidence.run_folder(_plan().name, "prepare", run_id) / "readiness.html"
    if not await asyncio.to_thread(path.exists):
        raise HTTPException(status_code=404, detail="no readiness report for that run")
    return HTMLResponse(await asyncio.to_thread(path.read_text))


def _after(run_id: str) -> dict[str, Any]:
    from bascule.cockpit import metadata
    from bascule.runbook.context import DECISION_XCOM_KEY
    from bascule.today import parse_instant, utc_now

    rows = metadata.load_run("cutover", run_id, keys=[DECISION_XCOM_KEY])
    go_live = None
    for v in (rows.xcoms.values() if rows else []):
        d = v.get(DECISION_XCOM_KEY) or {}
        if d.get("gate") == "go_live" and d.get("decision") == "GO":
            go_live = d.get("at")
    _, monitor = metadata.latest_xcoms("replication_monitor")
    readings = {}
    for task_id, value in monitor.items():
        reading = (value or {}).get("reading") if isinstance(value, dict) else None
        if reading:
            readings[task_id] = {"state": reading.get("state"), "lag_seconds": reading.get("lag_seconds"),
                                 "lag_bytes": reading.get("lag_bytes"), "observed_at": reading.get("observed_at"),
                                 "eta": (value.get("eta") or {}).get("eta_seconds")}
    reverse = next((r for t, r in readings.items() if "reverse" in t), None)
    since = (utc_now() - parse_instant(go_live)).total_seconds() if go_live else None
    return {"go_live_at": go_live, "since_go_live_s": round(since, 0) if since is not None else None,
            "reverse": reverse, "flows": readings,
            # The fallback needs reverse replication streaming (ADR 0060): the window is open while it does.
            "rollback_window_open": bool(go_live) and (reverse or {}).get("state") == "streaming"}


@app.get("/api/after/{dag_id}/{run_id}", dependencies=[can_read_run])
async def after(dag_id: str, run_id: str) -> dict[str, Any]:
    if dag_id != "cutover":
        raise HTTPException(status_code=404, detail="after go-live is a cutover's")
    return await asyncio.to_thread(_after, run_id)


@app.get("/api/timeline/{dag_id}/{run_id}", dependencies=[can_read_run])
async def timeline(dag_id: str, run_id: str) -> Response:
    """The run's Gantt chart from the evidence store, once its report has drawn it."""
    from bascule.hooks import evidence

    path = evidence.run_folder(_plan().name, dag_id, run_id) / "timeline.png"
    if not await asyncio.to_thread(path.exists):
        raise HTTPException(status_code=404, detail="no chart yet")
    return Response(await asyncio.to_thread(path.read_bytes), media_type="image/png")
