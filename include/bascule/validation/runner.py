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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bascule.hooks.validation import ValidationHook


def sqlalchemy_url(hook: ValidationHook) -> str:
    """The provider's URI, with the driver bascule installs when the URI names none, opening read-only
    sessions: a suite's ``unexpected_rows_query`` runs as the admin, and may only read."""
    return hook.dialect.read_only_sqlalchemy_url(hook.dialect.sqlalchemy_url(hook.sql_hook.get_uri()))


def suite_docs(source: ValidationHook, names: Sequence[str]) -> list[dict[str, Any]]:
    """The suites' JSON, with the parameters measured on the source (its row counts)."""
    from bascule.validation.suites import load_suite_file, suite_table, with_parameters

    docs = []
    with source.session() as s:
        for name in names:
            doc = load_suite_file(name)
            schema, table = suite_table(doc)
            (rows,) = s.rows(s.dialect.count_rows_sql(schema, table))[0]
            docs.append(with_parameters(doc, {"source_rows": int(rows)}))
    return docs


@contextmanager
def suite_file_context(*, side: str, hook: ValidationHook, source: ValidationHook, suites: Sequence[str]
                       ) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """A throw-away GX file context holding ``suites`` (parameters measured on ``source``) and a data
    source on ``hook``'s database, with its connection string in an environment variable for the duration.

    Yields ``(context, suite documents)``; the directory and the variable are gone afterwards. Both the
    provider's operator (``SuiteRunOperator``) and :func:`run_suites` build their context here.
    """
    if side not in ("source", "target"):
        raise ValueError(f"side must be 'source' or 'target' (got {side!r})")
    docs = suite_docs(source, list(suites))
    with docs_file_context(side=side, hook=hook, docs=docs) as context:
        yield context, docs


@contextmanager
def docs_file_context(*, side: str, hook: ValidationHook, docs: list[dict[str, Any]],
                      queries: dict[str, str] | None = None) -> Iterator[Any]:
    """A throw-away GX file context of suite documents ready to run (``queries``: suites whose batch is a
    query, not the whole table). The directory, which holds the queries' text, is removed afterwards."""
    from bascule.validation.suites import build_context, datasource_env_var

    var = datasource_env_var(side)
    os.environ[var] = sqlalchemy_url(hook)
    root = Path(tempfile.mkdtemp(prefix=f"bascule-gx-{side}-"))
    try:
        yield build_context(root, side=side, engine=hook.engine, suites=docs, queries=queries)
    finally:
        os.environ.pop(var, None)
        shutil.rmtree(root, ignore_errors=True)


def run_baseline_suites(plan: Any) -> dict[str, Any]:
    """The suites in full on the target while replication streams (T-minus, ADR 0061): every expectation
    the window re-checks on the changed rows only. Those re-run whole in the window are left out: the row
    count against the source's cannot hold while the application writes, and the window proves it after
    the drain; so are the suites the plan runs in full there."""
    from bascule.validation.delta import delta_method
    from bascule.validation.suites import outcome_summary, quiet_gx, strip_checkpoint_result

    quiet_gx()
    hook = ValidationHook(db_conn_id=plan.target.conn_id, engine=plan.target.engine.value)
    source = ValidationHook(db_conn_id=plan.source.conn_id, engine=plan.source.engine.value)
    in_full = set(getattr(plan.validation, "suites_in_full", ()) or ())
    docs = []
    for doc in suite_docs(source, [n for n in plan.validation.suites if n not in in_full]):
        kept = [e for e in doc["expectations"] if delta_method(e).kind != "whole"]
        if kept:
            docs.append({**doc, "expectations": kept})
    outcomes = []
    if docs:
        with docs_file_context(side="target", hook=hook, docs=docs) as context:
            for doc in docs:
                result = context.checkpoints.get(doc["name"]).run()
                for outcome in outcome_summary(strip_checkpoint_result(result))["suites"]:
                    outcomes.append({**outcome, "suite": doc["name"]})
    return {"ok": all(bool(o["success"]) for o in outcomes), "suites": outcomes}


