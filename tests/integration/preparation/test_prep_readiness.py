"""The readiness report rendered by headless Chromium: every section, with the figures of its run."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _report(run_id: str, t0: datetime, durations: dict[str, float]) -> dict:
    from bascule.runbook.report import build_report

    steps, t = [], t0
    for step, seconds in durations.items():
        steps.append({"step": step, "started_at": t.isoformat(),
                      "ended_at": (t + timedelta(seconds=seconds)).isoformat(), "seconds": seconds})
        t += timedelta(seconds=seconds + 0.5)
    return build_report(plan_name="lab", dag_id="cutover", run_id=run_id, budget_s=7200.0, steps=steps,
                        decisions=[], outcome="success", frozen_at=steps[0]["started_at"], downtime_end=t.isoformat())


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (scripts/setup.sh)")
def test_readiness_in_chromium(fresh_lab, airflow_env, tmp_path: Path, monkeypatch):
    from bascule.hooks.assessment import AssessmentHook
    from bascule.plan import default_plan_path, load_plan
    from bascule.preparation import readiness, rehearsal
    from bascule.preparation.assessment import assess_postgres
    from bascule.runbook.report import write_report
    from bascule_lab.canary import CANARY_STRINGS

    monkeypatch.setenv("BASCULE_REPORTS_DIR", str(tmp_path / "reports"))
    t0 = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
    write_report(_report("rehearsal_1", t0, {"freeze": 4.0, "drain": 30.0, "validate": 95.5, "switch": 3.0}))
    write_report(_report("rehearsal_2", t0 + timedelta(days=7),
                         {"freeze": 3.5, "drain": 22.0, "validate": 120.25, "switch": 2.5}))
    history = rehearsal.load_history("lab")
    summary = rehearsal.summary(history, budget_s=7200.0)
    with fresh_lab.connect("legacy", "clinic") as conn:
        conn.execute("CREATE UNLOGGED TABLE clinic.bed_board (bed_id int PRIMARY KEY)")
    plan = load_plan(default_plan_path())
    with AssessmentHook(db_conn_id="bascule_legacy") as src, AssessmentHook(db_conn_id="bascule_new") as tgt:
        assessment = assess_postgres(plan=plan, source=src, target=tgt, target_free_bytes=10 ** 12).to_json()
    lag = [((t0 + timedelta(seconds=10 * i)).isoformat(), v) for i, v in enumerate([0.2, 0.4, 3.75, 1.1, 0.3])]
    storage = {"before_bytes": 400 * 1048576, "after_bytes": 290 * 1048576, "reduction_pct": 27.5,
               "actions": [{"kind": "drop_index", "object": "clinic.encounters_patient_idx",
                            "reason": "duplicate", "bytes": 5 * 1048576}]}
    validation = [{"run_id": "validate_1", "finished_at": "2026-11-21T10:00:00+00:00", "outcome": "passed",
                   "tables": 8, "rows_compared": 123456, "mismatched_rows": 0}]
    ctx = readiness.build_context(plan_name="lab", budget_s=7200.0, lag_points=lag, lag_threshold_s=5.0,
                                  rehearsals=summary, validation_runs=validation, storage=storage,
                                  findings=[assessment])
    html = readiness.write_report(ctx, tmp_path / "readiness.html")
    source = html.read_text()
    assert "<script" not in source and not re.search(r"""(src|href)=["']https?:""", source)
    for canary in CANARY_STRINGS:
        assert canary not in source

    dom = readiness.dump_dom(html)

    def text_of(element_id: str) -> str:
        m = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
        assert m, f"#{element_id} missing from the rendered DOM"
        return m.group(1).strip()

    for section in ("summary", "lag", "rehearsals", "validation", "storage", "replay", "findings"):
        assert f'<section id="{section}">' in dom
    assert text_of("plan-name") == "lab"
    assert text_of("lag-max") == "3.750"
    forecast = summary["forecast"]
    assert forecast["dominating_step"] == "validate"
    assert text_of("dominating-step") == "validate"
    assert text_of("forecast-s") == f"{forecast['downtime_s']:,.1f}"
    assert "rehearsal_1" in dom and "rehearsal_2" in dom and "+24.75" in dom  # validate: 95.5 -> 120.25
    assert text_of("storage-before-mb") == "400.0" and text_of("storage-after-mb") == "290.0"
    assert text_of("storage-reduction-pct") == "27.5"
    assert "validate_1" in dom and "123456" in dom
    opened = [f for f in assessment["findings"] if f["severity"] != "PASS"]
    assert text_of("open-findings-count") == str(len(opened)) and "clinic.bed_board" in dom
    assert dom.count("<svg") >= 4  # lag, Gantt, validation, storage

    png = readiness.screenshot(html, tmp_path / "readiness.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    out = Path(__file__).resolve().parents[3] / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(png, out / "readiness.png")
    shutil.copy(html, out / "readiness.html")
