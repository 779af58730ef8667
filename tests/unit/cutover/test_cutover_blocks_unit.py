"""Pure parts of the cutover blocks: PgBouncer include file, sequence plan, endpoint
config, the site-command endpoint (a real script).

The clinic simulator's pure parts are tested with the lab (tests/unit/lab/test_simulator_units.py)."""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from bascule.cutover.endpoint import CommandEndpoint, EndpointError, Side, endpoint_from_config
from bascule.cutover.fixups import FixupError, SequenceMargin, plan_sequence_advances
from bascule.hooks.pgbouncer_config import (
    DatabaseTarget,
    PgBouncerConfigError,
    parse_databases,
    render_databases,
    rewrite_databases,
)

pytestmark = pytest.mark.unit

LEGACY = DatabaseTarget("127.0.0.1", 5433, "clinic")
NEW = DatabaseTarget("127.0.0.1", 5434, "clinic")


def test_databases_file_rewrite_keeps_foreign_entries_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "databases.ini"
    path.write_text("[databases]\nreporting = host=10.0.0.9 port=5432 dbname=dw\n"
                    + render_databases({"clinic": LEGACY}).split("[databases]\n", 1)[1])
    assert rewrite_databases(path, {"clinic": NEW, "clinic_smoke": NEW}) is True
    entries = parse_databases(path.read_text())
    assert entries["reporting"] == "host=10.0.0.9 port=5432 dbname=dw"
    assert DatabaseTarget.parse("clinic", entries["clinic"]) == NEW
    assert DatabaseTarget.parse("clinic_smoke", entries["clinic_smoke"]) == NEW
    before = path.read_text()
    assert rewrite_databases(path, {"clinic": NEW, "clinic_smoke": NEW}) is False
    assert path.read_text() == before
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("kwargs, field", [
    ({"host": "a b", "port": 1, "dbname": "x"}, "host"),
    ({"host": "h", "port": 70000, "dbname": "x"}, "port"),
    ({"host": "h", "port": 5432, "dbname": "x;y"}, "dbname"),
])
def test_bad_database_targets_are_named(kwargs: dict, field: str) -> None:
    with pytest.raises(PgBouncerConfigError, match=field):
        DatabaseTarget(**kwargs)


def test_entry_without_port_is_named() -> None:
    with pytest.raises(PgBouncerConfigError, match="'clinic' needs host= and port="):
        DatabaseTarget.parse("clinic", "host=127.0.0.1")


@dataclass
class Seq:
    schema: str
    name: str
    last_value: int | None
    increment_by: int = 1


def test_sequence_margin_takes_the_larger_of_absolute_and_fraction() -> None:
    m = SequenceMargin()
    assert m.target_value(5_000) == 6_000
    assert m.target_value(1_000_000) == 1_010_000
    assert SequenceMargin(absolute=0, fraction=0).target_value(7) == 7
    with pytest.raises(FixupError, match="fraction"):
        SequenceMargin(fraction=1.5)


def test_sequence_plan_and_its_refusals() -> None:
    source = [Seq("clinic", "a_seq", 100), Seq("clinic", "b_seq", None)]
    target = [Seq("clinic", "a_seq", 1), Seq("clinic", "b_seq", None)]
    assert plan_sequence_advances(source, target, SequenceMargin(absolute=10, fraction=0)) == [
        ("clinic", "a_seq", 100, 110), ("clinic", "b_seq", None, None)]
    with pytest.raises(FixupError, match="clinic.c_seq exists on the source but not on the target"):
        plan_sequence_advances([Seq("clinic", "c_seq", 1)], target, SequenceMargin())
    with pytest.raises(FixupError, match="descends"):
        plan_sequence_advances([Seq("clinic", "a_seq", 1, -1)], target, SequenceMargin())


def test_side_and_endpoint_config_errors_name_the_field() -> None:
    assert Side.parse("target") is Side.TARGET
    with pytest.raises(EndpointError, match="side must be 'source' or 'target'"):
        Side.parse("legacy")
    with pytest.raises(EndpointError, match="endpoint.kind must be one of pgbouncer, command"):
        endpoint_from_config({"kind": "dns"})
    with pytest.raises(EndpointError, match="database is required"):
        endpoint_from_config({"kind": "pgbouncer", "pgbouncer_conn_id": "x", "database": "",
                              "source_conn_id": "a", "target_conn_id": "b"})
    with pytest.raises(EndpointError, match="non-empty list"):
        CommandEndpoint(command="switch.sh")


SWITCH_SCRIPT = """#!{python}
import sys
from pathlib import Path
state = Path(sys.argv[1])
calls = state.with_suffix(".calls")
side, paused = (state.read_text().split() if state.exists() else ["source", "false"])
action = sys.argv[2]
with calls.open("a") as fh:
    fh.write(" ".join(sys.argv[2:]) + "\\n")
if action == "current":
    print(side)
elif action == "is-paused":
    print(paused)
elif action == "pause":
    paused = "true"
elif action == "resume":
    paused = "false"
elif action == "point-to" and sys.argv[3] in ("source", "target"):
    side = sys.argv[3]
else:
    print("unknown action", file=sys.stderr)
    sys.exit(3)
state.write_text(side + " " + paused)
"""


@pytest.fixture()
def switch(tmp_path: Path) -> tuple[CommandEndpoint, Path]:
    script = tmp_path / "switch.py"
    script.write_text(SWITCH_SCRIPT.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    state = tmp_path / "endpoint.state"
    return CommandEndpoint(command=[str(script), str(state)], env=dict(os.environ)), state


def test_command_endpoint_switches_idempotently(switch: tuple[CommandEndpoint, Path]) -> None:
    endpoint, state = switch
    assert endpoint.state().as_dict() == {"side": "source", "paused": False}
    assert endpoint.pause() is True and endpoint.pause() is False
    assert endpoint.point_to("target") is True and endpoint.point_to(Side.TARGET) is False
    assert endpoint.resume() is True and endpoint.resume() is False
    assert endpoint.state().as_dict() == {"side": "target", "paused": False}
    calls = state.with_suffix(".calls").read_text().splitlines()
    # The command itself ran each move once: the second of each pair was skipped.
    assert calls.count("pause") == 1 and calls.count("point-to target") == 1 and calls.count("resume") == 1


def test_command_endpoint_failures_are_clear(switch: tuple[CommandEndpoint, Path], tmp_path: Path) -> None:
    endpoint, state = switch
    state.write_text("sideways false")
    with pytest.raises(EndpointError, match="must be 'source' or 'target'"):
        endpoint.current()
    broken = CommandEndpoint(command=[sys.executable, "-c", "import sys; sys.exit(4)"])
    with pytest.raises(EndpointError, match="exited 4"):
        broken.pause()


def test_a_gate_takes_its_body_from_exactly_one_place() -> None:
    from bascule.operators.gates import GateOperator
    from bascule.paths import LAB_PLAN
    from bascule.plan import load_plan

    plan = load_plan(LAB_PLAN)
    common = {"task_id": "gate_go_live", "plan": plan, "gate_id": "go_live", "go_task_id": "a", "no_go_task_id": "b"}
    for wrong in ({}, {"evidence_task_id": "e", "body_from": lambda ctx: "body"}):
        with pytest.raises(ValueError, match="gate go_live: give exactly one of evidence_task_id"):
            GateOperator(**common, **wrong)
    gate = GateOperator(**common, body_from=lambda ctx: "body")
    assert gate.body is None and gate.body_from is not None
    templated = GateOperator(**common, evidence_task_id="tminus_checks")
    assert "task_ids='tminus_checks'" in templated.body and templated.body_from is None
