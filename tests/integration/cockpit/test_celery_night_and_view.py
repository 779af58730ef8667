"""One GO night under the CeleryExecutor (a local Redis, two workers, the lab's metadata database), watched in a
real browser through the migration view.

One night for every check, to stay within the issue's suite budget: the evidence store shared by both workers,
the report's sealed root, the forecast read back from the store, the view's JSON and DOM as the night moves,
and the view's refusal of anyone not logged in. Screenshots go to docs/img/ for the README.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from bascule.hooks import evidence
from bascule.paths import REPO_ROOT

pytestmark = pytest.mark.integration

SHOTS = REPO_ROOT / "docs" / "img"


def _token(stack: Any, user: str) -> str:
    r = requests.post(f"{stack.base_url}/auth/token", json={"username": user, "password": stack.passwords()[user]},
                      timeout=10)
    r.raise_for_status()
    return r.json()["access_token"]


class Browser:
    """The system's Chromium through Playwright (it cannot download its own browser here)."""

    def __init__(self, stack: Any, user: str) -> None:
        from playwright.sync_api import sync_playwright

        self.stack = stack
        self._pw = sync_playwright().start()
        self.browser = self._pw.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                                args=["--no-sandbox"])
        self.page = self.browser.new_page(viewport={"width": 1280, "height": 1100})
        self.login(user)

    def login(self, user: str) -> None:
        page = self.page
        page.goto(f"{self.stack.base_url}/auth/login/")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", self.stack.passwords()[user])
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30_000)

    def close(self) -> None:
        self.browser.close()
        self._pw.stop()


