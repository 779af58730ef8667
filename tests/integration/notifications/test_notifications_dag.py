"""A real tiny DAG, run with dag.test(), whose tasks post a thread to the capture server."""

from __future__ import annotations

import json

import pytest

from bascule_lab.slack_capture import CaptureServer, render_thread_text

pytestmark = pytest.mark.integration


def _build_dag(channel: str):
    from airflow.sdk import dag, task

    from bascule.notifications.events import (
        GateDecided,
        GateDecision,
        RunStarted,
        StepFinished,
        StepOutcome,
        TaskRef,
    )
    from bascule.notifications.slack import BasculeSlackNotifier, NotificationSettings, SlackNotifications

    settings = NotificationSettings(channel=channel, slack_conn_id="bascule_slack_dagtest")

    def ref(ti) -> TaskRef:
        return TaskRef(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, try_number=ti.try_number)

    @dag(dag_id="bascule_notifications_dagtest", schedule=None, catchup=False)
    def notifications_dagtest():
        @task
        def open_thread(ti=None):
            SlackNotifications(settings=settings).open_thread(
                RunStarted(dag_id=ti.dag_id, run_id=ti.run_id, plan_id="lab", downtime_budget_s=1800)
            )

        @task
        def gate(ti=None):
            n = SlackNotifications(settings=settings)
            n.notify(
                GateDecided(
                    dag_id=ti.dag_id,
                    run_id=ti.run_id,
                    gate_id="go_live",
                    decision=GateDecision.GO,
                    decided_by="alice",
                )
            )
            return n.summary()

        @task
        def step(ti=None):
            n = SlackNotifications(settings=settings)
            n.notify(
                StepFinished(
                    dag_id=ti.dag_id,
                    run_id=ti.run_id,
                    step="freeze",
                    task=ref(ti),
                    outcome=StepOutcome.SUCCEEDED,
                    duration_s=2,
                )
            )

        @task(
            on_failure_callback=BasculeSlackNotifier(channel=channel, slack_conn_id="bascule_slack_dagtest")
        )
        def explode():
            raise RuntimeError(
                'duplicate key\nDETAIL: Key (mrn)=(MRNCANARY0001) already exists "Zqxcanaryfenwick"'
            )

        first = open_thread()
        first >> gate() >> step() >> explode()

    return notifications_dagtest()


def _register(dag) -> None:
    """dag.test() only runs serialized DAGs; this one lives in a test module, not a bundle."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )


def test_dag_tasks_post_one_thread(airflow_env, monkeypatch: pytest.MonkeyPatch, capsys):
    with CaptureServer() as slack:
        monkeypatch.setenv(
            "AIRFLOW_CONN_BASCULE_SLACK_DAGTEST",
            json.dumps({"conn_type": "slack", "password": "xoxb-test", "extra": {"base_url": slack.api_url}}),
        )
        dag = _build_dag("#cutover-dagtest")
        _register(dag)
        run = dag.test()
        records = list(slack.records)

    posts = [r for r in records if r["api_method"] == "chat.postMessage" and r["failure"] == "none"]
    parent, replies = posts[0], posts[1:]
    assert "thread_ts" not in parent["body"]
    # open_thread, gate, step and the failure callback: each in its own task, one thread.
    assert len(replies) == 3
    assert {r["body"]["thread_ts"] for r in replies} == {parent["response_ts"]}
    failure = replies[-1]
    assert "explode" in failure["raw_body"] and "try_number=1" in failure["raw_body"]
    for rec in records:
        assert "MRNCANARY0001" not in rec["raw_body"] and "Zqxcanaryfenwick" not in rec["raw_body"]
    assert str(run.state).endswith("failed")
    print(render_thread_text(records))
