"""Run the plan's Great Expectations suites from a library call, without the provider's operator.

The cutover runs its suites inside a runbook step: importing the GX provider
operator in the cutover DAG file would import great_expectations (about 3 s)
each time any of its tasks starts. The result has the shape of the provider's
XCom (``CheckpointResult.describe_dict()``), summarised by ``outcome_summary``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bascule.hooks.validation import ValidationHook


def sqlalchemy_url(hook: ValidationHook, engine: str) -> str:
    uri = hook.sql_hook.get_uri()
    if engine == "postgres" and uri.startswith("postgresql://"):
        uri = "postgresql+psycopg://" + uri[len("postgresql://"):]
    return uri


def suite_docs(plan: Any, names: Sequence[str]) -> list[dict[str, Any]]:
    """The suites' JSON, with the parameters measured on the source (its row counts)."""
    from bascule.validation.suites import load_suite_file, suite_table, with_parameters

    source = ValidationHook(db_conn_id=plan.source.conn_id, engine=plan.source.engine.value)
    docs = []
    with source.session() as s:
        for name in names:
            doc = load_suite_file(name)
            schema, table = suite_table(doc)
            (rows,) = s.rows(s.dialect.count_rows_sql(schema, table))[0]
            docs.append(with_parameters(doc, {"source_rows": int(rows)}))
    return docs


def run_suites(plan: Any, *, side: str, suites: Sequence[str] | None = None) -> dict[str, Any]:
    """Validate each suite on ``side``; returns ``{"ok", "suites": [...]}`` with BOOLEAN_ONLY outcomes."""
    from bascule.validation.suites import build_context, datasource_env_var, outcome_summary, quiet_gx

    if side not in ("source", "target"):
        raise ValueError(f"side must be 'source' or 'target' (got {side!r})")
    quiet_gx()
    endpoint = plan.target if side == "target" else plan.source
    engine = endpoint.engine.value
    docs = suite_docs(plan, list(suites or plan.validation.suites))
    var = datasource_env_var(side)
    os.environ[var] = sqlalchemy_url(ValidationHook(db_conn_id=endpoint.conn_id, engine=engine), engine)
    root = Path(tempfile.mkdtemp(prefix=f"bascule-gx-{side}-"))
    try:
        context = build_context(root, side=side, engine=engine, suites=docs)
        outcomes = []
        for doc in docs:
            result = context.checkpoints.get(doc["name"]).run()
            for outcome in outcome_summary(result.describe_dict())["suites"]:
                # describe_dict() names the validation, not the suite: name it after the file.
                outcomes.append({**outcome, "suite": doc["name"]})
    finally:
        os.environ.pop(var, None)
        shutil.rmtree(root, ignore_errors=True)
    return {"ok": all(bool(o["success"]) for o in outcomes), "suites": outcomes}
