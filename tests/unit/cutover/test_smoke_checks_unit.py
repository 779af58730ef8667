"""The smoke runner on a recording connection: binds per driver, every check rolled back, classes not messages."""

from __future__ import annotations

from typing import Any

import pytest

from bascule.cutover.smoke import run_smoke
from bascule.hooks.database import MigrationDatabaseHook
from bascule.plan import SmokeCheck

pytestmark = pytest.mark.unit

CHECKS = (
    SmokeCheck(name="patient", kind="read", sql="SELECT min(patient_id) FROM clinic.encounters", key="patient_id"),
    SmokeCheck(name="notes", kind="read", min_rows=0,
               sql="SELECT note_id FROM clinic.clinical_notes WHERE patient_id = :patient_id"),
    SmokeCheck(name="observation", kind="write", key="observation_id",
               sql="INSERT INTO clinic.observations (encounter_id, unit) VALUES (:patient_id, '%') "
                   "RETURNING observation_id"),
)


class InsufficientPrivilege(Exception):
    """A psycopg-looking refusal whose message quotes a value."""


InsufficientPrivilege.__module__ = "psycopg.errors"


class Cursor:
    def __init__(self, conn: Conn) -> None:
        self.conn, self.description, self.rowcount, self._rows = conn, None, -1, []

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self.conn.log.append((sql, params))
        rows = self.conn.answers.get(sql.split()[0] + ":" + sql.split()[-1], [])
        if isinstance(rows, Exception):
            raise rows
        self._rows, self.description, self.rowcount = rows, [("c",)], len(rows)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    def close(self) -> None:
        pass


class Conn:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers, self.log, self.autocommit = answers, [], False

    def cursor(self) -> Cursor:
        return Cursor(self)

    def rollback(self) -> None:
        self.log.append(("rollback", None))

    def commit(self) -> None:
        raise AssertionError("a smoke check never commits")

    def close(self) -> None:
        self.log.append(("close", None))


class Hook(MigrationDatabaseHook):
    def __init__(self, conn: Conn, engine: str) -> None:
        super().__init__(db_conn_id="unit_app", engine=engine)
        self.fake, self.asked = conn, {}

    def connect(self, *, database: str | None = None, options: Any = None) -> Any:
        self.asked = {"database": database, "options": options}
        return self.fake


ANSWERS = {"SELECT:current_setting('cluster_name')": [("bascule-new",)], "SELECT:clinic.encounters": [(17,)],
           "SELECT::patient_id": [], "SELECT:%(patient_id)s": [], "INSERT:observation_id": [(901,)]}


def test_postgres_run_binds_keys_rolls_every_check_back_and_keeps_counts_and_keys() -> None:
    conn = Conn(ANSWERS)
    hook = Hook(conn, "postgres")
    result = run_smoke(hook, CHECKS, database="clinic_smoke")
    assert result.ok and result.server == "bascule-new"
    assert result.chart == {"patient": 1, "notes": 0} and result.writes == {"observation": 1}
    assert result.keys == {"patient_id": 17, "observation_id": 901} and result.observation_id == 901
    assert hook.asked["database"] == "clinic_smoke" and hook.asked["options"].through_pooler
    insert = next(entry for entry in conn.log if entry[0].startswith("INSERT"))
    assert insert == ("INSERT INTO clinic.observations (encounter_id, unit) VALUES (%(patient_id)s, '%%') "
                      "RETURNING observation_id", {"patient_id": 17})
    statements = [sql for sql, _ in conn.log]
    assert statements.count("rollback") == 4 and statements[-1] == "close"  # after the server's name and each check
    assert result.as_dict()["keys"] == {"patient_id": 17, "observation_id": 901}


def test_oracle_run_keeps_the_colon_binds() -> None:
    conn = Conn({**ANSWERS, "SELECT:dual": [("HOSP1",)]})
    result = run_smoke(Hook(conn, "oracle"), CHECKS)
    assert result.server == "HOSP1"
    assert any(sql.endswith("WHERE patient_id = :patient_id") and params == {"patient_id": 17}
               for sql, params in conn.log)


def test_a_refused_write_is_named_by_class_and_the_run_goes_on() -> None:
    answers = {**ANSWERS, "INSERT:observation_id": InsufficientPrivilege("permission denied; Key (mrn)=(MRN1)")}
    result = run_smoke(Hook(Conn(answers), "postgres"), CHECKS)
    assert result.read_ok and not result.write_ok and not result.ok
    assert result.write_error == "InsufficientPrivilege" and result.failed == ("observation",)
    assert result.observation_id is None and "MRN1" not in repr(result.as_dict())


def test_a_read_with_too_few_rows_stops_the_run() -> None:
    answers = {**ANSWERS, "SELECT:clinic.encounters": [(None,)]}
    conn = Conn(answers)
    result = run_smoke(Hook(conn, "postgres"), CHECKS)
    assert not result.read_ok and not result.write_ok and result.write_error is None
    assert result.failed == ("patient",) and result.read_error == "patient: key patient_id is not an integer (NULL)"
    assert not any(sql.startswith("INSERT") for sql, _ in conn.log)
    with pytest.raises(AttributeError):
        _ = result.no_such_key


def test_writes_on_a_closed_side_run_on_bascules_session_with_rights_lent_then_rolled_back() -> None:
    from bascule.hooks.cutover import LentRights

    app, own = Conn(ANSWERS), Conn(ANSWERS)
    lent = LentRights(conn=own, statements=('GRANT INSERT ON TABLE "clinic"."observations" TO "clinic_app"',
                                            'SET LOCAL ROLE "clinic_app"'), hook=Hook(own, "postgres"))
    result = run_smoke(Hook(app, "postgres"), CHECKS, database="clinic_smoke", lent=lent)
    assert result.ok and result.write_path == "lent" and result.observation_id == 901
    assert not [sql for sql, _ in app.log if sql.startswith("INSERT")], "no write through the endpoint"
    sent = [sql for sql, _ in own.log]
    assert sent == [lent.statements[0], lent.statements[1], sent[2], "rollback"] and sent[2].startswith("INSERT")


def test_writes_on_a_closed_side_are_skipped_where_rights_cannot_be_lent() -> None:
    from bascule.hooks.cutover import LentRights

    app = Conn(ANSWERS)
    result = run_smoke(Hook(app, "oracle"), CHECKS[:1] + CHECKS[2:], lent=LentRights(conn=None, statements=(),
                                                                                      hook=Hook(app, "oracle")))
    assert result.ok and result.write_path == "skipped" and result.skipped == ("observation",)
    assert result.as_dict()["skipped"] == ["observation"]