def test_a_go_night_under_celery_seen_by_the_report_the_forecast_and_the_view(
        fresh_lab: Any, celery_stack: Any, shared_volume: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bascule.paths import LAB_PLAN
    from bascule.plan import load_plan
    from bascule.preparation import rehearsal
    from bascule_lab.scenario import LabCutover, start_forward_replication

    plan = load_plan(LAB_PLAN)
    stack = celery_stack
    base = f"{stack.base_url}/bascule"

    # Nothing without a login, whatever the route; a forged token is refused too.
    for path in ("/", "/assets/cockpit.js", "/api/runs", "/api/night/cutover/x", "/api/preparation",
                 "/api/validation/cutover/x", "/api/after/cutover/x", "/api/timeline/cutover/x"):
        assert requests.get(base + path, timeout=10).status_code == 401, path
        forged = requests.get(base + path, headers={"Authorization": "Bearer forged"}, timeout=10)
        assert forged.status_code in (401, 403), path

    start_forward_replication(plan)
    night = LabCutover(lab=fresh_lab, stack=stack, plan=plan, workdir=shared_volume.parent / "celery-night")
    browser = Browser(stack, "bascule_ops")
    seen: dict[str, Any] = {"gantt": [], "clock": []}
    gate_seen = threading.Event()
    gate_shown = threading.Event()
    outcome: dict[str, Any] = {}

    def hold_gate(gate_id: str, run_id: str) -> None:
        # The answerer waits until the browser has seen the gate waiting (at most 60 s: the test would fail).
        if gate_id == "go_live":
            gate_seen.set()
            gate_shown.wait(timeout=60)

    def run() -> None:
        try:
            outcome["result"] = night.run(rate=40.0, sessions=2, before_gate=hold_gate, timeout=600)
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc
        finally:
            gate_seen.set()

    driver = threading.Thread(target=run, name="celery-night", daemon=True)
    driver.start()
    page = browser.page
    try:
        page.goto(f"{base}/")
        deadline = time.monotonic() + 600
        while driver.is_alive() and time.monotonic() < deadline:
            rows = page.locator("#gantt .gantt-row").count()
            elapsed = page.get_attribute("#clock", "data-elapsed")
            if rows and (not seen["gantt"] or rows != seen["gantt"][-1]):
                seen["gantt"].append(rows)
            if elapsed and (not seen["clock"] or float(elapsed) != seen["clock"][-1]):
                seen["clock"].append(float(elapsed))
            waiting = page.locator("#gates li.waiting[data-gate=go_live] a.required-action")
            if gate_seen.is_set() and not gate_shown.is_set() and waiting.count():
                href = waiting.get_attribute("href")
                assert href and href.endswith("/tasks/gate_go_live/required_actions"), href
                # Who may answer: the plan's assigned users, as the gate's HITL record names them.
                assert all(u in page.inner_text("#gates li.waiting") for u in plan.gate("go_live").assigned_users)
                time.sleep(2.5)  # one more refresh: the clock keeps counting while the gate waits
                seen["clock"].append(float(page.get_attribute("#clock", "data-elapsed") or 0))
                SHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SHOTS / "migration-view-gate.png"), full_page=True)
                gate_shown.set()
            time.sleep(0.7)
        driver.join(timeout=60)
        if "error" in outcome:
            raise outcome["error"]
        result = outcome["result"]
        page.wait_for_function("document.querySelector('#outcome').dataset.outcome === 'completed'",
                               timeout=30_000)
        assert "not refreshing" in page.inner_text("#refresh")
        page.screenshot(path=str(SHOTS / "migration-view-done.png"), full_page=True)
    finally:
        gate_shown.set()
        browser.close()

    # The night itself, under Celery.
    assert result.state == "success", result.tasks
    assert gate_shown.is_set(), "the browser never saw GO LIVE waiting"
    assert len(seen["gantt"]) >= 3 and seen["gantt"] == sorted(seen["gantt"]), seen["gantt"]
    frozen = [c for c in seen["clock"] if c > 0]
    assert len(frozen) >= 2 and frozen[-1] > frozen[0], seen["clock"]

    # Both workers ran steps: Airflow recorded their names, and so did each step's evidence record.
    report = result.report
    assert report["outcome"] == "completed"
    monkeypatch.setenv("AIRFLOW__BASCULE__EVIDENCE_URL", f"file://{shared_volume}")
    folder = evidence.run_folder(plan.name, "cutover", result.run_id)
    workers = {json.loads(p.read_text())["worker"] for p in (folder / "steps").glob("*.json")}
    assert workers == {"celery-worker-1", "celery-worker-2"}, workers
    verdict = evidence.verify(plan.name, "cutover", result.run_id, expected_root=report["evidence"]["root"])
    assert verdict.ok, verdict.problems
    # The forecast of the next night reads this one from the shared store, not from a worker's disk.
    history = rehearsal.load_history(plan.name)
    assert [r.run_id for r in history] == [result.run_id]
    forecast = rehearsal.forecast(history, budget_s=plan.budget_seconds)
    assert forecast.downtime_s > 0 and forecast.dominating_step in {s["step"] for s in report["steps"]}

    # The view, as the logged-in operator sees it: the same run, both workers, the sealed root, the chart.
    headers = {"Authorization": f"Bearer {_token(stack, 'bascule_ops')}"}
    view = requests.get(f"{base}/api/night/cutover/{result.run_id}", headers=headers, timeout=30).json()
    assert view["outcome"] == "completed" and not view["active"]
    assert set(view["workers"]) == {"celery-worker-1", "celery-worker-2"}, view["workers"]
    assert view["evidence_root"] == report["evidence"]["root"]
    assert {d["gate"] for d in view["decisions"]} == {"go_for_freeze", "go_live"}
    assert view["clock"]["elapsed_s"] == pytest.approx(report["downtime_s"], abs=0.2)
    chart = requests.get(f"{base}/api/timeline/cutover/{result.run_id}", headers=headers, timeout=30)
    assert chart.status_code == 200 and chart.content.startswith(b"\x89PNG")
    validation = requests.get(f"{base}/api/validation/cutover/{result.run_id}", headers=headers, timeout=30).json()
    assert validation["tables"] and all(t["rows_compared"] > 0 for t in validation["tables"]), validation
    prep = requests.get(f"{base}/api/preparation", headers=headers, timeout=30).json()
    assert prep["rehearsals"]["latest_run"] == result.run_id
    assert os.path.getsize(SHOTS / "migration-view-gate.png") > 10_000
