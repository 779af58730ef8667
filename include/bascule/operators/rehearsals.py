"""Scheduled rehearsals: refresh the rehearsal environment, run the night there, compare with the last (ADR 0058)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from bascule.hooks import evidence
from bascule.operators.preparation import RehearsalReportOperator
from bascule.plan import Plan
from bascule.runbook.context import EVIDENCE_XCOM_KEY, SafeMessage

__all__ = ["RefreshFailed", "RefreshRehearsalEnvironmentOperator", "RehearsalComparisonOperator"]

# How many of the command's last output lines go to the task log and the error (sanitised).
_TAIL_LINES = 20


class RefreshFailed(AirflowFailException, SafeMessage):
    """The rehearsal environment could not be refreshed: no rehearsal runs on stale data. Not retried."""


class RefreshRehearsalEnvironmentOperator(BaseOperator):
    """Run the plan's ``rehearsal.refresh`` command (the site's restore of production into the rehearsal
    environment; in the lab, the clusters reset from their seeded templates).

    Through Airflow's ``SubprocessHook``, with the workers' own Python environment first on ``PATH`` (so
    that ``bascule`` and the site's tools installed beside it are found), bounded by ``refresh_timeout``.
    """

    ui_color = "#fff4d6"

    def __init__(self, *, plan: Plan, **kwargs: Any) -> None:
        if plan.rehearsal is None:
            raise ValueError(f"{kwargs.get('task_id')}: plan {plan.name!r} names no rehearsal environment")
        kwargs.setdefault("execution_timeout", _timedelta(plan.rehearsal.refresh_timeout))
        super().__init__(**kwargs)
        self.command = list(plan.rehearsal.refresh)

    @cached_property
    def hook(self) -> Any:
        from airflow.providers.standard.hooks.subprocess import SubprocessHook

        return SubprocessHook()

    def execute(self, context: Any) -> dict[str, Any]:
        from bascule.privacy.sanitize import sanitize_error_text

        if not self.command:
            self.log.warning("the plan has no rehearsal.refresh command: the rehearsal environment is taken as "
                             "it is (refreshed by hand)")
            return {"refreshed": False}
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        result = self.hook.run_command(command=self.command, env=env)
        if result.exit_code != 0:
            tail = sanitize_error_text(str(result.output or ""))
            raise RefreshFailed(f"rehearsal refresh `{' '.join(self.command)}` exited {result.exit_code}: {tail}")
        self.log.info("rehearsal environment refreshed by `%s`", " ".join(self.command))
        return {"refreshed": True, "command": self.command}


def _timedelta(seconds: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=seconds)


class RehearsalComparisonOperator(RehearsalReportOperator):
    """After a scheduled rehearsal: rehearsal N against N-1 and against the plan (per step, the critical path,
    the downtime, the validation time), written to the evidence store beside this run's other records, and the
    outcome recorded on the plan's rehearsal Asset when the plan has a calendar.

    Only rehearsal runs count (``{"rehearsal": true}``), never a night for real. ``rehearsal_run_id`` is the
    cutover run this DAG triggered: its report must be the latest one.
    """

    template_fields: Sequence[str] = (*RehearsalReportOperator.template_fields, "rehearsal_run_id")

    def __init__(self, *, rehearsal_run_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.rehearsal_run_id = rehearsal_run_id

    def execute(self, context: Any) -> dict[str, Any]:
        from bascule.preparation import rehearsal

        plan = self._plan
        history = [r for r in rehearsal.load_history(self.plan_name, dag_id=self.cutover_dag_id) if r.rehearsal]
        if not history or history[-1].run_id != self.rehearsal_run_id:
            raise AirflowFailException(f"rehearsal {self.rehearsal_run_id!r} left no report in the evidence store "
                                       f"(the latest rehearsal there: {history[-1].run_id if history else None})")
        planned = plan.calendar.rehearsals.dates() if plan.calendar is not None else []
        data = rehearsal.compare(history, budget_s=self.budget_s, planned=planned)
        data["forecast"] = rehearsal.forecast(history, budget_s=self.budget_s, scale=float(self.scale)).to_json()
        ti = context["ti"]
        path = evidence.write_json(evidence.run_folder(plan.name, ti.dag_id, ti.run_id) / "rehearsal_report.json",
                                   data)
        data["file"] = str(path)
        ti.xcom_push(key=EVIDENCE_XCOM_KEY, value=rehearsal.compare_markdown(data))
        if self._rehearsal_asset is not None:
            self._record_last(context, history[-1])
        self.log.info("rehearsal %d (%s): %s; written to %s", data["number"], data["latest_run"],
                      data["latest"], path)
        if history[-1].outcome != "completed":
            raise AirflowFailException(f"rehearsal {self.rehearsal_run_id} ended {history[-1].outcome!r}; its "
                                       f"comparison is in {path}")
        return data
