"""Go/no-go gates: a human decides in the Airflow UI (or its REST API), and only the plan's people may.

A gate is Airflow's own human-in-the-loop branch operator, with:
- the options GO and NO-GO, each mapped to the task that follows it;
- ``assigned_users`` from the plan, so anyone else gets 403 from the API;
- a body rendered from the evidence an earlier task pushed, or computed by the
  gate itself as it opens (lag, drain ETA, validation, forecast downtime, open
  findings), never a row value;
- Slack: "waiting for <people>" when it opens, "GO/NO-GO by <who>" when decided.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.providers.standard.operators.hitl import HITLBranchOperator

from bascule.plan import Plan
from bascule.runbook.context import ASKED_XCOM_KEY, DECISION_XCOM_KEY, EVIDENCE_XCOM_KEY, StepContext

GO, NO_GO = "GO", "NO-GO"


class GateOperator(HITLBranchOperator):
    """GO / NO-GO, answered by the gate's assigned users; branches to ``go_task_id`` or ``no_go_task_id``."""

    template_fields: Sequence[str] = ("subject", "body")
    ui_color = "#ffe0e6"
    _bascule_slack: Any = None  # this process's notifier, made on first use (see _notifier)

    def __init__(
        self,
        *,
        plan: Plan,
        gate_id: str,
        go_task_id: str,
        no_go_task_id: str,
        evidence_task_id: str | None = None,
        body_from: Callable[[Any], str] | None = None,
        **kwargs: Any,
    ) -> None:
        if (evidence_task_id is None) == (body_from is None):
            raise ValueError(f"gate {gate_id}: give exactly one of evidence_task_id (an earlier task pushed "
                             "the body) and body_from (the gate computes it when it opens)")
        gate = plan.gate(gate_id)
        self.body_from = body_from
        self.gate_id = gate_id
        self.plan_name = plan.name
        self.assigned = list(gate.assigned_users)
        self.has_notifications = plan.notifications is not None
        self._plan = plan
        from bascule.runbook.runtime import with_flush_after_success

        kwargs["on_success_callback"] = with_flush_after_success(kwargs.get("on_success_callback"))
        super().__init__(
            subject=gate.title,
            body=None if evidence_task_id is None else (
                "{{ ti.xcom_pull(task_ids='" + evidence_task_id + "', key='" + EVIDENCE_XCOM_KEY + "') }}"),
            options=[GO, NO_GO],
            options_mapping={GO: go_task_id, NO_GO: no_go_task_id},
            assigned_users=[{"id": user, "name": user} for user in gate.assigned_users],
            response_timeout=None if gate.timeout is None else _timedelta(gate.timeout),
            **kwargs,
        )

    def execute(self, context: Any) -> Any:
        from bascule.notifications.events import GateWaiting, TaskRef

        ti = context["ti"]
        # Queued first, so that Slack's answer (0.1-0.3 s) comes while the evidence is gathered.
        self._notify(context, GateWaiting(
            dag_id=ti.dag_id, run_id=ti.run_id, gate_id=self.gate_id, asked=tuple(self.assigned),
            task=TaskRef(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id),
            timeout_s=None if self.response_timeout is None else self.response_timeout.total_seconds(),
        ))
        if self.body_from is not None:
            try:
                self.body = self.body_from(StepContext(plan=self._plan, airflow=context, step=self.task_id))
                ti.xcom_push(key=EVIDENCE_XCOM_KEY, value=self.body)
            except BaseException:
                if self._bascule_slack is not None:
                    self._bascule_slack.wait_posted()  # the process ends here: no callback will send it
                raise
        self.log.info("gate %s waiting for a decision from %s", self.gate_id, ", ".join(self.assigned))
        # The task parks next and its process ends: no success callback will send the message.
        if self._bascule_slack is not None:
            self._bascule_slack.wait_posted()
        # When the question is put, so that the report can tell deciding time from bascule's own overhead.
        ti.xcom_push(key=ASKED_XCOM_KEY, value=datetime.now(UTC).isoformat())
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from bascule.notifications.events import GateDecided, GateDecision

        ti = context["ti"]
        chosen = list(event.get("chosen_options") or [])
        by = event.get("responded_by_user") or {}
        who = str(by.get("id") or by.get("name") or "unknown")
        slack = self._notifier(context)
        if slack is not None:
            # Resumed in a new process: keep the count of the messages sent before the gate parked.
            slack.carry_earlier_ledger()
        asked_at = ti.xcom_pull(task_ids=self.task_id, key=ASKED_XCOM_KEY)
        answered_at = _iso(event.get("responded_at"))
        decision = {
            "gate": self.gate_id,
            "decision": chosen[0] if chosen else None,
            "by": who,
            "asked_at": asked_at,
            "at": answered_at,
            "decision_s": _seconds_between(asked_at, answered_at),
            "recorded_at": datetime.now(UTC).isoformat(),
        }
        ti.xcom_push(key=DECISION_XCOM_KEY, value=decision)
        self.log.info("gate %s: %s by %s", self.gate_id, decision["decision"], who)
        if chosen:
            self._notify(context, GateDecided(
                dag_id=ti.dag_id, run_id=ti.run_id, gate_id=self.gate_id,
                decision=GateDecision.GO if chosen[0] == GO else GateDecision.NO_GO, decided_by=who,
            ))
        from airflow.sdk.exceptions import DownstreamTasksSkipped

        try:
            return super().execute_complete(context, event)
        except BaseException as exc:
            # Branching raises DownstreamTasksSkipped on success (the callback sends the rest); else this fails.
            if not isinstance(exc, DownstreamTasksSkipped) and self._bascule_slack is not None:
                self._bascule_slack.wait_posted()
            raise

    def _notifier(self, context: Any) -> Any:
        """This process's notifier (None without a notifications section): posts in the background."""
        if self._bascule_slack is None and self.has_notifications:
            from bascule.notifications.slack import SlackNotifications

            self._bascule_slack = SlackNotifications.for_plan(self._plan.notifications, ti=context["ti"],
                                                              publish_each_delivery=False, background=True)
        return self._bascule_slack

    def _notify(self, context: Any, event: Any) -> None:
        """Queue ``event``; it is posted while the gate goes on, and waited for before the process ends."""
        slack = self._notifier(context)
        if slack is not None:
            from bascule.runbook.announce import run_started_event

            slack.post(event, parent=run_started_event(self._plan, event.dag_id, event.run_id))


def _timedelta(seconds: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=seconds)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)
    except (TypeError, ValueError):
        return None
