"""`bascule evidence verify RUN`: recompute a run's evidence chain and compare it with its manifest.

Reads the evidence store configured as the workers' (``[bascule] evidence_url``, ADR 0044) and, when this host
can reach Airflow's metadata database, the root the report task kept in XCom there. Exit 0 when everything
holds, 1 with one line per problem when something was changed, added or removed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bascule.paths import LAB_PLAN


def add_parser(sub: Any) -> None:
    ev = sub.add_parser("evidence", help="the evidence store: verify a run's tamper-evident manifest")
    what = ev.add_subparsers(dest="action", required=True)
    verify = what.add_parser("verify", help="recompute the SHA-256 chain of a run's evidence and decisions")
    verify.add_argument("run_id", help="the Airflow run id")
    verify.add_argument("--plan", default=str(LAB_PLAN), help="the plan file (its name locates the evidence)")
    verify.add_argument("--dag", default="cutover", help="the DAG id of the run (cutover, rollback, ...)")
    verify.set_defaults(func=command)


def root_in_metadata(dag_id: str, run_id: str) -> str | None:
    """The root the report task pushed to XCom, or None when the metadata database is out of reach."""
    try:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        from bascule.runbook.context import REPORT_XCOM_KEY

        with create_session() as session:
            row = session.query(XComModel).filter(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == REPORT_XCOM_KEY).first()
            value = XComModel.deserialize_value(row) if row is not None else None
    except Exception:  # no metadata database configured or reachable on this host
        return None
    if not isinstance(value, dict):
        return None
    return (value.get("evidence") or {}).get("root")


def command(args: argparse.Namespace) -> int:
    from bascule.hooks import evidence
    from bascule.plan import load_plan

    plan = load_plan(args.plan)
    expected = root_in_metadata(args.dag, args.run_id)
    verdict = evidence.verify(plan.name, args.dag, args.run_id, expected_root=expected)
    where = evidence.run_folder(plan.name, args.dag, args.run_id)
    print(f"evidence of {args.dag} run {args.run_id} in {where}")
    print(f"root {verdict.root or '-'}: {verdict.checked_files} files, {verdict.checked_decisions} decisions; "
          f"metadata database root: {'matches' if expected == verdict.root else expected or 'not reachable'}")
    for problem in verdict.problems:
        print(f"TAMPERED: {problem}", file=sys.stderr)
    print("OK: the evidence is as the run sealed it" if verdict.ok else "FAILED: the evidence was changed")
    return 0 if verdict.ok else 1
