"""The migration plan: loading, defaults, cross-field rules and one-line errors."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bascule.durations import format_duration, parse_duration
from bascule.plan import (
    Engine,
    Plan,
    PlanError,
    PlanMode,
    ReplicationMethod,
    default_plan_path,
    load_plan,
)
from bascule.plan_cli import check_command

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
LAB_PLAN = REPO / "include" / "plans" / "lab.yaml"
PROD_EXAMPLE = REPO / "include" / "plans" / "production-oracle.example.yaml"

# A complete, valid plan; each bad-plan case breaks exactly one thing in a copy.
BASE: dict[str, Any] = {
    "version": 1,
    "name": "unit",
    "mode": "lab",
    "source": {"conn_id": "src", "engine": "postgres", "app_role": "clinic_app"},
    "target": {"conn_id": "dst", "engine": "postgres", "app_role": "clinic_app"},
    "scope": {"schemas": ["clinic"], "exclude_tables": ["clinic.scratch"]},
    "release": {
        "migration": "migrations/release.sql",
        "column_mapping": {"clinic.patients": {"added": {"preferred_language": "'und'"}}},
    },
    "replication": {
        "method": "postgres-logical",
        "postgres_logical": {"replication_conn_id": "src_repl"},
    },
    "gates": {
        "go_for_freeze": {"title": "GO for freeze", "assigned_users": ["manager"]},
        "go_live": {"title": "GO LIVE", "assigned_users": ["manager", "owner"]},
    },
}


def write_plan(tmp_path: Path, content: dict[str, Any] | str) -> Path:
    (tmp_path / "migrations").mkdir(exist_ok=True)
    (tmp_path / "migrations" / "release.sql").write_text("-- release\n")
    plan_file = tmp_path / "plan.yaml"
    text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
    plan_file.write_text(text)
    return plan_file


def mutate(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    change(data)
    return data


def _set(dotted: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *parents, leaf = dotted.split("/")
        node = data
        for part in parents:
            node = node[part]
        node[leaf] = value

    return change


def _delete(dotted: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *parents, leaf = dotted.split("/")
        node = data
        for part in parents:
            node = node[part]
        del node[leaf]

    return change


def _oracle_goldengate_on_postgres(data: dict[str, Any]) -> None:
    data["replication"] = {
        "method": "goldengate",
        "goldengate": {
            "conn_id": "gg",
            "extract": "EXTHOSP",
            "replicat": "REPHOSP",
            "heartbeat_connection": "gg_src",
        },
    }


BAD_PLANS: list[tuple[str, dict[str, Any] | str, str, str]] = [
    # (id, plan content, expected field, a fragment of the message)
    ("bad-yaml", "version: 1\nname: [unclosed\n", "(yaml)", "line 3"),
    ("duplicate-key", "version: 1\nname: a\nname: b\n", "(yaml)", "duplicate key 'name'"),
    ("not-a-mapping", "- just\n- a list\n", "(root)", "must be a mapping"),
    ("empty-file", "", "(root)", "empty file"),
    ("wrong-version", mutate(_set("version", 2)), "version", "must be 1"),
    ("endpoint-kind", mutate(_set("cutover", {"endpoint": {"kind": "dns"}})), "cutover.endpoint.kind",
     "must be one of"),
    ("endpoint-pgbouncer-missing", mutate(_set("cutover", {"endpoint": {"kind": "pgbouncer"}})),
     "cutover.endpoint.pgbouncer", "is required when kind is pgbouncer"),
    ("endpoint-command-missing", mutate(_set("cutover", {"endpoint": {"kind": "command"}})),
     "cutover.endpoint.command", "is required when kind is command"),
    ("sequence-margin-negative", mutate(_set("cutover", {"sequence_margin": -5})), "cutover.sequence_margin",
     ">= 0"),
    ("missing-name", mutate(_delete("name")), "name", "is required"),
    ("bad-name", mutate(_set("name", "Lab Plan")), "name", "slug"),
    (
        "bad-mode",
        mutate(_set("mode", "staging")),
        "mode",
        "must be one of lab, demo, production (got 'staging')",
    ),
    (
        "bad-engine",
        mutate(_set("source/engine", "mysql")),
        "source.engine",
        "must be one of postgres, oracle",
    ),
    (
        "unknown-key",
        mutate(_set("replication/lag_treshold_s", 5)),
        "replication.lag_treshold_s",
        "unknown field",
    ),
    (
        "bad-method",
        mutate(_set("replication/method", "pglogical")),
        "replication.method",
        "(got 'pglogical')",
    ),
    (
        "lag-threshold-negative",
        mutate(_set("replication/lag_threshold_s", -1)),
        "replication.lag_threshold_s",
        "must be > 0 (got -1)",
    ),
    (
        "lag-threshold-zero",
        mutate(_set("replication/lag_threshold_s", 0)),
        "replication.lag_threshold_s",
        "must be > 0",
    ),
    (
        "lag-threshold-bool",
        mutate(_set("replication/lag_threshold_s", True)),
        "replication.lag_threshold_s",
        "number",
    ),
    (
        "chunk-rows-text",
        mutate(_set("validation", {"chunk_rows": "many"})),
        "validation.chunk_rows",
        "whole number",
    ),
    (
        "warn-at-not-ascending",
        mutate(_set("downtime", {"warn_at": [0.5, 0.9, 0.75]})),
        "downtime.warn_at",
        "ascending",
    ),
    (
        "warn-at-out-of-range",
        mutate(_set("downtime", {"warn_at": [0.5, 1.0]})),
        "downtime.warn_at[1]",
        "must be < 1",
    ),
    (
        "budget-not-a-duration",
        mutate(_set("downtime", {"budget": "two hours"})),
        "downtime.budget",
        "duration",
    ),
    ("budget-zero", mutate(_set("downtime", {"budget": "0s"})), "downtime.budget", "must be > 0"),
    (
        "point-of-no-return-not-a-gate",
        mutate(_set("downtime", {"point_of_no_return": "go_home"})),
        "downtime.point_of_no_return",
        "must name a gate",
    ),
    ("missing-go-live", mutate(_delete("gates/go_live")), "gates.go_live", "required gate"),
    (
        "empty-assigned-users",
        mutate(_set("gates/go_live/assigned_users", [])),
        "gates.go_live.assigned_users",
        "must not be empty",
    ),
    ("bad-gate-timeout", mutate(_set("gates/go_live/timeout", "soon")), "gates.go_live.timeout", "duration"),
    (
        "goldengate-on-postgres",
        mutate(_oracle_goldengate_on_postgres),
        "replication.method",
        "needs oracle on both sides",
    ),
    (
        "missing-postgres-logical",
        mutate(_delete("replication/postgres_logical")),
        "replication.postgres_logical",
        "is required",
    ),
    (
        "missing-release-migration",
        mutate(_set("release/migration", "migrations/nope.sql")),
        "release.migration",
        "no such file",
    ),
    (
        "column-mapping-out-of-scope",
        mutate(_set("release/column_mapping", {"billing.invoices": {}})),
        "release.column_mapping.billing.invoices",
        "not in a scope schema",
    ),
    (
        "column-mapping-not-qualified",
        mutate(_set("release/column_mapping", {"patients": {}})),
        "release.column_mapping.patients",
        "schema.table",
    ),
    (
        "renamed-and-dropped",
        mutate(
            _set(
                "release/column_mapping",
                {"clinic.patients": {"renamed": {"dob": "birth_date"}, "dropped": ["dob"]}},
            )
        ),
        "release.column_mapping.clinic.patients.dropped[0]",
        "both renamed and dropped",
    ),
    (
        "include-exclude-conflict",
        mutate(
            _set(
                "scope",
                {"schemas": ["clinic"], "include_tables": ["clinic.a"], "exclude_tables": ["clinic.a"]},
            )
        ),
        "scope.exclude_tables[0]",
        "both included and excluded",
    ),
    ("empty-schemas", mutate(_set("scope/schemas", [])), "scope.schemas", "must not be empty"),
    (
        "same-conn-ids",
        mutate(_set("target/conn_id", "src")),
        "target.conn_id",
        "must differ from source.conn_id",
    ),
    (
        # Airflow finds AIRFLOW_CONN_SRC for "Src" too: one connection, two spellings.
        "same-conn-ids-but-for-case",
        mutate(_set("target/conn_id", "SRC")),
        "target.conn_id",
        "'src' and 'SRC' differ only in case",
    ),
    (
        "allowed-writer-is-the-application",
        mutate(_set("source/allowed_writers", ["bascule_admin", "Clinic_App"])),
        "source.allowed_writers[1]",
        "is the application role",
    ),
    (
        "allowed-writer-twice",
        mutate(_set("target/allowed_writers", ["bascule_repl", "BASCULE_REPL"])),
        "target.allowed_writers[1]",
        "listed twice",
    ),
    (
        "allowed-writer-not-an-identifier",
        mutate(_set("target/allowed_writers", ["bascule admin"])),
        "target.allowed_writers[0]",
        "plain SQL identifier",
    ),
    (
        "identifying-key-out-of-scope",
        mutate(_set("validation", {"identifying_keys": ["other.patients.mrn"]})),
        "validation.identifying_keys[0]",
        "not in scope",
    ),
    (
        "bad-slack-channel",
        mutate(_set("notifications", {"channel": "Bascule Lab"})),
        "notifications.channel",
        "#channel-name",
    ),
    (
        "production-without-notifications",
        mutate(_set("mode", "production")),
        "notifications",
        "required in production",
    ),
]


@pytest.mark.parametrize(
    ("content", "field", "fragment"),
    [case[1:] for case in BAD_PLANS],
    ids=[case[0] for case in BAD_PLANS],
)
def test_bad_plan_names_the_field_in_one_line(
    tmp_path: Path, content: dict[str, Any] | str, field: str, fragment: str
) -> None:
    plan_file = write_plan(tmp_path, content)
    with pytest.raises(PlanError) as caught:
        load_plan(plan_file)
    err = caught.value
    assert err.field == field
    assert fragment in err.message
    assert str(err) == f"{plan_file}: {field}: {err.message}"
    assert "\n" not in str(err)
    # No chained pydantic/YAML traceback under it when Airflow reports an import error.
    assert err.__cause__ is None
    assert err.__context__ is None or err.__suppress_context__


def test_base_plan_is_valid(tmp_path: Path) -> None:
    plan = load_plan(write_plan(tmp_path, BASE))
    assert plan.release_migration_path == tmp_path / "migrations" / "release.sql"
    # Defaults fill everything optional.
    assert plan.replication.lag_threshold_s == 5
    assert plan.validation.chunk_rows == 100_000
    assert plan.downtime.warn_at == (0.5, 0.75, 0.9)
    assert plan.budget_seconds == 7200
    assert plan.notifications is None


def test_missing_file_is_a_file_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as caught:
        load_plan(tmp_path / "absent.yaml")
    assert caught.value.field == "(file)"
    assert caught.value.message == "no such file"


def test_lab_plan_loads_with_expected_values() -> None:
    if not (LAB_PLAN.parent / "lab" / "release_2_0.sql").exists():
        pytest.skip("lab/release_2_0.sql not written yet")
    plan = load_plan(LAB_PLAN)
    assert plan.name == "lab"
    assert plan.mode is PlanMode.LAB
    assert plan.allows_auto_answer is True
    assert plan.path == LAB_PLAN
    assert (plan.source.engine, plan.target.engine) == (Engine.POSTGRES, Engine.POSTGRES)
    assert (plan.source.conn_id, plan.target.conn_id) == ("bascule_legacy", "bascule_new")
    assert plan.source.allowed_writers == plan.target.allowed_writers == ("bascule_admin", "bascule_repl", "postgres")
    assert plan.source.app_role == plan.target.app_role == "clinic_app"
    assert plan.replication.method is ReplicationMethod.POSTGRES_LOGICAL
    assert plan.replication.postgres_logical is not None
    assert plan.replication.postgres_logical.replication_conn_id == "bascule_legacy_repl"
    assert plan.release_migration_path == LAB_PLAN.parent / "lab" / "release_2_0.sql"
    assert plan.release is not None
    assert plan.release.column_mapping["clinic.patients"].added == {"preferred_language": "'und'"}
    assert plan.validation.identifying_keys == ("clinic.patients.mrn",)
    assert plan.budget_seconds == 7200
    assert plan.gate("go_for_freeze").timeout == 1800
    assert plan.gate("go_live").assigned_users == ("cutover_manager", "app_owner")
    assert plan.downtime.point_of_no_return == "go_live"
    assert plan.notifications is not None and plan.notifications.channel == "#bascule-lab"
    assert plan.is_table_in_scope("clinic", "patients")
    assert not plan.is_table_in_scope("public", "patients")


def test_production_example_loads() -> None:
    plan = load_plan(PROD_EXAMPLE)
    assert plan.mode is PlanMode.PRODUCTION
    assert plan.allows_auto_answer is False
    assert (plan.source.engine, plan.target.engine) == (Engine.ORACLE, Engine.ORACLE)
    assert plan.replication.method is ReplicationMethod.GOLDENGATE
    assert plan.replication.goldengate is not None
    assert plan.budget_seconds == 7200
    assert {"go_for_freeze", "go_live"} <= set(plan.gates)
    assert all(gate.assigned_users for gate in plan.gates.values())
    assert plan.notifications is not None
    # Oracle reports upper-case names; scope matching must not care.
    assert plan.is_table_in_scope("hosp", "patients")
    assert not plan.is_table_in_scope("HOSP", "SESSION_CACHE")


def test_scope_include_and_exclude(tmp_path: Path) -> None:
    data = mutate(
        _set(
            "scope",
            {
                "schemas": ["clinic", "ref"],
                "include_tables": ["clinic.patients", "clinic.scratch"],
                "exclude_tables": [],
            },
        )
    )
    plan = load_plan(write_plan(tmp_path, data))
    assert plan.is_table_in_scope("clinic", "patients")
    assert not plan.is_table_in_scope("clinic", "encounters")  # include list restricts
    assert not plan.is_table_in_scope("billing", "patients")


def test_plan_is_picklable_and_summary_is_json_able(tmp_path: Path) -> None:
    import json

    plan = load_plan(write_plan(tmp_path, BASE))
    clone = pickle.loads(pickle.dumps(plan))
    assert clone == plan
    assert clone.path == plan.path
    summary = json.loads(json.dumps(plan.to_summary()))
    assert summary["name"] == "unit"
    assert summary["replication_method"] == "postgres-logical"
    assert summary["budget"] == "2h"
    assert set(summary["gates"]) == {"go_for_freeze", "go_live"}


def test_plan_error_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(PlanError("p.yaml", "name", "is\nrequired")))
    assert (err.path, err.field, err.message) == ("p.yaml", "name", "is required")


def test_unknown_gate_lookup_names_the_gates(tmp_path: Path) -> None:
    plan = load_plan(write_plan(tmp_path, BASE))
    with pytest.raises(KeyError, match="go_live"):
        plan.gate("nope")


def test_plan_built_in_code_skips_file_checks() -> None:
    plan = Plan.model_validate(BASE)
    assert plan.path is None
    assert plan.release_migration_path is not None


def test_default_plan_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BASCULE_PLAN", raising=False)
    assert default_plan_path() == LAB_PLAN
    monkeypatch.setenv("BASCULE_PLAN", "/etc/bascule/prod.yaml")
    assert default_plan_path() == Path("/etc/bascule/prod.yaml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2h", 7200), ("90m", 5400), ("1h30m", 5400), ("45s", 45), (30, 30), ("0.5", 0.5), (2.5, 2.5)],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30m1h", "two hours", "", "h", True, None, "inf"])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (7200, 5400, 45, 0.5, 3661)] == [
        "2h",
        "1h30m",
        "45s",
        "0.5s",
        "1h1m1s",
    ]


def test_check_command_on_bad_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan_file = write_plan(tmp_path, mutate(_set("replication/lag_threshold_s", -1)))
    assert check_command(str(plan_file)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"{plan_file}: replication.lag_threshold_s: must be > 0 (got -1)\n"
    assert "Traceback" not in err


def test_check_command_refuses_conn_ids_that_differ_only_in_case(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    plan_file = write_plan(tmp_path, mutate(_set("target/conn_id", "Src")))
    assert check_command(str(plan_file)) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err == (f"{plan_file}: target.conn_id: must differ from source.conn_id ('src' and 'Src' differ only "
                   "in case, and Airflow looks connections up ignoring case)\n")


def test_check_command_on_missing_and_broken_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for content_or_none in (None, "a: [\n"):
        target = tmp_path / "x.yaml"
        if content_or_none is not None:
            target.write_text(content_or_none)
        assert check_command(str(target)) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and "Traceback" not in err


DAG_GATES = {gate_id: {"title": gate_id, "assigned_users": ["dba"]}
             for gate_id in ("fallback", "assessment_signoff", "schema_signoff", "replay_signoff", "storage_apply",
                             "close_rollback_window")}


def test_check_command_on_valid_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Every gate a DAG asks must be in the plan (the rollback DAG's and the prepare DAG's too).
    plan_file = write_plan(tmp_path, mutate(lambda d: d["gates"].update(DAG_GATES)))
    assert check_command(str(plan_file)) == 0
    out, err = capsys.readouterr()
    assert err == ""
    summary, *places = out.splitlines()
    # The summary, then one line per gate saying where it sits.
    assert len(places) == 8 and all(line.startswith("  gate ") for line in places)
    out = summary
    for fragment in (
        "'unit'",
        "mode lab",
        "postgres -> postgres",
        "postgres-logical",
        "budget 2h",
        "8 gates",
    ):
        assert fragment in out


def test_check_command_on_lab_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_command(str(LAB_PLAN)) == 0
    out, err = capsys.readouterr()
    assert err == "" and "Traceback" not in out
    gates = len(load_plan(LAB_PLAN).gates)
    summary, *places = out.splitlines()
    assert summary == (
        f"{LAB_PLAN}: ok: plan 'lab', mode lab, postgres -> postgres via postgres-logical, budget 2h, {gates} gates"
    )
    assert len(places) == gates


def test_check_command_lists_where_each_gate_sits_and_refuses_an_unused_or_missing_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bascule.paths import PLANS_DIR

    assert check_command(str(PLANS_DIR / "production-oracle.example.yaml")) == 0
    out = capsys.readouterr().out
    assert ("  gate data_verified: cutover, after final_validation (GO goes on, NO-GO rolls back); "
            "assigned: clinical.data.steward") in out.splitlines()
    with_gates = mutate(lambda d: d["gates"].update(DAG_GATES))
    unused = write_plan(tmp_path, {**with_gates, "gates": {**with_gates["gates"],
                                                           "coffee": {"title": "coffee", "assigned_users": ["x"]}}})
    assert check_command(str(unused)) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (f"{unused}: gates.coffee: no DAG asks this gate: give it a place (after: <task>) "
                                 "or remove it\n")
    missing = write_plan(tmp_path, BASE)  # no fallback gate, no prepare sign-offs
    assert check_command(str(missing)) == 2
    assert capsys.readouterr().err.count("\n") == 1
    nowhere = write_plan(tmp_path, {**with_gates, "gates": {
        **with_gates["gates"], "data_verified": {"title": "d", "assigned_users": ["x"], "after": "nowhere"}}})
    assert check_command(str(nowhere)) == 2
    assert "gates.data_verified.after: cutover has no task 'nowhere'" in capsys.readouterr().err


def test_a_rehearsal_environment_swaps_every_connection_and_production_may_not_reuse_its_own(
        tmp_path: Path) -> None:
    from bascule.runbook.context import plan_for_run

    lab = load_plan(LAB_PLAN)
    rehearsal = plan_for_run(lab, {"rehearsal": True})
    assert rehearsal.source.conn_id == "bascule_rehearsal_legacy" and rehearsal.target.conn_id == "bascule_rehearsal_new"
    assert rehearsal.replication.postgres_logical.replication_conn_id == "bascule_rehearsal_legacy_repl"
    assert rehearsal.cutover.endpoint.pgbouncer.admin_conn_id == "bascule_rehearsal_endpoint_admin"
    assert not (rehearsal.connection_ids() & lab.connection_ids())
    assert plan_for_run(lab, {}) is lab and plan_for_run(lab, None) is lab
    # Without a rehearsal environment a rehearsal run fails before it connects anywhere.
    with pytest.raises(Exception, match="names no rehearsal environment"):
        plan_for_run(lab.model_copy(update={"rehearsal": None}), {"rehearsal": True})
    # A production plan that names a production connection for its rehearsal is refused, whatever the case.
    data = yaml.safe_load(LAB_PLAN.read_text())
    data["mode"] = "production"
    data["rehearsal"]["source"]["conn_id"] = "BASCULE_LEGACY"
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "release_2_0.sql").write_text("-- release\n")
    plan_file = tmp_path / "prod.yaml"
    plan_file.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(PlanError, match=r"rehearsal\.source: 'BASCULE_LEGACY' is a production connection"):
        load_plan(plan_file)


def test_the_archive_connection_may_not_be_the_targets_own(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    data = mutate(lambda d: d.setdefault("storage", {}).update(archive_conn_id=d["target"]["conn_id"].upper()))
    plan_file = write_plan(tmp_path, data)
    assert check_command(str(plan_file)) == 2
    _out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "storage.archive_conn_id: must name a database outside the target's cluster" in err
    data["storage"]["archive_conn_id"] = "hosp_archive"
    assert load_plan(write_plan(tmp_path, data)).storage.archive_conn_id == "hosp_archive"


def test_plan_check_rejects_a_suite_expectation_with_no_delta_method(tmp_path: Path) -> None:
    """ADR 0061: where the window checks only what changed, an expectation without a delta method is refused,
    unless the plan runs its suite whole in the window."""
    import json

    from bascule.plan_cli import check_suite_deltas

    suites = tmp_path / "expectations"
    suites.mkdir()
    (suites / "stats.json").write_text(json.dumps({
        "name": "stats", "meta": {"bascule": {"table": "clinic.patients"}},
        "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "mrn"}},
                         {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "x", "min_value": 0}}]}))
    text = LAB_PLAN.read_text()
    marked = text.replace("  suites: [clinic_patients, clinic_encounters, clinic_prescriptions, clinic_observations]",
                          "  suites: [stats]\n  suites_in_full: [stats]")
    assert marked != text
    (tmp_path / "lab").symlink_to(LAB_PLAN.parent / "lab")  # the release migration the plan names
    (tmp_path / "full.yaml").write_text(marked)
    check_suite_deltas(load_plan(tmp_path / "full.yaml"), suites_dir=suites)
    (tmp_path / "delta.yaml").write_text(marked.replace("  suites_in_full: [stats]\n", ""))
    with pytest.raises(PlanError, match=r"validation\.suites\[0\]: suite stats: expectations\[1\] "
                                        r"\(expect_column_mean_to_be_between\).*suites_in_full"):
        check_suite_deltas(load_plan(tmp_path / "delta.yaml"), suites_dir=suites)
    (tmp_path / "unknown.yaml").write_text(marked.replace("suites_in_full: [stats]", "suites_in_full: [other]"))
    with pytest.raises(PlanError, match=r"validation\.suites_in_full\[0\].*not one of validation\.suites"):
        load_plan(tmp_path / "unknown.yaml")
