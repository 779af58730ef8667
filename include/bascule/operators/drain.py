"""The drain: wait until the target has applied everything up to the frozen source position.

The replication sensor, plus what the cutover needs around it: a step record
for the report (the time until the trigger saw the target caught up is the
step's work; resuming from the deferral is overhead), the step's Slack
announcements, and the downtime clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bascule.sensors.replication import ReplicationCaughtUpSensor

STARTED_KEY = "bascule_drain_started"
TIMING_KEY = "bascule_sensor_timing"


class DrainSensor(ReplicationCaughtUpSensor):
    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._plan = plan

    def _ctx(self, context: Any) -> Any:
        from bascule.operators.steps import StepContext

        return StepContext(plan=self._plan, airflow=context, step="drain")

    def execute(self, context: Any) -> Any:
        from bascule.runbook import runtime

        context["ti"].xcom_push(key=STARTED_KEY, value=datetime.now(UTC).isoformat())
        runtime.step_started(self._ctx(context), critical_path=True)
        result = super().execute(context)
        if result is not None:  # nothing to wait for (method none): finished without deferring
            self._record(context, result)
        return result

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        result = super().execute_complete(context, event)
        self._record(context, event)
        return result

    def _record(self, context: Any, event: dict[str, Any]) -> None:
        from bascule.runbook import runtime

        ti = context["ti"]
        started = ti.xcom_pull(task_ids=self.task_id, key=STARTED_KEY) or datetime.now(UTC).isoformat()
        ended = datetime.now(UTC)
        waited = float(event.get("waited_s") or 0.0)
        reading = event.get("reading") or {}
        ti.xcom_push(key=TIMING_KEY, value={
            "step": "drain", "task_id": self.task_id, "started_at": started, "ended_at": ended.isoformat(),
            "seconds": round(waited, 4), "critical_path": True,
            "result": {"position": event.get("position") or self.position, "waited_s": waited,
                       "state": reading.get("state"), "applied_position": reading.get("applied_position")},
        })
        ctx = self._ctx(context)
        ctx.log(f"target caught up with the frozen source after {waited:.2f} s")
        runtime.step_finished(ctx, ok=True, seconds=waited, critical_path=True)
