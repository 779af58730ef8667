"""Operators for data validation: full comparison, incremental comparison, Great Expectations suites.

Each pushes its JSON report to XCom (return_value) before failing, writes the
same report to a file, logs a readable summary, and fails with
:class:`~bascule.validation.report.ValidationFailed` naming the tables and
where the full report is. Nothing they log or push holds a row value.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator, TaskGroup
from great_expectations_provider.operators.validate_checkpoint import GXValidateCheckpointOperator

from bascule.hooks.validation import ValidationHook
from bascule.plan import Plan
from bascule.validation.report import ValidationFailed, render_summary


def _where(context: Any, task_id: str, path: Path) -> str:
    ti = context["ti"]
    return f"XCom {ti.dag_id}.{task_id} (run {ti.run_id}) key return_value, and file {path}"


def _with_conn_ids(plan: Plan, source_conn_id: str, target_conn_id: str, key_hash_conn_id: str) -> Plan:
    return plan.model_copy(update={
        "source": plan.source.model_copy(update={"conn_id": source_conn_id}),
        "target": plan.target.model_copy(update={"conn_id": target_conn_id}),
        "validation": plan.validation.model_copy(update={"key_hash_conn_id": key_hash_conn_id}),
    })


class _ComparisonOperator(BaseOperator):
    template_fields: Sequence[str] = ("source_conn_id", "target_conn_id", "key_hash_conn_id", "tables")
    ui_color = "#e6f4ea"
    kind = "full"

    def __init__(self, *, plan: Plan, source_conn_id: str | None = None, target_conn_id: str | None = None,
                 key_hash_conn_id: str | None = None, tables: Sequence[str] | None = None,
                 wait_and_confirm_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.source_conn_id = source_conn_id or plan.source.conn_id
        self.target_conn_id = target_conn_id or plan.target.conn_id
        self.key_hash_conn_id = key_hash_conn_id or plan.validation.key_hash_conn_id
        self.tables = list(tables) if tables else None
        self.wait_and_confirm_s = wait_and_confirm_s

    @cached_property
    def effective_plan(self) -> Plan:
        return _with_conn_ids(self.plan, self.source_conn_id, self.target_conn_id, self.key_hash_conn_id)

    def _overrides(self) -> dict[str, Any]:
        return {} if self.wait_and_confirm_s is None else {"wait_and_confirm_s": float(self.wait_and_confirm_s)}

    def run_comparison(self, context: Any) -> dict[str, Any]:
        raise NotImplementedError

    def execute(self, context: Any) -> dict[str, Any]:
        from bascule.validation.history import record_comparison, run_folder
        from bascule.validation.service import write_report

        report = self.run_comparison(context)
        ti = context["ti"]
        path = write_report(report, run_folder(self.plan.name, ti.dag_id, ti.run_id) / f"{self.task_id}.json")
        record_comparison(report, plan_name=self.plan.name, dag_id=ti.dag_id, run_id=ti.run_id, step=self.task_id)
        for line in render_summary(report).splitlines():
            self.log.info("%s", line)
        if not report["ok"]:
            ti.xcom_push(key="return_value", value=report)
            raise ValidationFailed(f"{self.kind} comparison", report["failed_tables"],
                                   _where(context, self.task_id, path))
        return report


class FullComparisonOperator(_ComparisonOperator):
    """Compare every table in scope (or ``tables``); optionally start the change slots for incremental runs."""

    kind = "full"

    def __init__(self, *, track_changes: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.track_changes = track_changes

    def run_comparison(self, context: Any) -> dict[str, Any]:
        from bascule.validation.service import full_comparison

        return full_comparison(self.effective_plan, track_changes=self.track_changes, tables=self.tables,
                               **self._overrides())


class IncrementalComparisonOperator(_ComparisonOperator):
    """Re-check what changed since a full comparison; its report comes from XCom or a file."""

    template_fields: Sequence[str] = (*_ComparisonOperator.template_fields, "previous_report_path")
    kind = "incremental"

    def __init__(self, *, previous_task_id: str | None = None, previous_report_path: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.previous_task_id = previous_task_id
        self.previous_report_path = previous_report_path

    def run_comparison(self, context: Any) -> dict[str, Any]:
        import json

        from bascule.validation.service import incremental_comparison

        previous = None
        if self.previous_task_id:
            previous = context["ti"].xcom_pull(task_ids=self.previous_task_id, key="return_value")
        elif self.previous_report_path:
            previous = json.loads(Path(self.previous_report_path).read_text())
        return incremental_comparison(self.effective_plan, previous, tables=self.tables, **self._overrides())


class SuiteRunOperator(GXValidateCheckpointOperator):
    """Run one Great Expectations suite from ``expectations/`` against the source or the target.

    Built on the GX provider's checkpoint operator with a file context made for
    the run in a temporary directory (removed afterwards). The suite's
    parameters (the source's row count) are measured on the source first.
    """

    template_fields: Sequence[str] = ("db_conn_id", "source_conn_id")
    ui_color = "#fff4e5"

    def __init__(self, *, suite: str, side: str, db_conn_id: str, engine: str, source_conn_id: str,
                 source_engine: str, plan_name: str = "default", **kwargs: Any) -> None:
        if side not in ("source", "target"):
            raise ValueError(f"side must be 'source' or 'target' (got {side!r})")
        super().__init__(configure_checkpoint=self._checkpoint, context_type="file",
                         configure_file_data_context=self._file_context, **kwargs)
        self.suite = suite
        self.side = side
        self.db_conn_id = db_conn_id
        self.engine = engine
        self.source_conn_id = source_conn_id
        self.source_engine = source_engine
        self.plan_name = plan_name

    @cached_property
    def hook(self) -> ValidationHook:
        return ValidationHook(db_conn_id=self.db_conn_id, engine=self.engine)

    @cached_property
    def source_hook(self) -> ValidationHook:
        return ValidationHook(db_conn_id=self.source_conn_id, engine=self.source_engine)

    def _file_context(self) -> Iterator[Any]:
        # A generator function: the provider tears the context down by running it to completion.
        from bascule.validation.runner import suite_file_context

        with suite_file_context(side=self.side, hook=self.hook, source=self.source_hook,
                                suites=[self.suite]) as (context, _docs):
            yield context

    def _checkpoint(self, context: Any) -> Any:
        from bascule.validation.suites import StrippedCheckpoint

        # The provider pushes the run's describe_dict() to XCom: the stripped one (exception_info quotes a
        # failed CAST's value), with each expectation's raised class kept.
        return StrippedCheckpoint(context.checkpoints.get(self.suite))

    def execute(self, context: Any) -> None:
        from great_expectations_provider.common.errors import GXValidationFailed

        from bascule.validation.history import record_step, run_folder
        from bascule.validation.suites import (
            load_suite_file,
            outcome_summary,
            quiet_gx,
            render_suites_html,
            suite_table,
        )

        quiet_gx()
        ti = context["ti"]
        path = run_folder(self.plan_name, ti.dag_id, ti.run_id) / f"{self.task_id}.html"
        failed: bool | None = None
        try:
            super().execute(context)
        except GXValidationFailed:
            failed = True
        result = ti.xcom_pull(task_ids=self.task_id, key="return_value") or {}
        summary = outcome_summary(result)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_suites_html(summary, title=f"{self.suite} on the {self.side}"))
        for s in summary["suites"]:
            for e in s["expectations"]:
                self.log.info("%s %s %s: %s", s["suite"], e["type"], e["column"] or "",
                              "pass" if e["success"] else "FAIL")
        record_step(plan_name=self.plan_name, dag_id=ti.dag_id, run_id=ti.run_id, step=self.task_id,
                    kind=f"suite_{self.side}", ok=failed is None,
                    tables=[".".join(suite_table(load_suite_file(self.suite)))])
        if failed is not None:
            bad = sorted({f"{e['type']}({e['column'] or ''})" for s in summary["suites"]
                          for e in s["expectations"] if not e["success"]})
            raise ValidationFailed(
                f"suite {self.suite} on the {self.side} ({', '.join(bad)})", [self.suite],
                f"XCom {ti.dag_id}.{self.task_id} (run {ti.run_id}) key return_value, and file {path}")


def suite_runs(plan: Plan, *, side: str, group_id: str | None = None, suites: Sequence[str] | None = None
               ) -> TaskGroup:
    """A task group running each of the plan's suites on one side."""
    endpoint = plan.target if side == "target" else plan.source
    with TaskGroup(group_id=group_id or f"suites_{side}") as group:
        for name in suites or plan.validation.suites:
            SuiteRunOperator(task_id=name, suite=name, side=side, db_conn_id=endpoint.conn_id,
                             engine=endpoint.engine.value, source_conn_id=plan.source.conn_id,
                             source_engine=plan.source.engine.value, plan_name=plan.name)
    return group
