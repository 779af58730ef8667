"""Replication operators: what they refuse, what they drive on postgres-logical, what the monitor records and tells."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk.exceptions import AirflowFailException

from bascule.operators.replication import (
    CheckReplicationPrerequisitesOperator,
    ReplicationMonitorOperator,
    StartReplicationOperator,
    StopReplicationOperator,
    SyncSchemaChangesOperator,
)
from bascule.replication.base import ReplicationState
from bascule.replication.postgres_logical import Finding, PostgresLogicalReplication

pytestmark = pytest.mark.unit

CONFIG = {"method": "postgres-logical", "publisher_conn_id": "bascule_legacy", "subscriber_conn_id": "bascule_new",
          "replication_conn_id": "bascule_legacy_repl", "publication": "bascule_pub", "subscription": "bascule_sub",
          "direction": "forward", "schemas": ["clinic"], "include_tables": [], "exclude_tables": []}
LIFECYCLE = [StartReplicationOperator, StopReplicationOperator, SyncSchemaChangesOperator,
             CheckReplicationPrerequisitesOperator]


class ManagedReplication(PostgresLogicalReplication):
    """A postgres-logical flow whose every database call is recorded instead of run."""

    def __init__(self, findings=(), readings=None):
        self.publication, self.subscription = "bascule_pub", "bascule_sub"
        self.calls = []
        self._findings = list(findings)
        self._reading = readings

    def check_prerequisites(self):
        self.calls.append("check_prerequisites")
        return self._findings

    def create_publication(self, tables=None):
        self.calls.append("create_publication")
        return ["clinic.patients", "clinic.encounters"]

    def create_subscription(self, *, copy_data=True, enabled=True):
        self.calls.append(("create_subscription", copy_data, enabled))

    def enable(self):
        self.calls.append("enable")

    def disable(self):
        self.calls.append("disable")

    def drop(self):
        self.calls.append("drop")

    def reading(self):
        return self._reading

    def close(self):
        self.calls.append("close")


def _op(cls, replication, **kwargs):
    op = cls(task_id=kwargs.pop("task_id", "op"), replication_config=kwargs.pop("config", CONFIG), **kwargs)
    if replication is not None:
        op.__dict__["replication"] = replication  # the cached Replication: no database
    return op


# --------------------------------------------------------------------------- construction and refusals


@pytest.mark.parametrize("cls", [*LIFECYCLE, ReplicationMonitorOperator])
def test_a_config_without_a_method_is_refused_naming_the_task(cls):
    extra = {"history_conn_id": "bascule_new", "lag_threshold_s": 5} if cls is ReplicationMonitorOperator else {}
    with pytest.raises(ValueError, match="^start_it: replication_config must be a dict with a 'method'"):
        cls(task_id="start_it", replication_config={"publication": "p"}, **extra)


def test_what_is_templated():
    assert StartReplicationOperator.template_fields == ("replication_config",)
    assert ReplicationMonitorOperator.template_fields == ("replication_config", "history_conn_id",
                                                          "lag_threshold_s")


@pytest.mark.parametrize("cls", LIFECYCLE)
def test_goldengate_lifecycle_is_refused_as_the_goldengate_teams_own(cls, fake_replication):
    op = _op(cls, fake_replication(method="goldengate"), task_id="start")
    with pytest.raises(AirflowFailException, match="^start: goldengate: start/stop/DDL sync is run by the "
                       "GoldenGate deployment's own tooling; bascule only watches it$"):
        op.execute({})


def test_with_no_replication_there_is_nothing_to_start_stop_check_or_sync():
    none = {"method": "none"}  # the real NoReplication: no database either
    assert _op(CheckReplicationPrerequisitesOperator, None, config=none).execute({}) == []
    assert _op(StopReplicationOperator, None, config=none, drop=True).execute({}) == {"stopped": True,
                                                                                    "dropped": False}
    assert _op(SyncSchemaChangesOperator, None, config=none).execute({}) == {}
    started = _op(StartReplicationOperator, None, config=none).execute({})
    assert started["state"] == "not_configured"


# --------------------------------------------------------------------------- postgres-logical lifecycle


def test_prerequisites_that_block_fail_the_task_listing_each_one():
    findings = [
        Finding("wal_level", "bascule_legacy", False, "error", "wal_level is replica", "set wal_level = logical"),
        Finding("replica_identity", "clinic.audit", False, "error", "no primary key", "add a primary key"),
        Finding("max_slots", "bascule_legacy", False, "warning", "2 slots left", "raise max_replication_slots"),
        Finding("role", "bascule_repl", True, "info", "has REPLICATION"),
    ]
    op = _op(CheckReplicationPrerequisitesOperator, ManagedReplication(findings))
    with pytest.raises(AirflowFailException) as err:
        op.execute({})
    assert str(err.value) == ("2 replication prerequisite(s) not met: bascule_legacy: wal_level is replica; "
                              "clinic.audit: no primary key")


def test_prerequisites_with_warnings_only_pass_and_are_returned():
    findings = [Finding("max_slots", "bascule_legacy", False, "warning", "2 slots left", "raise it"),
                Finding("role", "bascule_repl", True, "info", "has REPLICATION")]
    result = _op(CheckReplicationPrerequisitesOperator, ManagedReplication(findings)).execute({})
    assert [f["check"] for f in result] == ["max_slots", "role"] and result[0]["ok"] is False


@pytest.mark.parametrize("copy_data", [True, False])
def test_start_publishes_subscribes_and_enables(make_reading, copy_data):
    repl = ManagedReplication(readings=make_reading(ReplicationState.INITIAL_SYNC, None))
    result = _op(StartReplicationOperator, repl, copy_data=copy_data).execute({})
    assert repl.calls == ["create_publication", ("create_subscription", copy_data, True), "enable"]
    assert result["state"] == "initial_sync"


@pytest.mark.parametrize(("drop", "call"), [(False, "disable"), (True, "drop")])
def test_stop_disables_or_drops(drop, call):
    repl = ManagedReplication()
    assert _op(StopReplicationOperator, repl, drop=drop).execute({}) == {"stopped": True, "dropped": drop}
    assert repl.calls == [call]


@pytest.mark.parametrize("apply", [True, False])
def test_ddl_sync_carries_the_apply_flag_and_returns_what_was_missing(monkeypatch, apply):
    from bascule.replication import ddl_sync

    seen = []

    def fake_sync(replication, *, apply=True):
        seen.append((replication, apply))
        return ddl_sync.DdlSyncResult(missing_tables=["clinic.triage"], missing_indexes=["clinic.ix_a"],
                                      applied=apply)

    monkeypatch.setattr(ddl_sync, "sync_schema_changes", fake_sync)
    repl = ManagedReplication()
    result = _op(SyncSchemaChangesOperator, repl, apply=apply).execute({})
    assert seen == [(repl, apply)]
    assert result["missing_tables"] == ["clinic.triage"] and result["changes"] == 2 and result["applied"] is apply


# --------------------------------------------------------------------------- the monitor


class FakeHistory:
    def __init__(self, past=(), last_event=None):
        self.rows = []
        self.past = list(past)
        self.last_event = last_event

    def last_flow_event(self, *, method, direction):
        return self.last_event

    def record(self, row, *, method, direction):
        self.rows.append((row, method, direction))
        return self.past


def _monitor(replication, history, **kwargs):
    kwargs.setdefault("lag_threshold_s", 5.0)
    kwargs.setdefault("sample_interval_s", 0.0)
    op = _op(ReplicationMonitorOperator, replication, history_conn_id="bascule_new", **kwargs)
    op.__dict__["history"] = history
    return op


def test_a_monitor_needs_at_least_one_sample():
    with pytest.raises(ValueError, match="^monitor: samples must be >= 1 \\(got 0\\)$"):
        ReplicationMonitorOperator(task_id="monitor", replication_config=CONFIG, history_conn_id="h",
                                   lag_threshold_s=5, samples=0)


def test_a_healthy_flow_is_recorded_and_raises_no_alert(fake_replication, make_reading, ctx_factory, slack,
                                                        lab_plan):
    repl = fake_replication([make_reading(lag=0.4), make_reading(lag=0.3), make_reading(lag=0.2)])
    history = FakeHistory()
    result = _monitor(repl, history, samples=3, notifications=lab_plan.notifications).execute(ctx_factory("m"))

    assert repl.reads == 3 and repl.closed == 1
    ((row, method, direction),) = history.rows
    assert (method, direction) == ("postgres-logical", "forward")
    assert row["state"] == "streaming" and row["lag_seconds"] == 0.2 and row["dag_run_id"].startswith("manual__")
    assert result["samples"] == 3 and result["alert"] is None and result["alert_delivered"] is None
    assert result["eta"]["eta_seconds"] == 0.0  # already under the threshold
    assert slack.posted == []


def test_a_lag_over_the_threshold_alerts_with_the_drain_eta(fake_replication, make_reading, ctx_factory, slack,
                                                            lab_plan):
    now = datetime.now(UTC)
    past = [(now - timedelta(seconds=s), 40.0 + s) for s in (30, 20, 10)]  # draining, 1 s of lag per s
    repl = fake_replication([make_reading(lag=40.0, behind=123456)])
    result = _monitor(repl, FakeHistory(past), samples=1, notifications=lab_plan.notifications
                      ).execute(ctx_factory("m"))

    assert result["alert"] == "lag" and result["alert_delivered"] is True
    assert result["eta"] is not None and result["eta"]["slope"] < 0
    (alert,) = slack.posted
    assert type(alert).__name__ == "LagAlert" and alert.method == "postgres_logical"
    assert (alert.lag_s, alert.threshold_s, alert.lag_bytes) == (40.0, 5.0, 123456)


def test_a_broken_flow_stops_sampling_and_alerts_with_a_sanitised_cause(fake_replication, make_reading,
                                                                        ctx_factory, slack, lab_plan, patient):
    cause = f"apply worker failed: Key (family_name)=({patient}) already exists"
    repl = fake_replication([make_reading(lag=1.0), make_reading(ReplicationState.BROKEN, None, cause=cause),
                             make_reading(lag=0.1)])
    result = _monitor(repl, FakeHistory(), samples=3, notifications=lab_plan.notifications
                      ).execute(ctx_factory("m"))

    assert repl.reads == 2 and result["samples"] == 2
    assert result["alert"] == "broken" and result["reading"]["state"] == "broken"
    (alert,) = slack.posted
    assert type(alert).__name__ == "ReplicationBrokenEvent"
    assert alert.cause and patient not in alert.cause  # a driver text: only codes and known names stay


def test_a_slack_outage_never_fails_the_monitor(fake_replication, make_reading, ctx_factory, slack, lab_plan):
    def down(*args, **kwargs):
        raise ConnectionError("slack.com unreachable")

    slack.flow_change = down
    result = _monitor(fake_replication([make_reading(lag=60.0)]), FakeHistory(), samples=1,
                      notifications=lab_plan.notifications).execute(ctx_factory("m"))
    assert result["alert"] == "lag" and result["alert_delivered"] is False


def test_without_notifications_an_alert_is_logged_only(fake_replication, make_reading, ctx_factory, slack):
    result = _monitor(fake_replication([make_reading(lag=60.0)]), FakeHistory(), samples=1).execute(ctx_factory("m"))
    assert result["alert"] == "lag" and result["alert_delivered"] is False and slack.posted == []


def test_the_monitor_speaks_when_the_flow_breaks_and_recovers_and_is_quiet_in_between(
        fake_replication, make_reading, ctx_factory, slack, lab_plan):
    def tick(reading):
        return _monitor(fake_replication([reading]), FakeHistory(), samples=1,
                        notifications=lab_plan.notifications).execute(ctx_factory("m"))

    tick(make_reading(lag=0.2))
    assert slack.posted == []  # healthy and was healthy: nothing
    assert tick(make_reading(ReplicationState.BROKEN, None, cause="slot inactive"))["alert_delivered"] is True
    assert tick(make_reading(ReplicationState.BROKEN, None, cause="slot inactive"))["alert_delivered"] is False
    assert tick(make_reading(lag=0.3))["recovery_posted"] is True
    tick(make_reading(lag=0.2))
    assert slack.kinds() == ["ReplicationBrokenEvent", "ReplicationRecovered"]
    assert slack.flows == {"postgres_logical__forward": "ok"}


def test_a_flow_retired_on_purpose_is_not_sampled_nor_reported(fake_replication, make_reading, ctx_factory, slack,
                                                                lab_plan):
    from bascule.hooks.replication import FlowEvent

    retired = FlowEvent(event="retired", dag_id="cutover", run_id="lab__1", at=datetime(2026, 12, 3, 22, tzinfo=UTC))
    repl = fake_replication([make_reading(ReplicationState.BROKEN, None, cause="subscription missing")])
    history = FakeHistory(last_event=retired)
    result = _monitor(repl, history, samples=3, notifications=lab_plan.notifications).execute(ctx_factory("m"))

    assert repl.reads == 0 and history.rows == [] and slack.posted == []
    assert result["alert"] is None and result["quiet"] == (
        "retired on purpose by cutover run lab__1 at 2026-12-03T22:00:00+00:00")
    # Started again by a run: watched again, and a break is reported.
    history = FakeHistory(last_event=FlowEvent(event="started", dag_id="prepare", run_id="r", at=retired.at))
    repl = fake_replication([make_reading(ReplicationState.BROKEN, None, cause="slot inactive")])
    assert _monitor(repl, history, samples=1, notifications=lab_plan.notifications
                    ).execute(ctx_factory("m"))["alert"] == "broken"
