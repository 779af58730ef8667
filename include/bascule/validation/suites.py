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


def build_context(root: Path, *, side: str, engine: str, suites: list[dict[str, Any]]) -> Any:
    """The suites' context plus one data source and one BOOLEAN_ONLY checkpoint per suite."""
    import great_expectations as gx

    context = suites_context(root, suites)
    env = "${" + datasource_env_var(side) + "}"
    # GX has a dedicated data source for some engines (postgres), the generic SQL one for the rest.
    add_source = getattr(context.data_sources, f"add_or_update_{dialect_for(engine).gx_data_source}")
    source = add_source(name=side, connection_string=env)
    for doc in suites:
        schema, table = suite_table(doc)
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


def outcome_summary(result: dict[str, Any]) -> dict[str, Any]:
    """Per suite and expectation: type, column (if any) and success. BOOLEAN_ONLY holds nothing else."""
    suites = []
    for run in result.get("validation_results", []):
        suites.append({
            "suite": run.get("name"), "success": run.get("success"),
            "statistics": run.get("statistics"),
            "expectations": [{"type": e.get("expectation_type"),
                              "column": (e.get("kwargs") or {}).get("column"),
                              "success": e.get("success")} for e in run.get("expectations", [])],
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