def run_suites(plan: Any, *, side: str, suites: Sequence[str] | None = None) -> dict[str, Any]:
    """Validate each suite on ``side``; returns ``{"ok", "suites": [...]}`` with BOOLEAN_ONLY outcomes."""
    from bascule.validation.suites import outcome_summary, quiet_gx, strip_checkpoint_result

    if side not in ("source", "target"):
        raise ValueError(f"side must be 'source' or 'target' (got {side!r})")
    quiet_gx()
    endpoint = plan.target if side == "target" else plan.source
    hook = ValidationHook(db_conn_id=endpoint.conn_id, engine=endpoint.engine.value)
    source = ValidationHook(db_conn_id=plan.source.conn_id, engine=plan.source.engine.value)
    outcomes = []
    with suite_file_context(side=side, hook=hook, source=source,
                            suites=list(suites or plan.validation.suites)) as (context, docs):
        for doc in docs:
            result = context.checkpoints.get(doc["name"]).run()
            for outcome in outcome_summary(strip_checkpoint_result(result))["suites"]:
                # describe_dict() names the validation, not the suite: name it after the file.
                outcomes.append({**outcome, "suite": doc["name"]})
    return {"ok": all(bool(o["success"]) for o in outcomes), "suites": outcomes}


def run_suites_in_window(plan: Any, *, changed: dict[str, Any] | None, tracking: dict[str, Any] | None = None,
                         whole_reason: str = "no change tracker on this engine: the suite runs in full in the window",
                         deltas_only: bool = False) -> dict[str, Any]:
    """The suites in the window (ADR 0061): on the rows changed since the baseline where ``changed`` (the
    delta tracker's reading) is given, else whole. Per suite, how it ran and why.

    ``deltas_only`` (the catch-up before the freeze, ADR 0070): only the row-level parts on the changed rows;
    what runs whole (counts compared with the source's, suites the plan runs in full) is left to the window,
    where writes have stopped and the two sides can be equal."""
    import time

    from bascule.validation.delta import plan_suite
    from bascule.validation.suites import outcome_summary, quiet_gx, strip_checkpoint_result

    quiet_gx()
    started = time.monotonic()
    hook = ValidationHook(db_conn_id=plan.target.conn_id, engine=plan.target.engine.value)
    source = ValidationHook(db_conn_id=plan.source.conn_id, engine=plan.source.engine.value)
    docs = suite_docs(source, list(plan.validation.suites))
    in_full = set(getattr(plan.validation, "suites_in_full", ()) or ())
    runs: list[dict[str, Any]] = []
    queries: dict[str, str] = {}
    plans = []
    if changed is None:
        for doc in docs:
            runs.append(doc)
            plans.append({"suite": doc["name"], "run": "whole", "reason": whole_reason, "rows_in_scope": None,
                          "proven_by_index": []})
    else:
        from bascule.validation.suites import suite_table

        with hook.session() as s:
            for doc in docs:
                schema, table = suite_table(doc)
                split = plan_suite(doc, changed=changed, in_full=doc["name"] in in_full,
                                   unique_indexes=s.unique_indexes(schema, table),
                                   literal_keys=s.dialect.literal_keys_sql, quote=s.dialect.quote_ident)
                if split.whole_reason is not None and deltas_only:
                    plans.append({"suite": doc["name"], "run": "left to the window", "reason": split.whole_reason,
                                  "rows_in_scope": None, "proven_by_index": [], "parts": []})
                    continue
                if split.whole_reason is not None:
                    runs.append(doc)
                    plans.append({"suite": doc["name"], "run": "whole", "reason": split.whole_reason,
                                  "rows_in_scope": None, "proven_by_index": []})
                    continue
                parts = [p for p in (split.delta, None if deltas_only else split.whole_table) if p is not None]
                runs.extend(parts)
                if split.delta is not None and split.delta_query is not None:
                    queries[split.delta["name"]] = split.delta_query
                plans.append({"suite": doc["name"], "run": "delta",
                              "reason": "the rows changed since the baseline" if split.delta is not None
                              else "no row it checks changed since the baseline",
                              "rows_in_scope": split.rows_in_scope, "proven_by_index": split.proven_by_index,
                              "parts": [p["name"] for p in parts]})
    outcomes: dict[str, bool] = {}
    expectations: dict[str, list[dict[str, Any]]] = {}
    if runs:
        with docs_file_context(side="target", hook=hook, docs=runs, queries=queries) as context:
            for doc in runs:
                result = context.checkpoints.get(doc["name"]).run()
                for outcome in outcome_summary(strip_checkpoint_result(result))["suites"]:
                    outcomes[doc["name"]] = bool(outcome["success"])
                    expectations[doc["name"]] = outcome["expectations"]
    suites = []
    for entry in plans:
        names = entry.get("parts", [entry["suite"]]) if entry["run"] != "whole" else [entry["suite"]]
        suites.append({**entry, "success": all(outcomes.get(n, False) for n in names),
                       "expectations": [e for n in names for e in expectations.get(n, [])]})
    return {"ok": all(s["success"] for s in suites), "suites": suites, "tracking": tracking,
            "seconds": round(time.monotonic() - started, 3)}
