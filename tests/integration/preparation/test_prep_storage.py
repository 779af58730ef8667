"""Storage on the lab: activity on the source, load through replication, detect, apply on the target."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import time_machine

pytestmark = pytest.mark.integration


def _months_ahead(months: int) -> datetime:
    now = datetime.now(UTC)
    index = now.year * 12 + now.month - 1 + months
    return now.replace(year=index // 12, month=index % 12 + 1, day=min(now.day, 28))


# The same commit archives the same partitions on any day: the second run moves the
# worker's clock 13 months ahead (the database's clock cannot be moved; nothing it
# stamps decides what is old).
@pytest.mark.parametrize("months_ahead", [0, 13], ids=["today", "13-months-ahead"])
def test_detect_and_apply_on_the_target(fresh_lab, airflow_env, tmp_path, months_ahead):
    with time_machine.travel(_months_ahead(months_ahead), tick=True):
        _detect_and_apply(fresh_lab, tmp_path)


def _detect_and_apply(fresh_lab, tmp_path):
    from bascule.hooks.assessment import AssessmentHook
    from bascule.plan import default_plan_path, load_plan
    from bascule.preparation import replay, storage
    from bascule.preparation.load import start_and_load
    from bascule.replication.factory import replication_config, replication_from_config
    from bascule.today import retention_today
    from bascule_lab.canary import CANARY_STRINGS
    from bascule_lab.seed import PLANTED_WASTE

    plan = load_plan(default_plan_path())
    source, target = AssessmentHook(db_conn_id="bascule_legacy"), AssessmentHook(db_conn_id="bascule_new")
    activity = replay.run_activity(source, dbname="clinic", conn_id="bascule_legacy_app", seconds=4,
                                   workdir=tmp_path)
    assert {s.script for s in activity if s.transactions} >= {"activity_patient_update", "chart_read"}
    config = replication_config(plan, "forward")
    lines: list[str] = []
    progress = start_and_load(config, timeout_s=300, log=lines.append)
    assert progress and all(p["state"] == "ready" for p in progress)
    assert any("clinic.patients" in line for line in lines)
    repl = replication_from_config(config)
    repl.drop()
    repl.close()
    try:
        analysis = storage.analyse_storage(source=source, target=target, schemas=["clinic"],
                                           today=retention_today(plan))
        dropped = {a.object for a in analysis.actions if a.kind is storage.ActionKind.DROP_INDEX}
        twins = {a.reason.removeprefix("duplicate of ") for a in analysis.actions if "duplicate of" in a.reason}
        for name in PLANTED_WASTE["duplicate_indexes"]:
            assert name in dropped | twins
        for key in ("redundant_prefix_indexes", "unused_indexes"):
            assert set(PLANTED_WASTE[key]) <= dropped, key
        archived = {a.object for a in analysis.actions if a.kind is storage.ActionKind.ARCHIVE_PARTITION}
        assert archived == set(PLANTED_WASTE["archive_partitions"])
        assert analysis.projected_savings > 0
        with fresh_lab.connect("legacy", "clinic") as conn:
            rows = {p: conn.execute(f"SELECT count(*) FROM {p}").fetchone()[0] for p in archived}
        manifest = tmp_path / "manifest.json"
        # The archive may not sit on the target's own cluster (its backups would still carry it): refused first.
        with AssessmentHook(db_conn_id="bascule_new", dbname="postgres") as same_cluster, \
                pytest.raises(storage.ArchiveOnTargetCluster, match="reaches the target's own cluster"):
            storage.apply_storage_actions(target, analysis.actions, schemas=["clinic"], archive=same_cluster)
        with fresh_lab.connect("control") as conn:
            conn.execute("DROP DATABASE IF EXISTS clinic_archive_test WITH (FORCE)")
            conn.execute("CREATE DATABASE clinic_archive_test OWNER bascule_archive")
        archive = AssessmentHook(db_conn_id="bascule_archive", dbname="clinic_archive_test")
        result = storage.apply_storage_actions(target, analysis.actions, schemas=["clinic"], manifest_path=manifest,
                                               archive=archive)
        assert result.after_bytes < result.before_bytes
        recorded = {m["object"]: m for m in json.loads(manifest.read_text())["manifest"]}
        assert {k: v["rows"] for k, v in recorded.items()} == rows
        with fresh_lab.connect("control", "clinic_archive_test") as conn:
            for part, n in rows.items():
                assert conn.execute(f"SELECT count(*) FROM {part}").fetchone()[0] == n
        with fresh_lab.connect("new", "clinic") as conn:
            for part in archived:
                assert conn.execute("SELECT to_regclass(%s)", (part,)).fetchone()[0] is None
            for name in dropped:
                assert conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is None
        again = storage.apply_storage_actions(target, analysis.actions, schemas=["clinic"], archive=archive)
        assert again.before_bytes == again.after_bytes
        text = json.dumps(analysis.to_json()) + manifest.read_text()
        for canary in CANARY_STRINGS:
            assert canary not in text
    finally:
        target.close()
        with fresh_lab.connect("control") as conn:
            conn.execute("DROP DATABASE IF EXISTS clinic_archive_test WITH (FORCE)")
