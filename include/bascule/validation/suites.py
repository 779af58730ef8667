"""Great Expectations wiring: the suites in ``expectations/`` run in a file context built per run.

The suites are kept as plain JSON in the repository (reviewed like code). At run
time they are copied into a throw-away GX file context (``gx/expectations/``),
with the suite parameters measured on the source written in, a PostgreSQL or
Oracle data source whose connection string is an environment variable
reference (``${...}``, so no secret is written to disk), and one checkpoint per
suite whose ``result_format`` is always BOOLEAN_ONLY: any other format puts row
values into results (platform facts). Data Docs are not built: their pages
load CSS and JS from CDNs; :func:`render_suites_html` is bascule's
self-contained view. See ADR 0020.
"""

from __future__ import annotations

import copy
import html
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from bascule.engines import dialect_for
from bascule.paths import REPO_ROOT
from bascule.privacy.sanitize import sanitize_error_text

SUITES_DIR = REPO_ROOT / "expectations"
RESULT_FORMAT = "BOOLEAN_ONLY"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


class SuiteError(ValueError):
    """A suite file that would not run as written."""


def quiet_gx() -> None:
    # GX logs every store and data source it touches at INFO; task logs stay readable without them.
    for name in ("great_expectations", "great_expectations.core", "great_expectations.data_context",
                 "great_expectations.expectations", "great_expectations.datasource"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def suite_path(name: str, suites_dir: Path = SUITES_DIR) -> Path:
    if not _NAME_RE.match(name):
        raise SuiteError(f"suite name must be a lowercase slug (got {name!r})")
    return suites_dir / f"{name}.json"


def load_suite_file(name: str, suites_dir: Path = SUITES_DIR) -> dict[str, Any]:
    path = suite_path(name, suites_dir)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise SuiteError(f"suite {name}: no file {path}") from None
    except json.JSONDecodeError as exc:
        raise SuiteError(f"suite {name}: {path.name}: invalid JSON at line {exc.lineno}") from None
    if doc.get("name") != name:
        raise SuiteError(f"suite {name}: name must be {name!r} (got {doc.get('name')!r})")
    table = (doc.get("meta") or {}).get("bascule", {}).get("table", "")
    if not re.match(r"^[A-Za-z_][\w$]*\.[A-Za-z_][\w$]*$", table or ""):
        raise SuiteError(f"suite {name}: meta.bascule.table must be 'schema.table' (got {table!r})")
    exps = doc.get("expectations")
    if not isinstance(exps, list) or not exps:
        raise SuiteError(f"suite {name}: expectations must be a non-empty list")
    for i, exp in enumerate(exps):
        if not isinstance(exp, dict) or not isinstance(exp.get("type"), str) or not isinstance(
                exp.get("kwargs"), dict):
            raise SuiteError(f"suite {name}: expectations[{i}] must be {{type, kwargs}}")
        if "result_format" in exp["kwargs"]:
            raise SuiteError(f"suite {name}: expectations[{i}].kwargs.result_format: not allowed "
                             f"(always {RESULT_FORMAT})")
        query = exp["kwargs"].get("unexpected_rows_query", "")
        if re.search(r"\{batch\}\s+(?:AS\s+)?(?!WHERE|JOIN|GROUP|ORDER|LIMIT)[A-Za-z_]", query, re.IGNORECASE):
            raise SuiteError(f"suite {name}: expectations[{i}]: {{batch}} already expands to '(...) AS "
                             "subselect': refer to it as subselect, do not alias it")
    return doc


def suite_table(doc: dict[str, Any]) -> tuple[str, str]:
    schema, table = doc["meta"]["bascule"]["table"].split(".", 1)
    return schema, table


def parameters_of(doc: dict[str, Any]) -> set[str]:
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if set(value) == {"$PARAMETER"}:
                found.add(value["$PARAMETER"])
            else:
                for v in value.values():
                    walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(doc["expectations"])
    return found


def with_parameters(doc: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The suite with each ``{"$PARAMETER": name}`` replaced by its measured value.

    The GX provider's checkpoint operator passes batch parameters only, so the
    suite parameters are written into the run's copy of the suite instead.
    """
    missing = parameters_of(doc) - params.keys()
    if missing:
        raise SuiteError(f"suite {doc['name']}: no value for parameter(s) {', '.join(sorted(missing))}")

    def sub(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"$PARAMETER"}:
                return params[value["$PARAMETER"]]
            return {k: sub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [sub(v) for v in value]
        return value

    out = copy.deepcopy(doc)
    out["expectations"] = sub(out["expectations"])
    return out


def datasource_env_var(side: str) -> str:
    return f"BASCULE_GX_{side.upper()}_URL"


def suites_context(root: Path, suites: list[dict[str, Any]]) -> Any:
    """A GX file context under ``root`` holding the suites (and nothing that connects anywhere yet)."""
    quiet_gx()
    import great_expectations as gx

    project = root / "gx"
    (project / "expectations").mkdir(parents=True, exist_ok=True)
    for doc in suites:
        (project / "expectations" / f"{doc['name']}.json").write_text(json.dumps(doc, indent=2))
    context = gx.get_context(mode="file", project_root_dir=str(root))
    context.variables.progress_bars = {"globally": False}
    return context


def build_context(root: Path, *, side: str, engine: str, suites: list[dict[str, Any]],
                  queries: dict[str, str] | None = None) -> Any:
    """The suites' context plus one data source and one BOOLEAN_ONLY checkpoint per suite.

    A suite named in ``queries`` runs on the rows of that query (a batch restricted to the rows changed
    since the baseline, ADR 0061) instead of its whole table.
    """
    import great_expectations as gx

    context = suites_context(root, suites)
    env = "${" + datasource_env_var(side) + "}"
    # GX has a dedicated data source for some engines (postgres), the generic SQL one for the rest.
    add_source = getattr(context.data_sources, f"add_or_update_{dialect_for(engine).gx_data_source}")
    source = add_source(name=side, connection_string=env)
    for doc in suites:
        schema, table = suite_table(doc)
        if queries and doc["name"] in queries:
            asset = source.add_query_asset(name=doc["name"], query=queries[doc["name"]])
        else:
            asset = source.add_table_asset(name=doc["name"], table_name=table, schema_name=schema)
        batch = asset.add_batch_definition_whole_table(name=doc["name"])
        suite = context.suites.get(doc["name"])
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=doc["name"], data=batch, suite=suite))
        context.checkpoints.add_or_update(gx.Checkpoint(
            name=doc["name"], validation_definitions=[definition], actions=[],
            result_format={"result_format": RESULT_FORMAT}))
    return context


def loaded_expectation_count(context: Any, name: str) -> int:
    return len(context.suites.get(name).expectations)


_KEPT_KWARGS = ("column", "column_list", "column_A", "column_B")


def _exception_class(info: Any) -> str | None:
    """The class of what an expectation raised, from GX's ``exception_info`` (flat, or one entry per metric)."""
    if not isinstance(info, dict) or not info:
        return None
    entries = [v for v in info.values() if isinstance(v, dict)] or [info]
    raised = [e for e in entries if e.get("raised_exception")]
    if not raised:
        return None
    # The traceback's class names only: sanitize keeps classes and codes, drops the message and its value.
    text = "\n".join(f"{e.get('exception_traceback') or ''}\n{e.get('exception_message') or ''}" for e in raised)
    return sanitize_error_text(text) or "Exception"


def strip_gx_result(result: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's ``describe_dict()`` with only what cannot hold a row value (ADR 0041).

    BOOLEAN_ONLY keeps values out of ``result``, but GX still adds an expectation's ``exception_info``:
    the driver's message and traceback, where a failed CAST quotes the row's value. Kept: suite name,
    success, statistics, and per expectation its type, its column names, its success and the class of
    what it raised. Everything else (``result``, ``exception_info`` text, ``meta``, URLs) is dropped.
    """
    runs = []
    for run in result.get("validation_results", []) or []:
        expectations = []
        for e in run.get("expectations", []) or []:
            kwargs = e.get("kwargs") or {}
            expectations.append({
                "expectation_type": e.get("expectation_type"),
                "success": e.get("success"),
                "kwargs": {k: kwargs[k] for k in _KEPT_KWARGS if k in kwargs},
                "raised": e.get("raised") or _exception_class(e.get("exception_info")),
            })
        runs.append({"name": run.get("name"), "success": run.get("success"),
                     "statistics": run.get("statistics"), "expectations": expectations})
    return {"success": result.get("success"), "validation_results": runs}


def strip_checkpoint_result(result: Any) -> dict[str, Any]:
    """:func:`strip_gx_result` of a ``CheckpointResult``, with each expectation's raised class read from the
    result objects (``describe_dict()`` leaves out an ``exception_info`` GX keyed by metric)."""
    described = result.describe_dict()
    for run, validation in zip(described.get("validation_results", []), result.run_results.values(), strict=False):
        for expectation, outcome in zip(run.get("expectations", []), validation.results, strict=False):
            expectation["exception_info"] = outcome.exception_info
    return strip_gx_result(described)


class StrippedCheckpoint:
    """A GX checkpoint whose run's ``describe_dict()`` is the stripped one: what the GX provider pushes to
    XCom, and puts in its ``GXValidationFailed``, can then hold no value."""

    def __init__(self, checkpoint: Any) -> None:
        self._checkpoint = checkpoint

    def __getattr__(self, name: str) -> Any:
        return getattr(self._checkpoint, name)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        return _StrippedResult(self._checkpoint.run(*args, **kwargs))


class _StrippedResult:
    def __init__(self, result: Any) -> None:
        self.success = result.success
        self._stripped = strip_checkpoint_result(result)

    def describe_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._stripped)


def outcome_summary(result: dict[str, Any]) -> dict[str, Any]:
    """Per suite and expectation: type, column (if any), success and what it raised (its class only)."""
    suites = []
    for run in strip_gx_result(result)["validation_results"]:
        suites.append({
            "suite": run.get("name"), "success": run.get("success"),
            "statistics": run.get("statistics"),
            "expectations": [{"type": e.get("expectation_type"),
                              "column": (e.get("kwargs") or {}).get("column"),
                              "success": e.get("success"), "raised": e.get("raised")}
                             for e in run.get("expectations", [])],
        })
    return {"success": result.get("success"), "suites": suites}


def render_suites_html(summary: dict[str, Any], *, title: str) -> str:
    """One self-contained HTML page (inline CSS, no script, no external URL) of the suite outcomes."""
    rows = []
    for s in summary["suites"]:
        for e in s["expectations"]:
            ok = "pass" if e["success"] else "FAIL"
            rows.append(f"<tr class='{ok.lower()}'><td>{html.escape(str(s['suite']))}</td>"
                        f"<td>{html.escape(str(e['type']))}</td><td>{html.escape(str(e['column'] or ''))}</td>"
                        f"<td>{ok}</td></tr>")
    verdict = "passed" if summary["success"] else "FAILED"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 8px}tr.fail td{background:#fdd}tr.pass td{background:#efe}</style></head><body>"
        f"<h1>{html.escape(title)}: {verdict}</h1><table><tr><th>suite</th><th>expectation</th><th>column</th>"
        "<th>outcome</th></tr>" + "".join(rows) + "</table></body></html>"
    )
