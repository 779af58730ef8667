"""Go/no-go gates: a human decides in the Airflow UI (or its REST API), and only the plan's people may.

A gate is Airflow's own human-in-the-loop branch operator, with:
- the options GO and NO-GO, each mapped to the task that follows it;
- ``assigned_users`` from the plan, so anyone else gets 403 from the API;
- a body rendered from the evidence an earlier task pushed, or computed by the
  gate itself as it opens (lag, drain ETA, validation, forecast downtime, open
  findings), never a row value;
- Slack, through the HITL operator's own ``notifiers=``: "waiting for <@U…>" (the plan's Slack ids page the
  assigned users) with a link to the gate's Required Action when it opens; "GO/NO-GO by <who>", with the
  reason, when decided;
- a ``reason`` field in the Required Action form (``params=``): required with NO-GO (ADR 0047), kept in the
  signed decision, the report and the migration view.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLBranchOperator, HITLOperator
from airflow.sdk import BaseNotifier, Param
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import AirflowFailException

from bascule.plan import Plan
from bascule.privacy.sanitize import sanitize_error_text
from bascule.runbook.context import (
    ASKED_XCOM_KEY,
    DECISION_XCOM_KEY,
    DONE,
    EVIDENCE_XCOM_KEY,
    GO,
    NO_GO,
    SafeMessage,
    StepContext,
    plan_for_run,
    run_conf,
)
from bascule.today import parse_instant, utc_now

if TYPE_CHECKING:
    from bascule.runbook.registry import Runbook

__all__ = ["GO", "NO_GO", "CheckpointOperator", "DecisionNotRecorded", "GateOperator"]


class DecisionNotRecorded(AirflowFailException, SafeMessage):
    """An answer that cannot stand (an option or a responder the plan does not allow), or a NO-GO at a checkpoint."""


REASON_PARAM = "reason"


def reason_params(inherited: Any = None) -> ParamsDict:
    """The Required Action form's one field. Optional for the form (GO needs none); NO-GO without it is refused.

    ``inherited``: the DAG's params, which Airflow hands every task; kept as the DAG's (the HITL form shows
    only the task's own).
    """
    params = ParamsDict(inherited) if inherited else ParamsDict()
    params[REASON_PARAM] = Param("", type="string", title="Reason", source="task",
                                 description="Why: required with NO-GO, kept in the signed decision and the report")
    return params


class GateWaitingNotifier(BaseNotifier):
    """The gate's HITL notifier: once Airflow has written the Required Action, page the people who may answer.

    Called by ``HITLOperator.execute`` with the task's context, after the body is rendered and the HITL record
    written, right before the task parks: the link then leads to a form that exists.
    """

    def notify(self, context: Any) -> None:
        task = context["task"]
        announce = getattr(task, "announce_waiting", None)
        if announce is not None:
            announce(context)


class _DecisionGate:
    """What a gate and a checkpoint share: who may answer, the body, Slack, and the signed decision.

    The decision is recorded signed (``bascule.runbook.decisions``, ADR 0037) once the answer is checked:
    an option the gate does not offer, or a responder the plan does not assign, is refused before anything
    is recorded or announced. Every step after the gate verifies that signature before it acts.
    """

    template_fields: Sequence[str] = ("subject", "body")
    ui_color = "#ffe0e6"
    _bascule_slack: Any = None  # this process's notifier, made on first use (see _notifier)

    def _setup(self, *, plan: Plan, gate_id: str, assigned: Sequence[str], body_from: Callable[[Any], str] | None,
               runbook: Runbook | None, kwargs: dict[str, Any]) -> None:
        from bascule.runbook.runtime import with_flush_after_success

        self.body_from = body_from
        self.gate_id = gate_id
        self.plan_name = plan.name
        self.assigned = list(assigned)
        self.has_notifications = plan.notifications is not None
        self.runbook = runbook
        self._plan = plan
        kwargs["on_success_callback"] = with_flush_after_success(kwargs.get("on_success_callback"))

    @staticmethod
    def _evidence(evidence_task_id: str | None) -> str | None:
        if evidence_task_id is None:
            return None
        return "{{ ti.xcom_pull(task_ids='" + evidence_task_id + "', key='" + EVIDENCE_XCOM_KEY + "') }}"

    def announce_waiting(self, context: Any) -> None:
        """Post "waiting for <@U…>" with the Required Action's link; waited for, since the task parks next."""
        from bascule.notifications.events import GateWaiting, TaskRef

        ti = context["ti"]
        users = dict(self._plan.notifications.slack_users) if self._plan.notifications is not None else {}
        self._notify(context, GateWaiting(
            dag_id=ti.dag_id, run_id=ti.run_id, gate_id=self.gate_id, asked=tuple(self.assigned),
            task=TaskRef(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id),
            timeout_s=None if self.response_timeout is None else self.response_timeout.total_seconds(),
            mentions=tuple(users[u] for u in self.assigned if u in users),
        ))
        # The task parks next and its process ends: no success callback will send the message.
        if self._bascule_slack is not None:
            self._bascule_slack.wait_posted()

    def execute(self, context: Any) -> Any:
        ti = context["ti"]
        if self.body_from is not None:
            try:
                plan = plan_for_run(self._plan, run_conf(context))
                self.body = self.body_from(StepContext(plan=plan, airflow=context, step=self.task_id,
                                                       runbook=self.runbook))
                ti.xcom_push(key=EVIDENCE_XCOM_KEY, value=self.body)
            except BaseException:
                if self._bascule_slack is not None:
                    self._bascule_slack.wait_posted()  # the process ends here: no callback will send it
                raise
        self.log.info("gate %s waiting for a decision from %s", self.gate_id, ", ".join(self.assigned))
        # When the question is put, so that the report can tell deciding time from bascule's own overhead.
        ti.xcom_push(key=ASKED_XCOM_KEY, value=utc_now().isoformat())
        return super().execute(context)  # type: ignore[misc]

    def _record(self, context: Any, event: dict[str, Any]) -> str:
        """Check the answer, then record it signed and announce it; returns the option chosen."""
        from bascule.hooks.decision_key import DecisionKeyHook
        from bascule.notifications.events import GateDecided, GateDecision
        from bascule.runbook.decisions import sign

        ti = context["ti"]
        chosen = list(event.get("chosen_options") or [])
        by = event.get("responded_by_user") or {}
        who = str(by.get("id") or by.get("name") or "unknown")
        if "error" not in event and (len(chosen) != 1 or chosen[0] not in self.options):  # type: ignore[attr-defined]
            raise DecisionNotRecorded(f"gate {self.gate_id}: answer {chosen} is not one of "
                                      f"{', '.join(self.options)}; nothing recorded")  # type: ignore[attr-defined]
        if chosen and who not in self.assigned:
            raise DecisionNotRecorded(f"gate {self.gate_id}: answered by {who!r}, who is not among its assigned "
                                      f"users ({', '.join(self.assigned)}); nothing recorded")
        slack = self._notifier(context)
        if slack is not None:
            # Resumed in a new process: keep the count of the messages sent before the gate parked.
            slack.carry_earlier_ledger()
        if not chosen:
            return ""  # a timeout or an error: the base class fails the task
        reason = str((event.get("params_input") or {}).get(REASON_PARAM) or "").strip()
        if chosen[0] == NO_GO and not reason:
            raise DecisionNotRecorded(f"gate {self.gate_id}: NO-GO by {who!r} without a reason; nothing recorded "
                                      f"(the Required Action form's 'reason' is required with NO-GO)")
        asked_at = ti.xcom_pull(task_ids=self.task_id, key=ASKED_XCOM_KEY)
        answered_at = _iso(event.get("responded_at"))
        decision = {
            "dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": self.task_id,
            "gate": self.gate_id,
            "decision": chosen[0],
            "by": who,
            "asked_at": asked_at,
            "at": answered_at,
            "decision_s": _seconds_between(asked_at, answered_at),
            "recorded_at": utc_now().isoformat(),
        }
        if reason:
            decision["reason"] = sanitize_error_text(reason, max_chars=300)
        key = DecisionKeyHook(key_conn_id=self._plan.decisions.key_conn_id).key()
        ti.xcom_push(key=DECISION_XCOM_KEY, value=sign(key, decision))
        self.log.info("gate %s: %s by %s (signed)", self.gate_id, decision["decision"], who)
        self._notify(context, GateDecided(
            dag_id=ti.dag_id, run_id=ti.run_id, gate_id=self.gate_id,
            decision=GateDecision.NO_GO if chosen[0] == NO_GO else GateDecision.GO, decided_by=who,
            reason=decision.get("reason"),
        ))
        return chosen[0]

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

    def _flush_on_failure(self, exc: BaseException) -> None:
        from airflow.sdk.exceptions import DownstreamTasksSkipped

        # Branching raises DownstreamTasksSkipped on success (the callback sends the rest); else this fails.
        if not isinstance(exc, DownstreamTasksSkipped) and self._bascule_slack is not None:
            self._bascule_slack.wait_posted()


class GateOperator(_DecisionGate, HITLBranchOperator):
    """GO / NO-GO, answered by the gate's assigned users; branches to ``go_task_id`` or ``no_go_task_id``."""

    def __init__(
        self,
        *,
        plan: Plan,
        gate_id: str,
        go_task_id: str,
        no_go_task_id: str,
        evidence_task_id: str | None = None,
        body_from: Callable[[Any], str] | None = None,
        runbook: Runbook | None = None,
        **kwargs: Any,
    ) -> None:
        if (evidence_task_id is None) == (body_from is None):
            raise ValueError(f"gate {gate_id}: give exactly one of evidence_task_id (an earlier task pushed "
                             "the body) and body_from (the gate computes it when it opens)")
        gate = plan.gate(gate_id)
        self._setup(plan=plan, gate_id=gate_id, assigned=gate.assigned_users, body_from=body_from,
                    runbook=runbook, kwargs=kwargs)
        super().__init__(
            subject=gate.title,
            body=self._evidence(evidence_task_id),
            options=[GO, NO_GO],
            options_mapping={GO: go_task_id, NO_GO: no_go_task_id},
            assigned_users=[{"id": user, "name": user} for user in gate.assigned_users],
            response_timeout=None if gate.timeout is None else _timedelta(gate.timeout),
            params=reason_params(kwargs.pop("params", None)),
            notifiers=[GateWaitingNotifier()],
            **kwargs,
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        try:
            self._record(context, event)
            return super().execute_complete(context, event)
        except BaseException as exc:
            self._flush_on_failure(exc)
            raise


class CheckpointOperator(_DecisionGate, HITLOperator):
    """A gate the plan places (GO / NO-GO) or a manual step (DONE), with no branches.

    GO or DONE lets the night go on; NO-GO fails this task, so that inside the downtime window the
    runbook's rollback-on-failure takes the night back to the source.
    """

    def __init__(self, *, plan: Plan, gate_id: str, manual: bool = False, runbook: Runbook | None = None,
                 body_from: Callable[[Any], str] | None = None, **kwargs: Any) -> None:
        spec: Any = plan.manual_step(gate_id) if manual else plan.gate(gate_id)
        people = spec.owners if manual else spec.assigned_users
        self._setup(plan=plan, gate_id=gate_id, assigned=people, body_from=body_from, runbook=runbook,
                    kwargs=kwargs)
        self.manual = manual
        super().__init__(
            subject=spec.title,
            body=None,
            options=[DONE] if manual else [GO, NO_GO],
            assigned_users=[{"id": user, "name": user} for user in people],
            response_timeout=None if spec.timeout is None else _timedelta(spec.timeout),
            params=kwargs.pop("params", None) if manual else reason_params(kwargs.pop("params", None)),
            notifiers=[GateWaitingNotifier()],
            **kwargs,
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        try:
            chosen = self._record(context, event)
            result = super().execute_complete(context, event)
            if chosen == NO_GO:
                raise DecisionNotRecorded(f"NO-GO at gate {self.gate_id}: the night stops here"
                                          + (" and rolls back" if self.runbook is not None else ""))
            return result
        except BaseException as exc:
            self._flush_on_failure(exc)
            raise


def _timedelta(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    try:
        return round((parse_instant(end) - parse_instant(start)).total_seconds(), 3)
    except (TypeError, ValueError):
        return None
