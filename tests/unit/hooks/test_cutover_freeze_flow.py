"""The one freeze and unfreeze flow of CutoverDatabaseHook, on both dialects, against a recording connection.

No database: a fake DB-API connection answers each statement from a script and
records what was run, committed and rolled back. What is asserted is the order of
the statements each engine gets, and the rules the flow keeps for both: the recount
decides whether sessions ended, a kill that fails is fine only when nothing is
left, and the error for surviving sessions names how many.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from bascule.engines.cutover_base import Grant, grants_to_json
from bascule.hooks.cutover import CutoverDatabaseHook, FreezeError

pytestmark = pytest.mark.unit

FROZEN_AT = datetime(2026, 11, 1, 22, 0, tzinfo=UTC)
GRANTS = [Grant("table", "clinic", "patients", "INSERT"), Grant("sequence", "clinic", "patients_seq", "USAGE")]
ORA_GRANTS = [Grant("table", "CLINIC", "PATIENTS", "INSERT"), Grant("sequence", "CLINIC", "PATIENTS_SEQ", "SELECT")]


class FakePsycopgError(Exception):
    """Looks like a psycopg error to the dialect (its module is psycopg's)."""


FakePsycopgError.__module__ = "psycopg.errors"


class _OraError:
    def __init__(self, code: str) -> None:
        self.full_code = code


class FakeOracleError(Exception):
    """Looks like an oracledb error: args[0] carries the ORA- code."""


FakeOracleError.__module__ = "oracledb.exceptions"

# (label, pattern): the first pattern found in a statement names it in the log (order matters:
# the write-grants query mentions pg_roles, the terminate query pg_stat_activity, the freeze's proof
# (labelled "remaining", where the narrower check of what the role could still use used to be) aclexplode).
LABELS = [
    ("probe", r"write_probe|USAGE ON SCHEMA bascule_meta"),
    ("set", r"^SET "), ("meta", r"CREATE (SCHEMA|TABLE|UNIQUE INDEX)|REVOKE ALL ON SCHEMA|EXECUTE IMMEDIATE"),
    ("lock", r"^LOCK TABLE"),
    ("remaining", r"has_table_privilege|dba_role_privs|pg_prepared_xacts|dba_2pc_pending"),
    ("grants", r"aclexplode|FROM dba_tab_privs"), ("role", r"pg_roles WHERE rolname|FROM dba_users"),
    ("record", r"^INSERT INTO .*freeze_state"), ("update_grants", r"SET grants ="),
    ("mark", r"SET frozen_at"), ("read_frozen", r"^SELECT frozen_at, frozen_position"),
    ("release", r"SET released_at"), ("active", r"released_at IS NULL"),
    ("restricted", r"RESTRICTED SESSION"), ("stop", r"STOP_SERVICE"), ("start", r"START_SERVICE"),
    ("revoke", r"^REVOKE "), ("grant", r"^GRANT "), ("lock_role", r"NOLOGIN CONNECTION LIMIT 0|ACCOUNT LOCK$"),
    ("restore_role", r"^ALTER (ROLE|USER) .* (LOGIN|UNLOCK)"), ("terminate", r"pg_terminate_backend"),
    ("sessions", r"FROM pg_stat_activity WHERE|FROM gv\$session"), ("kill", r"DISCONNECT SESSION"),
]


def label(sql: str) -> str:
    text = " ".join(sql.split())
    for name, pattern in LABELS:
        if re.search(pattern, text, re.IGNORECASE | re.MULTILINE):
            return name
    raise AssertionError(f"unlabelled statement: {text[:80]}")


Answer = Callable[[str, str, dict[str, Any] | None], list[tuple[Any, ...]] | None]


class FakeCursor:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn = conn
        self.description: Any = None
        self._rows: list[tuple[Any, ...]] = []

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        name = label(sql)
        self.conn.log.append(name)
        rows = self.conn.answer(name, sql, params)
        self.description = None if rows is None else [("c",)]
        self._rows = rows or []

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    def close(self) -> None:
        pass


class FakeConnection:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.log: list[str] = []
        self.autocommit = False

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def commit(self) -> None:
        self.log.append("commit")

    def rollback(self) -> None:
        self.log.append("rollback")

    def close(self) -> None:
        self.log.append("close")


class RecordingHook(CutoverDatabaseHook):
    def __init__(self, conn: FakeConnection, **kwargs: Any) -> None:
        super().__init__(db_conn_id="unit_db", **kwargs)
        self.fake = conn

    def get_conn(self) -> Any:
        return self.fake


def script(*, grants: list[Grant], sessions: list[list[tuple[Any, ...]]], active: list[tuple[Any, ...]] | None = None,
           record_row: tuple[Any, ...] | None = None, frozen: tuple[Any, ...] = (FROZEN_AT, "0/3000060"),
           kill_errors: dict[int, Exception] | None = None, role_row: tuple[Any, ...] = (True, -1)) -> Answer:
    """Answers in the order a freeze asks. ``sessions`` are the successive listings (the last repeats)."""
    listings = list(sessions)
    state = {"recorded": False}

    def answer(name: str, sql: str, params: dict[str, Any] | None) -> list[tuple[Any, ...]] | None:
        if name == "role":
            return [role_row]
        if name == "active":
            if state["recorded"] and record_row is not None:
                return [record_row]
            return list(active or [])
        if name == "grants":
            return [(g.kind, g.schema, g.name, g.privilege, g.grantable, g.column, g.grantee) for g in grants]
        if name == "record":
            state["recorded"] = True
            return [(7,)] if "RETURNING" in sql else None
        if name == "sessions":
            return list(listings.pop(0) if len(listings) > 1 else listings[0])
        if name == "terminate":
            return [(len(listings[0]),)]
        if name == "kill":
            found = re.search(r"'(\d+),", sql)
            assert found is not None
            sid = int(found.group(1))
            if kill_errors and sid in kill_errors:
                raise kill_errors[sid]
            return None
        if name == "remaining":
            return []
        if name in ("mark", "read_frozen"):
            return [frozen] if name == "read_frozen" or "RETURNING" in sql else None
        return None

    return answer


# ----------------------------------------------------------------------------- PostgreSQL


def test_postgres_freeze_statement_order() -> None:
    conn = FakeConnection(script(grants=GRANTS, sessions=[[(101,), (102,)], []]))
    state = RecordingHook(conn, engine="postgres").freeze(role="clinic_app", schemas=["clinic"])
    assert conn.log == [
        "set", "commit",
        "meta", "meta", "meta", "meta", "meta", "commit",
        "lock", "role", "active", "grants", "record", "revoke", "revoke", "lock_role", "commit",
        "sessions", "commit", "terminate", "commit", "sessions", "commit",
        "remaining", "commit", "mark", "commit", "close",
    ]
    assert (state.freeze_id, state.position, state.frozen_at) == (7, "0/3000060", FROZEN_AT)
    assert state.terminated_sessions == 2 and not state.already_frozen and state.revoked == tuple(GRANTS)


def test_postgres_freeze_with_no_session_ends_none() -> None:
    conn = FakeConnection(script(grants=GRANTS, sessions=[[]]))
    state = RecordingHook(conn, engine="postgres").freeze(role="clinic_app", schemas=["clinic"])
    assert "terminate" not in conn.log and state.terminated_sessions == 0


def test_postgres_retry_records_grants_given_again_while_frozen() -> None:
    recorded = [GRANTS[0]]
    active = [(7, grants_to_json(recorded), True, -1, None, None)]
    conn = FakeConnection(script(grants=GRANTS, sessions=[[]], active=active))
    state = RecordingHook(conn, engine="postgres").freeze(role="clinic_app", schemas=["clinic"])
    assert conn.log[8:14] == ["lock", "role", "active", "grants", "update_grants", "revoke"]
    assert "record" not in conn.log and state.already_frozen and set(state.revoked) == set(GRANTS)


def test_postgres_surviving_session_fails_the_freeze_naming_the_count() -> None:
    conn = FakeConnection(script(grants=GRANTS, sessions=[[(101,), (102,), (103,)], [(102,), (103,)]]))
    hook = RecordingHook(conn, engine="postgres", session_wait_s=0.05)
    with pytest.raises(FreezeError, match=r"2 session\(s\) of 'clinic_app' survived being ended"):
        hook.freeze(role="clinic_app", schemas=["clinic"])
    assert "mark" not in conn.log  # never marked frozen


def test_postgres_terminate_that_errors_is_rolled_back_and_the_recount_decides() -> None:
    def answer(name: str, sql: str, params: Any) -> Any:
        if name == "terminate":
            raise FakePsycopgError("permission denied to terminate process")
        return base(name, sql, params)

    base = script(grants=GRANTS, sessions=[[(101,)], []])
    conn = FakeConnection(answer)
    state = RecordingHook(conn, engine="postgres").freeze(role="clinic_app", schemas=["clinic"])
    assert conn.log[conn.log.index("terminate") + 1] == "rollback" and state.terminated_sessions == 1


def test_postgres_unfreeze_statement_order() -> None:
    active = [(7, grants_to_json(GRANTS), True, -1, FROZEN_AT, "0/3000060")]
    conn = FakeConnection(script(grants=[], sessions=[[]], active=active))
    result = RecordingHook(conn, engine="postgres").unfreeze(role="clinic_app")
    # The probe table and the application's right to write it (and only it) come before the release.
    assert conn.log == ["set", "commit", "meta", "meta", "meta", "meta", "meta", "commit",
                        "lock", "active", "grant", "grant", "restore_role", "probe", "probe", "probe", "release",
                        "commit", "close"]
    assert result.was_frozen and result.restored == tuple(sorted(GRANTS))


# ----------------------------------------------------------------------------- Oracle


def test_oracle_freeze_statement_order_and_a_kill_of_a_session_already_gone() -> None:
    record_row = (7, grants_to_json(ORA_GRANTS), 1, "clinic_svc", None, None)
    conn = FakeConnection(script(
        grants=ORA_GRANTS, sessions=[[(12, 345, 1), (13, 346, 2)], []], record_row=record_row,
        frozen=(FROZEN_AT, "123456789"), role_row=(1, None),
        kill_errors={12: FakeOracleError(_OraError("ORA-00030"))}))
    state = RecordingHook(conn, engine="oracle").freeze(role="clinic_app", schemas=["clinic"],
                                                        services=["clinic_svc"])
    assert conn.log == [
        "meta", "commit",
        "role", "active", "grants", "record", "active", "restricted", "stop", "revoke", "revoke", "lock_role",
        "commit",
        "sessions", "commit", "kill", "rollback", "kill", "commit", "sessions", "commit",
        "remaining", "commit", "mark", "read_frozen", "commit", "close",
    ]
    assert (state.freeze_id, state.position, state.frozen_at) == (7, "123456789", FROZEN_AT)
    # Both ended (the recount is empty), though one DISCONNECT failed: it was already gone.
    assert state.terminated_sessions == 2 and not state.already_frozen


def test_oracle_kill_that_fails_with_the_session_still_there_fails_the_freeze() -> None:
    conn = FakeConnection(script(
        grants=ORA_GRANTS, sessions=[[(12, 345, 1)]], role_row=(1, None),
        record_row=(7, grants_to_json(ORA_GRANTS), 1, "", None, None),
        kill_errors={12: FakeOracleError(_OraError("ORA-00031"))}))
    hook = RecordingHook(conn, engine="oracle", session_wait_s=0.05)
    with pytest.raises(FreezeError, match=r"1 session\(s\) of 'clinic_app' survived .*ORA-00031"):
        hook.freeze(role="clinic_app", schemas=["clinic"])


def test_oracle_unfreeze_reads_the_clob_and_reopens_the_services() -> None:
    class Clob:
        def read(self) -> str:
            return grants_to_json(ORA_GRANTS)

    active = [(7, Clob(), 1, "clinic_svc,reports_svc", FROZEN_AT, "123456789")]
    conn = FakeConnection(script(grants=[], sessions=[[]], active=active))
    result = RecordingHook(conn, engine="oracle").unfreeze(role="clinic_app", services=["ignored_svc"])
    assert conn.log == ["meta", "commit", "active", "grant", "grant", "restore_role", "probe", "probe", "start",
                        "start", "restricted", "release", "commit", "close"]
    assert result.was_frozen and result.restored == tuple(sorted(ORA_GRANTS))


def test_unknown_role_is_refused_before_anything_changes() -> None:
    conn = FakeConnection(lambda name, sql, params: [] if name == "role" else None)
    with pytest.raises(FreezeError, match="'nobody' does not exist on unit_db"):
        RecordingHook(conn, engine="postgres").freeze(role="nobody", schemas=["clinic"])
    assert "revoke" not in conn.log and "lock_role" not in conn.log and conn.log[-1] == "close"


def test_driver_errors_leave_sanitised_and_without_cause() -> None:
    from bascule.hooks.cutover import CutoverDatabaseError

    def answer(name: str, sql: str, params: Any) -> Any:
        if name == "lock":
            raise FakePsycopgError("canceling statement due to lock timeout\nDETAIL: Key (mrn)=(MRN123) exists.")
        return None

    with pytest.raises(CutoverDatabaseError) as caught:
        RecordingHook(FakeConnection(answer), engine="postgres").freeze(role="clinic_app", schemas=["clinic"])
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert str(caught.value).startswith("unit_db: FakePsycopgError: canceling statement due to lock timeout")
    assert "MRN123" not in str(caught.value)
