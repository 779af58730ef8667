"""The weekly readiness: recomputed from the milestones' Assets and the rehearsals, one Slack message (ADR 0059)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from bascule.hooks import evidence
from bascule.hooks.decision_key import DecisionKeyHook
from bascule.hooks.replication import ReplicationHistoryHook
from bascule.plan import MilestoneId, Plan
from bascule.runbook.context import EVIDENCE_XCOM_KEY
from bascule.today import utc_now

__all__ = ["WeeklyReadinessOperator"]


class WeeklyReadinessOperator(BaseOperator):
    """Milestones on time, late or overdue (planned against recorded), rehearsals and their trend, the forward
    flow's lag trend, the storage figures, the days left; written to the evidence store (JSON and an HTML page
    with the timeline) and posted to Slack as one message.

    The milestones are read as this task's inlets (their signed Asset events), like the night's
    ``calendar_checks``: only events whose signature holds count.
    """

    ui_color = "#e0f0ff"

    def __init__(self, *, plan: Plan, **kwargs: Any) -> None:
        from bascule.runbook.milestones import calendar_assets

        if plan.calendar is None:
            raise ValueError(f"{kwargs.get('task_id')}: plan {plan.name!r} has no calendar")
        kwargs["inlets"] = [*kwargs.get("inlets", []), *calendar_assets(plan)]
        super().__init__(**kwargs)
        self._plan = plan

    @cached_property
    def history(self) -> ReplicationHistoryHook:
        return ReplicationHistoryHook(history_conn_id=self._plan.target.conn_id)

    def execute(self, context: Any) -> dict[str, Any]:
        from bascule.preparation import rehearsal, weekly
        from bascule.runbook import milestones

        plan = self._plan
        assert plan.calendar is not None
        inlets = context["inlet_events"]
        events = {asset.name.rsplit(".", 1)[1]: [milestones.Seen.of(e) for e in inlets[asset]]
                  for asset in milestones.calendar_assets(plan)}
        key = DecisionKeyHook(key_conn_id=plan.decisions.key_conn_id).key()
        now = utc_now()
        readings = [(at, lag) for at, lag in self.history.recent(method=plan.replication.method.value,
                                                                  direction="forward")]
        history = [r for r in rehearsal.load_history(plan.name) if r.rehearsal]
        data = weekly.readiness(
            plan.calendar, recorded=milestones.recorded(plan, events, key=key),
            findings=milestones.findings(plan, events, key=key, now=now), history=history,
            lag=weekly.lag_trend(readings, now), budget_s=plan.budget_seconds,
            storage=milestones.latest_figures(plan, events, MilestoneId.STORAGE_APPLIED.value, key=key), now=now)
        ti = context["ti"]
        folder = evidence.run_folder(plan.name, ti.dag_id, ti.run_id)
        data["file"] = str(evidence.write_json(folder / "readiness.json", data))
        page = folder / "readiness.html"
        page.write_text(weekly.page(plan.name, data))
        data["page"] = str(page)
        data["slack_posted"] = self._post(context, data)
        ti.xcom_push(key=EVIDENCE_XCOM_KEY, value=f"{data['days_left']} days to the night; risks: "
                                                   + ("; ".join(data["risks"]) or "none"))
        self.log.info("readiness: %d days left, %d on time, %d late, %d overdue, %d risk(s); %s", data["days_left"],
                      data["on_time"], data["late"], data["overdue"], len(data["risks"]), page)
        return data

    def _post(self, context: Any, data: dict[str, Any]) -> bool:
        try:
            from bascule.notifications.events import ReadinessSummary
            from bascule.notifications.slack import SlackNotifications

            slack = SlackNotifications.for_plan(self._plan.notifications, ti=context["ti"])
            if slack is None:
                return False
            ti = context["ti"]
            rh = data["rehearsals"]
            return slack.post_alone(ReadinessSummary(
                dag_id=ti.dag_id, run_id=ti.run_id, plan_id=self._plan.name, days_left=int(data["days_left"]),
                on_time=data["on_time"], late=data["late"], overdue=data["overdue"], rehearsals_done=rh["done"],
                rehearsals_planned=rh["planned_total"], risks=tuple(data["risks"])))
        except Exception:  # Slack never fails the readiness: the report is written
            self.log.exception("the readiness could not be posted to Slack")
            return False
