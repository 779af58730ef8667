"""Every message of the error corpus, through every path that reports an error: no planted value gets out.

The corpus (tests/fixtures/privacy/error_corpus.json) was raised for real on the lab's PostgreSQL through
psycopg, SQLAlchemy, Airflow's PostgresHook, GX and psql, plus Oracle's and oracledb's messages from their
documentation; make_error_corpus.py next to it regenerates it. Each path below is the production code that
turns an error into text that leaves the worker: a hook's error, a tool's stderr, a comparison report's
table error, a Slack failure message, a failed step's exception (what Airflow logs and shows).
"""

from __future__ import annotations

import json
import os
import stat
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import oracledb
import psycopg
import pytest

from bascule.privacy.sanitize import know_objects, sanitize_error_text

pytestmark = pytest.mark.unit

CORPUS_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "privacy" / "error_corpus.json"
CORPUS: list[dict[str, Any]] = json.loads(CORPUS_FILE.read_text())
IDS = [f"{i:02d}-{e['source']}-{e['label']}" for i, e in enumerate(CORPUS)]


def _fragments(values: list[str]) -> set[str]:
    """The values, and each word of five characters or more in them (a tail cut mid-value keeps words)."""
    out = {v.lower() for v in values}
    for value in values:
        out |= {w.lower().strip(".,'\"") for w in value.replace("@", " ").split() if len(w) >= 5}
    return out


def _assert_clean(output: str, entry: dict[str, Any], path: str) -> None:
    lowered = output.lower()
    leaked = sorted(f for f in _fragments(entry["values"]) if f in lowered)
    assert not leaked, f"{path} let {leaked} through: {output!r}"


def _exception(entry: dict[str, Any]) -> BaseException:
    """The driver's exception class the text came from, carrying the text (diagnostics are not stored)."""
    if entry["source"] == "oracle docs":
        return oracledb.DatabaseError(entry["text"])
    if entry["sqlstate"]:
        return psycopg.errors.lookup(entry["sqlstate"])(entry["text"])
    return psycopg.DatabaseError(entry["text"])


@pytest.fixture(autouse=True)
def _plan_names() -> None:
    # What a lab plan and its catalog make known: object names, never values.
    know_objects(["clinic", "clinic.patients", "clinic.encounters", "patient_id", "mrn", "last_name",
                  "birth_date", "patients_pkey", "patients_mrn_key", "encounters_patient_fk"])


def test_the_corpus_is_large_and_mostly_raised_for_real() -> None:
    sources = {e["source"] for e in CORPUS}
    raised = [e for e in CORPUS if e["source"] != "oracle docs"]
    assert len(CORPUS) >= 40
    assert len(raised) > len(CORPUS) / 2
    assert {"psycopg", "sqlalchemy", "airflow", "gx", "psql stderr", "oracle docs"} <= sources
    styles = " ".join(e["text"] for e in CORPUS)
    for style in ("DETAIL:", "CONTEXT:", "HINT:", "ORA-20001", "[parameters:", "Failing row contains"):
        assert style in styles
    assert any(not e["text"].startswith(("psql", "ERROR")) and e["source"] == "psql stderr" for e in CORPUS)


@pytest.mark.parametrize("entry", CORPUS, ids=IDS)
def test_sanitiser_keeps_no_value(entry: dict[str, Any]) -> None:
    _assert_clean(sanitize_error_text(entry["text"]), entry, "sanitize(text)")
    exc = _exception(entry)
    out = sanitize_error_text(exc)
    _assert_clean(out, entry, "sanitize(exception)")
    assert out.startswith(type(exc).__name__)
    if entry["sqlstate"]:
        assert f"SQLSTATE {entry['sqlstate']}" in out


