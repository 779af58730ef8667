"""Unit tests of the preparation logic over fake catalogue rows (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bascule.preparation import rehearsal, replay, storage
from bascule.preparation.assessment import _type_change, cutover_date_arg, parse_upper_bound
from bascule.preparation.findings import Finding, FindingSet, GateBlocked, Severity
from bascule.preparation.schema_diff import Change, SchemaSnapshot, compare, release_objects

pytestmark = pytest.mark.unit


def test_finding_needs_a_fix_unless_pass_and_blockers_raise():
    with pytest.raises(ValueError, match="needs a fix hint"):
        Finding("x", "clinic.t", Severity.WARNING, "m")
    fs = FindingSet("assessment", (Finding("a", "clinic.t", Severity.BLOCKER, "bad.", "do this"),
                                   Finding("b", "clinic.u", Severity.PASS, "ok")))
    assert fs.verdict is Severity.BLOCKER and fs.counts() == {"PASS": 1, "WARNING": 0, "BLOCKER": 1}
    with pytest.raises(GateBlocked, match=r"a on clinic.t: bad. Fix: do this"):
        fs.raise_if_blocked()
    assert FindingSet.from_json(fs.to_json()).to_json() == fs.to_json()
    assert "| BLOCKER | a | `clinic.t` |" in fs.markdown()


def test_partition_bounds_and_type_changes():
    assert parse_upper_bound("FOR VALUES FROM ('2026-10-01 00:00:00+00') TO ('2026-11-01 00:00:00+00')") == \
        datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_upper_bound("FOR VALUES FROM ('2026-10-01') TO (MAXVALUE)") is None
    assert _type_change("c", "character varying(20)", "character varying(32)").severity is Severity.PASS
    assert _type_change("c", "character varying(20)", "character varying(8)").severity is Severity.BLOCKER
    assert _type_change("c", "integer", "bigint").severity is Severity.WARNING
    with pytest.raises(ValueError, match="cutover_date must be an ISO date"):
        cutover_date_arg("next tuesday")
    assert cutover_date_arg("None") is None and str(cutover_date_arg("2027-03-14")) == "2027-03-14"


def test_release_objects_from_migration_text():
    text = Path(__file__).resolve().parents[3].joinpath("include/plans/lab/release_2_0.sql").read_text()
    got = release_objects(text, default_schema="clinic")
    assert got.indexes == {"encounters_open_triage_idx"}
    assert got.constraints == {"encounters_triage_score_check"}
    assert got.columns == {"clinic.patients.preferred_language", "clinic.encounters.triage_score",
                           "clinic.patients.phone"}


def test_compare_marks_expected_and_unexpected():
    src = SchemaSnapshot({"column": {"s.t.a": "integer", "s.t.b": "text"}, "index": {"s.t.i": "CREATE INDEX i"}})
    tgt = SchemaSnapshot({"column": {"s.t.a": "bigint", "s.t.c": "text"},
                          "index": {"s.t.i": "CREATE  INDEX i", "s.t.j": "CREATE INDEX j ON s.t (c)"}})
    diff = compare(src, tgt, expected=["s.t.a"])
    by = {(d.kind.value, d.object): d for d in diff.differences}
    assert by[("column", "s.t.a")].expected and by[("column", "s.t.a")].change is Change.DIFFERS
    assert not by[("column", "s.t.b")].expected and by[("column", "s.t.b")].change is Change.ONLY_SOURCE
    assert ("index", "s.t.i") not in by  # whitespace only
    assert [f.object for f in diff.findings().blockers] == ["column s.t.b"]


def test_replay_gate_needs_threshold_and_noise():
    def stat(side, repeat, p95, tps):
        return replay.RunStat(side, 1, repeat, "chart_read", 100, tps, p95 / 2, p95, p95 * 2)

    noisy = [stat("source", r, p, 100) for r, p in enumerate((1.0, 3.0, 1.2))] + \
            [stat("target", r, p, 100) for r, p in enumerate((1.5, 1.4, 3.1))]
    (v,) = replay.compare_runs(noisy, threshold=0.2, noise_k=1.0)
    assert not v.regression  # +25% but within the noise between repeats
    clear = [stat("source", r, p, 100) for r, p in enumerate((1.0, 1.1, 1.05))] + \
            [stat("target", r, p, 100) for r, p in enumerate((2.0, 2.1, 2.2))]
    (v,) = replay.compare_runs(clear, threshold=0.2, noise_k=1.0)
    assert v.latency_regression and v.p95_change_pct > 80
    with pytest.raises(ValueError, match="repeats must be >= 2"):
        replay.ReplaySettings(repeats=1)
    with pytest.raises(ValueError, match="no pgbench script nope.sql"):
        replay.ReplaySettings(workload={"nope": 1})


def test_pgbench_args_and_log_parsing(tmp_path):
    args = replay.pgbench_args(settings=replay.ReplaySettings(), clients=4, variables={"max_pid": 9},
                               log_prefix="tx")
    assert args[:8] == ["-n", "-M", "prepared", "-T", "10", "-c", "4", "-j"] and "-D" in args
    assert any(a.endswith("chart_read.sql@35") for a in args)
    (tmp_path / "tx.1").write_text("0 0 1500 0 1700000000 1\n0 1 2500 1 1700000000 2\n1 0 failed 0 1 1\n")
    got = replay.parse_transaction_logs([tmp_path / "tx.1"], ["a", "b"])
    assert got == {"a": [1.5], "b": [2.5]}
    assert replay.percentile([1, 2, 3, 4], 50) == 2.5


def _ix(name, keys, scans=0, unique=False, fk=None, pred=None):
    return storage.IndexFact("s", "t", name, 100, scans, unique, False, unique, tuple(keys),
                             tuple("c" for _ in keys), None, pred, True, fk)


def test_index_classification():
    idx = [_ix("pk", [1], scans=5, unique=True), _ix("a", [2], scans=3), _ix("a_dup", [2], scans=0),
           _ix("ab", [2, 3], scans=0), _ix("ac", [4, 5], scans=0), _ix("fk_only", [6], fk="t_fk"),
           _ix("partial", [2], pred="(x IS NULL)")]
    drop, kept = storage.classify_indexes(idx)
    reasons = {ix.name: r for ix, r in drop}
    assert reasons["a_dup"] == "duplicate of s.a"
    assert reasons["a"] == "left prefix of s.ab"
    assert "ab" not in reasons  # it takes over the lookups of the used prefix
    assert reasons["ac"].startswith("never scanned")
    assert "pk" not in reasons and "fk_only" not in reasons and "partial" in reasons
    assert {ix.name for ix, _ in kept} >= {"ab", "fk_only"}


def test_rehearsal_forecast_and_comparison():
    def rep(run, secs):
        steps = [{"step": s, "started_at": f"2026-11-0{run}T00:00:0{i}+00:00", "actual_s": v, "critical_path": True}
                 for i, (s, v) in enumerate(secs.items())]
        return rehearsal.from_report({"run_id": f"r{run}", "steps": steps, "downtime_s": sum(secs.values()) + 1,
                                      "budget_s": 7200, "outcome": "success"})

    history = [rep(1, {"freeze": 2.0, "copy": 50.0}), rep(2, {"freeze": 3.0, "copy": 40.0})]
    f = rehearsal.forecast(history, budget_s=7200.0)
    assert f.dominating_step == "copy" and f.downtime_s == pytest.approx(53.0 + 1.0)  # worst steps + overhead
    assert f.per_step_s == {"freeze": 3.0, "copy": 50.0} and f.within_budget
    cmp = {c["step"]: c for c in rehearsal.compare_last_two(history)}
    assert cmp["copy"]["change_s"] == -10.0 and cmp["freeze"]["change_pct"] == 50.0
    with pytest.raises(ValueError, match="no rehearsal yet"):
        rehearsal.forecast([], budget_s=1.0)


class _Cluster:
    """A hook stand-in that answers the cluster identity and the sizes, and records what it ran."""

    def __init__(self, system_id, conn_id="x", database="db"):
        self.system_id, self.db_conn_id, self.database, self.ran = system_id, conn_id, database, []

    def records(self, query):
        statement = query[0]
        if "pg_control_system" in statement:
            return [(self.system_id,)]
        if "pg_total_relation_size" in statement:
            return [(100, 200)]
        raise AssertionError(f"unexpected query {statement}")

    def execute(self, *statements):
        self.ran.extend(statements)


ARCHIVE_ACTION = storage.Action(storage.ActionKind.ARCHIVE_PARTITION, "clinic.audit_log_y2019m01", "old", 10,
                                table="clinic.audit_log_y2019m01", root="clinic.audit_log")


def test_archiving_needs_an_archive_database_and_refuses_the_targets_own_cluster():
    target = _Cluster("7311")
    with pytest.raises(ValueError, match="set storage.archive_conn_id in the plan"):
        storage.apply_storage_actions(target, [ARCHIVE_ACTION], schemas=["clinic"], archive=None)
    same = _Cluster("7311", conn_id="hosp_archive")
    with pytest.raises(storage.ArchiveOnTargetCluster, match=r"hosp_archive\) reaches the target's own cluster"):
        storage.apply_storage_actions(target, [ARCHIVE_ACTION], schemas=["clinic"], archive=same)
    assert target.ran == [] and same.ran == []  # refused before anything was copied, detached or dropped


def test_dropping_indexes_alone_needs_no_archive_database():
    target = _Cluster("7311")
    drop = storage.Action(storage.ActionKind.DROP_INDEX, "clinic.ix_unused", "never scanned", 10)
    result = storage.apply_storage_actions(target, [drop], schemas=["clinic"], log=lambda _line: None)
    assert [a["object"] for a in result.applied] == ["clinic.ix_unused"] and result.archive["database"] is None


def test_backup_series_keep_every_run_and_the_median():
    from bascule.preparation import backup

    series = backup.BackupSeries(seconds=(30.0, 12.0, 14.0), bytes=(100, 104, 102), folder="f")
    assert series.median_s == 14.0 and series.size_bytes == 102
    assert series.to_json()["seconds"] == (30.0, 12.0, 14.0)
    with pytest.raises(ValueError, match="one size per timed run"):
        backup.BackupSeries(seconds=(1.0,), bytes=(), folder="f")
    assert backup.reduction_pct(4000, 2800) == 30.0 and backup.reduction_pct(0, 10) == 0.0
    after = backup.BackupSeries(seconds=(9.0, 10.0, 11.0), bytes=(75 << 20, 76 << 20, 77 << 20), folder="g")
    before = backup.BackupSeries(seconds=(14.0, 15.0, 16.0), bytes=(100 << 20,) * 3, folder="f")
    assert backup.figures(before, after, 7.26) == {
        "backup_before_s": 15.0, "backup_after_s": 10.0, "backup_before_mb": 100.0, "backup_after_mb": 76.0,
        "backup_size_reduction_pct": 24.0, "restore_s": 7.3}
    assert backup.spread([3.0, 1.25, 2.0]) == "1.2..3.0"


def test_timed_backups_make_each_run_in_a_fresh_folder_and_keep_the_last(tmp_path):
    from bascule.hooks.backup import BackupRun
    from bascule.preparation import backup

    seen = []

    class Hook:
        def backup(self, folder):
            assert not folder.exists()
            assert not any(p.exists() for p in seen)  # the previous run was deleted first
            folder.mkdir()
            seen.append(folder)
            return BackupRun(str(folder), float(len(seen)), 10 * len(seen))

    series = backup.timed_backups(Hook(), tmp_path, label="before", runs=3, log=lambda _line: None)
    assert series.seconds == (1.0, 2.0, 3.0) and series.bytes == (10, 20, 30)
    assert series.folder == str(tmp_path / "before-3") and Path(series.folder).exists()
    with pytest.raises(ValueError, match="runs must be at least 1"):
        backup.timed_backups(Hook(), tmp_path, label="x", runs=0)


def test_rehearsal_n_against_n_minus_1_and_the_plan():
    from datetime import date

    def rep(run, day, secs, outcome="completed", downtime=None):
        steps = [{"step": s, "started_at": f"2026-12-{day:02d}T00:00:0{i}+00:00", "actual_s": v,
                  "critical_path": s != "announce_start"} for i, (s, v) in enumerate(secs.items())]
        return rehearsal.from_report({"run_id": f"r{run}", "steps": steps, "rehearsal": True, "outcome": outcome,
                                      "downtime_s": downtime, "budget_s": 7200})

    first = rep(1, 1, {"announce_start": 1.0, "freeze_source": 2.0, "final_validation": 4.0, "target_suites": 6.0},
                downtime=20.0)
    stopped = rep(2, 2, {"announce_start": 1.0}, outcome="aborted")
    latest = rep(3, 5, {"announce_start": 1.0, "freeze_source": 3.0, "final_validation": 5.0, "target_suites": 3.0},
                 downtime=15.0)
    out = rehearsal.compare([first, stopped, latest], budget_s=7200.0,
                            planned=[date(2026, 12, 1), date(2026, 12, 3), date(2026, 12, 4)])

    # N-1 is the last rehearsal that went all the way, not the one stopped at its first gate.
    assert (out["number"], out["latest_run"], out["previous_run"]) == (3, "r3", "r1")
    assert out["latest"] == {"downtime_s": 15.0, "critical_path_s": 11.0, "validation_s": 8.0, "outcome": "completed"}
    prev = out["against_previous"]
    assert prev["downtime_s"] == {"previous": 20.0, "latest": 15.0, "change_s": -5.0, "change_pct": -25.0}
    assert prev["critical_path_s"]["change_s"] == -1.0 and prev["validation_s"]["change_s"] == -2.0
    assert {r["step"]: r["change_s"] for r in out["steps"]}["target_suites"] == -3.0
    assert out["against_plan"] == {"budget_s": 7200.0, "downtime_s": 15.0, "budget_used_pct": 0.21,
                                   "within_budget": True, "planned_on": "2026-12-04", "ran_on": "2026-12-05",
                                   "days_late": 1, "planned_count": 3}
    text = rehearsal.compare_markdown(out)
    assert "Rehearsal 3" in text and "| downtime_s | 20.0 | 15.0 | -5.00 s |" in text
    alone = rehearsal.compare([first], budget_s=7200.0)
    assert alone["against_previous"] is None and alone["steps"] == [] and alone["against_plan"]["planned_on"] is None
