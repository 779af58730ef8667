"""The runbook's contract: what an action is given, what it returns, and where results are kept.

Operators (``bascule.operators``) run actions; actions (``bascule.runbook``) do the
work. Both import this module and nothing of each other's, so the contract has
one home and no way back up the layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bascule.privacy.sanitize import SafeMessage

__all__ = ["SafeMessage"]  # re-exported: the actions and operators take it from the contract

if TYPE_CHECKING:
    from bascule.plan import Plan
    from bascule.runbook.registry import Runbook

# XCom keys. A step's record (timing and result) is under STEP_XCOM_KEY; the drain's under
# DRAIN_TIMING_XCOM_KEY (a sensor's own return value is not a step record).
STEP_XCOM_KEY = "bascule_step"
DRAIN_TIMING_XCOM_KEY = "bascule_sensor_timing"
DRAIN_STARTED_XCOM_KEY = "bascule_drain_started"
EVIDENCE_XCOM_KEY = "gate_body"  # a gate's body, pushed by the step before it (or the gate itself)
DECISION_XCOM_KEY = "bascule_decision"
ASKED_XCOM_KEY = "bascule_gate_asked_at"
REPORT_XCOM_KEY = "cutover_report"  # the run's report, whichever runbook (a fallback's too)

def clock_variable(dag_id: str, run_id: str) -> str:
    """The Airflow Variable holding a run's fired downtime-clock warnings (deleted by the run's report)."""
    return f"bascule_clock__{dag_id}__{run_id}"


# A gate's options, and a manual step's only one.
GO, NO_GO, DONE = "GO", "NO-GO", "DONE"


@dataclass
class StepContext:
    """What an action sees: the plan, the Airflow context, its runbook, and the results of earlier steps."""

    plan: Plan
    airflow: Any
    step: str
    runbook: Runbook | None = None
    notes: list[str] = field(default_factory=list)
    slack: Any = None
    # True for steps that flush from their success callback (runtime.flush_after_success).
    slack_background: bool = False
    # Set by runtime.step_finished: the success callback takes the step's last look at the clock.
    clock_check_after_success: bool = False
    _results: dict[str, dict[str, Any] | None] = field(default_factory=dict, repr=False)

    @property
    def ti(self) -> Any:
        return self.airflow["ti"]

    @property
    def step_task(self) -> str:
        return str(self.ti.task_id)

    @property
    def dag_id(self) -> str:
        return str(self.ti.dag_id)

    @property
    def run_id(self) -> str:
        return str(self.ti.run_id)

    @property
    def conf(self) -> dict[str, Any]:
        dag_run = self.airflow.get("dag_run")
        return dict(getattr(dag_run, "conf", None) or {})

    @property
    def freeze_task(self) -> str | None:
        """The step whose result starts the downtime clock in this step's runbook."""
        return self.runbook.freeze_task if self.runbook is not None else None

    def result_of(self, task_id: str) -> dict[str, Any] | None:
        """The action result of an earlier step of this run, or None if it did not run."""
        # Earlier steps are finished: their results cannot change while this one runs.
        if task_id not in self._results:
            record = self.ti.xcom_pull(task_ids=task_id, key=STEP_XCOM_KEY)
            self._results[task_id] = None if record is None else record.get("result")
        return self._results[task_id]

    def log(self, line: str) -> None:
        self.notes.append(line)
        print(f"[{self.step}] {line}", flush=True)


# What a runbook step runs: a small JSON-able result of positions, counts and timings, never a row value.
Action = Callable[[StepContext], dict[str, Any] | None]


def run_conf(context: Any) -> dict[str, Any]:
    """The run's ``dag_run.conf``, refused (not retried) if it holds a key the DAG does not declare.

    A DAG declares what a run may set as its ``params`` (Airflow checks their types when the run is
    triggered); a key outside them was silently ignored before, so a typo (``allow_finding``) or a key some
    older version read (``simulator_stats``, a path on the worker) looked accepted. None takes a path.
    """
    dag_run = context.get("dag_run") if hasattr(context, "get") else None
    conf = dict(getattr(dag_run, "conf", None) or {})
    dag = context.get("dag") if hasattr(context, "get") else None
    declared = getattr(dag, "params", None)
    if conf and declared is not None:
        allowed = set(declared.keys())
        unknown = sorted(str(k)[:60] for k in conf if k not in allowed)
        if unknown:
            from airflow.sdk.exceptions import AirflowFailException

            class RunConfRefused(AirflowFailException, SafeMessage):
                pass

            raise RunConfRefused(
                f"dag_run.conf: unknown key {unknown[0]!r}"
                + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
                + f"; this DAG takes only: {', '.join(sorted(allowed)) or 'no key'}")
    return conf


def plan_for_run(plan: Plan, conf: dict[str, Any] | None) -> Plan:
    """The plan a run works on: its rehearsal environment for a rehearsal (``{"rehearsal": true}``), else itself.

    Applied by every operator of a runbook before anything connects, so a rehearsal's steps, drain
    and smoke tests only ever see the rehearsal's connections and endpoint (``Plan.for_rehearsal``).
    """
    if not (conf or {}).get("rehearsal"):
        return plan
    if plan.rehearsal is None:
        from airflow.sdk.exceptions import AirflowFailException

        class RehearsalRefused(AirflowFailException, SafeMessage):
            pass

        raise RehearsalRefused(f"plan {plan.name!r} names no rehearsal environment (rehearsal:): a rehearsal never "
                               "runs on production's connections; add one, or run the night without rehearsal")
    return plan.for_rehearsal()