@pytest.mark.parametrize("entry", CORPUS, ids=IDS)
def test_hook_errors_keep_no_value(entry: dict[str, Any]) -> None:
    from bascule.hooks.database import MigrationDatabaseError, MigrationDatabaseHook
    from bascule.hooks.validation import ComparisonSession, ValidationDatabaseError, ValidationHook

    engine = "oracle" if entry["source"] == "oracle docs" else "postgres"
    hook = MigrationDatabaseHook(db_conn_id="bascule_legacy", engine=engine)
    with pytest.raises(MigrationDatabaseError) as raised:
        with hook.guarded(doing="cannot connect"):
            raise _exception(entry)
    # The whole traceback, as Airflow writes it to the task log: no chained driver error in it.
    _assert_clean("".join(traceback.format_exception(raised.value)), entry, "MigrationDatabaseHook.guarded")

    class Failing:
        def cursor(self) -> Any:
            raise _exception(entry)

    session = ComparisonSession(ValidationHook(db_conn_id="bascule_new", engine=engine), Failing())
    with pytest.raises(ValidationDatabaseError) as raised_v:
        session.rows(("SELECT 1", {}))
    _assert_clean("".join(traceback.format_exception(raised_v.value)), entry, "ComparisonSession.rows")


@pytest.mark.parametrize("entry", CORPUS, ids=IDS)
def test_reports_slack_and_failed_steps_keep_no_value(entry: dict[str, Any], tmp_path: Path) -> None:
    from bascule.hooks.assessment import _safe
    from bascule.notifications.blocks import render
    from bascule.notifications.slack import task_failed_from_context
    from bascule.validation.report import TableResult

    exc = _exception(entry)
    _assert_clean(_safe(exc), entry, "assessment")

    table = TableResult(table="clinic.patients")
    table.set_error(exc)
    _assert_clean(json.dumps(table.to_json()), entry, "comparison report")

    ti = SimpleNamespace(dag_id="bascule_cutover", run_id="manual__1", task_id="freeze", map_index=-1,
                         try_number=1)
    message = render(task_failed_from_context({"ti": ti, "exception": exc}))
    _assert_clean(json.dumps({"text": message.text, "blocks": message.blocks}, default=str), entry, "Slack")


def test_tool_stderr_keeps_no_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pgbench's stderr, every stored stderr and tail of it, whole (no caller-side tail cut any more)."""
    import bascule.hooks.assessment as assessment

    stderr_entries = [e for e in CORPUS if e["source"] in ("psql stderr", "gx", "oracle docs")]
    hook = assessment.AssessmentHook(db_conn_id="bascule_legacy")
    monkeypatch.setattr(hook, "libpq_env", lambda **_: {"PATH": os.environ.get("PATH", "")})
    for i, entry in enumerate(stderr_entries):
        text = tmp_path / f"stderr-{i}.txt"
        text.write_text(entry["text"])
        fake = tmp_path / f"pgbench-{i}"
        fake.write_text(f"#!/bin/sh\ncat '{text}' >&2\nexit 2\n")
        fake.chmod(stat.S_IRWXU)
        monkeypatch.setattr(assessment, "PGBENCH", str(fake))
        with pytest.raises(assessment.PreparationDatabaseError) as raised:
            hook.run_pgbench(["-n"], dbname="clinic", cwd=tmp_path, timeout_s=10)
        assert "pgbench failed (exit 2)" in str(raised.value)
        _assert_clean(str(raised.value), entry, "run_pgbench")


@pytest.mark.parametrize("entry", CORPUS, ids=IDS)
def test_a_failed_step_keeps_no_value(entry: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A runbook step whose action raises: the exception Airflow logs, stores and shows."""
    from bascule.operators import steps
    from bascule.runbook import runtime

    monkeypatch.setattr(runtime, "step_started", lambda *a, **k: None)
    monkeypatch.setattr(runtime, "step_finished", lambda *a, **k: None)
    monkeypatch.setattr(steps, "plan_for_run", lambda plan, conf: plan)

    def action(ctx: Any) -> None:
        raise _exception(entry)

    op = steps.RunbookStepOperator(task_id="freeze", step="freeze", action=action)
    op.__dict__["plan"] = SimpleNamespace(name="lab")
    with pytest.raises(steps.RunbookStepError) as raised:
        op.execute({"dag_run": None})
    _assert_clean("".join(traceback.format_exception(raised.value)), entry, "RunbookStepOperator")
