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
    ("remaining", r"has_table_privilege|pg_prepared_xacts|dba_2pc_pending"),
    ("grants", r"aclexplode|FROM dba_tab_privs"), ("role", r"pg_roles WHERE rolname|FROM dba_users"),
    ("record", r"^INSERT INTO .*freeze_state"), ("update_grants", r"SET grants ="),
    ("mark", r"SET frozen_at"), ("read_frozen", r"^SELECT frozen_at, frozen_position"),
    ("release", r"SET released_at"), ("active", r"released_at IS NULL"),
    ("restricted", r"RESTRICTED SESSION"), ("stop", r"STOP_SERVICE"), ("start", r"START_SERVICE"),
    ("revoke", r"^REVOKE |^ALTER DEFAULT PRIVILEGES .* REVOKE "), ("grant", r"^GRANT |^ALTER DEFAULT PRIVILEGES .* GRANT "), ("lock_role", r"NOLOGIN CONNECTION LIMIT 0|ACCOUNT LOCK$"),
    ("restore_role", r"^ALTER (ROLE|USER) .* (LOGIN|UNLOCK)"), ("terminate", r"pg_terminate_backend"),
    ("sessions", r"FROM pg_stat_activity WHERE|FROM gv\$session"), ("kill", r"KILL SESSION"),
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
        self.conn.sent.append((name, sql, params))
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
        self.sent: list[tuple[str, str, dict[str, Any] | None]] = []  # (label, SQL, binds) of each statement
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
        kwargs.setdefault("db_conn_id", "unit_db")
        super().__init__(**kwargs)
        self.fake = conn

    def get_conn(self) -> Any:
        return self.fake


def script(*, grants: list[Grant], sessions: list[list[tuple[Any, ...]]], active: list[tuple[Any, ...]] | None = None,
           record_row: tuple[Any, ...] | None = None, frozen: tuple[Any, ...] = (FROZEN_AT, "0/3000060"),
           kill_errors: dict[int, Exception] | None = None, role_row: tuple[Any, ...] = (True, -1),
           findings: list[tuple[Any, ...]] | None = None) -> Answer:
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
            return list(findings or [])
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
    # Both ended (the recount is empty), though one KILL failed: it was already gone (ORA-00030).
    assert state.terminated_sessions == 2 and not state.already_frozen


def test_oracle_kill_that_fails_otherwise_than_gone_fails_the_freeze_at_once() -> None:
    # Only ORA-00030 (the session no longer exists) is passed over; any other error is not suppressed.
    conn = FakeConnection(script(
        grants=ORA_GRANTS, sessions=[[(12, 345, 1)]], role_row=(1, None),
        record_row=(7, grants_to_json(ORA_GRANTS), 1, "", None, None),
        kill_errors={12: FakeOracleError(_OraError("ORA-01031"))}))
    hook = RecordingHook(conn, engine="oracle", session_wait_s=30)
    with pytest.raises(FreezeError, match=r"ending a session of 'clinic_app' on unit_db failed with ORA-01031"):
        hook.freeze(role="clinic_app", schemas=["clinic"])
    assert conn.log.count("kill") == 1 and "mark" not in conn.log


def test_oracle_session_gone_error_with_the_session_still_listed_fails_the_freeze() -> None:
    # ORA-00030 while the recount still lists the session: the recount decides, and it survived.
    conn = FakeConnection(script(
        grants=ORA_GRANTS, sessions=[[(12, 345, 1)]], role_row=(1, None),
        record_row=(7, grants_to_json(ORA_GRANTS), 1, "", None, None),
        kill_errors={12: FakeOracleError(_OraError("ORA-00030"))}))
    hook = RecordingHook(conn, engine="oracle", session_wait_s=0.05)
    with pytest.raises(FreezeError, match=r"1 session\(s\) of 'clinic_app' survived .*ORA-00030"):
        hook.freeze(role="clinic_app", schemas=["clinic"])
    assert "mark" not in conn.log


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
    assert str(caught.value).startswith("unit_db: FakePsycopgError")
    assert "MRN123" not in str(caught.value)


# ----------------------------------------------------------------------------- the freeze proves itself (ADR 0038)

ALLOWED = ("bascule_admin", "bascule_repl", "postgres")
OTHERS = [
    Grant("column", "clinic", "observations", "UPDATE", column="unit"),
    Grant("column", "clinic", "observations", "UPDATE", column="unit", grantee="bascule_t_report"),
    Grant("membership", "", "clinic_owner", "MEMBER", grantee="bascule_t_batch"),
    Grant("default_table", "clinic", "bascule_admin", "INSERT"),
]


def _sent(conn: FakeConnection, name: str) -> list[tuple[str, dict[str, Any] | None]]:
    return [(sql, params) for label_, sql, params in conn.sent if label_ == name]


def test_postgres_freeze_takes_every_writer_and_ends_their_members_sessions() -> None:
    conn = FakeConnection(script(grants=GRANTS + OTHERS, sessions=[[(101,)], []]))
    hook = RecordingHook(conn, engine="postgres", allowed_writers=ALLOWED)
    state = hook.freeze(role="clinic_app", schemas=["clinic"])

    (_, grants_binds), = _sent(conn, "grants")
    assert grants_binds["allowed"] == list(ALLOWED)
    revokes = [" ".join(sql.split()) for sql, _ in _sent(conn, "revoke")]
    assert 'REVOKE UPDATE ("unit") ON TABLE "clinic"."observations" FROM "bascule_t_report"' in revokes
    assert 'REVOKE "clinic_owner" FROM "bascule_t_batch"' in revokes
    assert ('ALTER DEFAULT PRIVILEGES FOR ROLE "bascule_admin" IN SCHEMA "clinic" REVOKE INSERT ON TABLES '
            'FROM "clinic_app"') in revokes
    # Sessions of every login that is a member of a writer whose rights were taken, allowed ones excepted.
    for _sql, binds in _sent(conn, "sessions") + _sent(conn, "terminate"):
        assert binds["writers"] == ["bascule_t_batch", "bascule_t_report", "clinic_app"]
        assert binds["allowed"] == list(ALLOWED) and binds["everyone"] is False
    (proof_sql, proof_binds), = _sent(conn, "remaining")
    assert "pg_prepared_xacts" in proof_sql and proof_binds["allowed"] == list(ALLOWED)
    assert state.other_writers == ("bascule_t_batch", "bascule_t_report")
    assert state.as_dict()["revoked_by_kind"] == {"column": 2, "default_table": 1, "membership": 1,
                                                  "sequence": 1, "table": 1}


def test_postgres_a_right_of_public_ends_every_session_not_allowed() -> None:
    conn = FakeConnection(script(grants=[Grant("table", "clinic", "patients", "INSERT", grantee="PUBLIC")],
                                 sessions=[[]]))
    RecordingHook(conn, engine="postgres", allowed_writers=ALLOWED).freeze(role="clinic_app", schemas=["clinic"])
    (_, binds), = _sent(conn, "sessions")
    assert binds["everyone"] is True and binds["writers"] == ["clinic_app"]
    assert "FROM PUBLIC" in _sent(conn, "revoke")[0][0]


def test_postgres_a_finding_fails_the_freeze_before_the_position_is_taken() -> None:
    findings = [("writer", "postgres", "superuser"), ("security definer", "clinic.note(text)", "owned by admin"),
                ("prepared transactions", "2", "clinic_app")]
    conn = FakeConnection(script(grants=GRANTS, sessions=[[]], findings=findings))
    hook = RecordingHook(conn, engine="postgres", allowed_writers=("bascule_admin",))
    with pytest.raises(FreezeError) as caught:
        hook.freeze(role="clinic_app", schemas=["clinic"])
    assert str(caught.value) == (
        "freeze of 'clinic_app' on unit_db is not proven, the night must not go on: writer postgres (superuser); "
        "security definer clinic.note(text) (owned by admin); prepared transactions 2 (clinic_app) "
        "(allowed writers: bascule_admin)")
    assert "mark" not in conn.log, "no frozen position: the night rolls back"
    assert conn.log.index("remaining") > conn.log.index("revoke"), "the proof comes after the revokes"


def test_the_downtime_starts_on_the_workers_clock_right_before_the_revoke(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = FakeConnection(script(grants=GRANTS, sessions=[[]]))
    started = datetime(2026, 11, 1, 21, 59, 58, tzinfo=UTC)

    def clock() -> datetime:
        conn.log.append("clock")
        return started

    monkeypatch.setattr("bascule.hooks.cutover.utc_now", clock)
    RecordingHook(conn, engine="postgres").freeze(role="clinic_app", schemas=["clinic"])
    first = conn.log.index("clock")
    assert conn.log[first - 1: first + 3] == ["grants", "clock", "record", "revoke"]
    assert _sent(conn, "record")[0][1]["started"] == started
    assert _sent(conn, "mark")[0][1]["started"] == started


def test_a_retried_freeze_keeps_the_first_start() -> None:
    active = [(7, grants_to_json(GRANTS), True, -1, FROZEN_AT, None)]
    conn = FakeConnection(script(grants=GRANTS, sessions=[[]], active=active))
    state = RecordingHook(conn, engine="postgres").freeze(role="clinic_app", schemas=["clinic"])
    assert "record" not in conn.log and state.already_frozen
    assert state.frozen_at == FROZEN_AT  # what the database kept (coalesce), not this attempt's clock


def test_closing_a_side_keeps_its_login_and_proves_the_same() -> None:
    conn = FakeConnection(script(grants=GRANTS, sessions=[[]]))
    state = RecordingHook(conn, engine="postgres").close_writes(role="clinic_app", schemas=["clinic"])
    assert "lock_role" not in conn.log and "remaining" in conn.log and "mark" in conn.log
    assert not state.login_locked and state.as_dict()["login_locked"] is False


def test_the_probe_write_commits_and_is_tried_again_while_the_endpoint_reconnects(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bascule.hooks.cutover import CutoverDatabaseError, ProbeError

    class ProbeHook(CutoverDatabaseHook):
        def __init__(self, failures: int) -> None:
            super().__init__(db_conn_id="unit_app", engine="postgres")
            self.failures, self.conn = failures, FakeConnection(lambda *a: None)

        def connect(self, *, database: str | None = None, options: Any = None) -> Any:
            assert options is not None and options.through_pooler
            if self.failures:
                self.failures -= 1
                raise CutoverDatabaseError("unit_app: cannot connect: OperationalError: database is paused")
            return self.conn

    monkeypatch.setattr("bascule.hooks.cutover.time.sleep", lambda s: None)
    LABELS.insert(0, ("probe_write", r"^INSERT INTO bascule_meta.write_probe"))
    try:
        hook = ProbeHook(failures=2)
        at = hook.probe_write(run_id="r1", side="target")
        assert at.tzinfo is not None and hook.conn.log == ["probe_write", "commit", "close"]
        assert hook.conn.sent[0][2] == {"run_id": "r1", "side": "target"}
        with pytest.raises(ProbeError, match=r"did not commit within 0 s: .*database is paused"):
            ProbeHook(failures=10**6).probe_write(run_id="r1", side="target", wait_s=0)
    finally:
        LABELS.pop(0)


def test_lent_rights_for_a_closed_side_only() -> None:
    active = [(7, grants_to_json(GRANTS), True, -1, FROZEN_AT, "0/1")]
    conn = FakeConnection(script(grants=[], sessions=[[]], active=active))
    with RecordingHook(conn, engine="postgres").lent_rights("clinic_app") as lent:
        assert lent is not None and lent.conn is conn
        assert lent.statements[-1] == 'SET LOCAL ROLE "clinic_app"' and len(lent.statements) == 3
    open_side = FakeConnection(script(grants=[], sessions=[[]], active=[]))
    with RecordingHook(open_side, engine="postgres").lent_rights("clinic_app") as lent:
        assert lent is None
    oracle = FakeConnection(script(grants=[], sessions=[[]], active=[(7, grants_to_json(ORA_GRANTS), 1, "", None,
                                                                        None)]))
    with RecordingHook(oracle, engine="oracle").lent_rights("clinic_app") as lent:
        assert lent is not None and lent.conn is None  # GRANT commits on Oracle: nothing lent


def test_the_database_identity_is_read_as_text() -> None:
    from bascule.hooks.cutover import DatabaseIdentity

    LABELS.insert(0, ("identity", r"pg_control_system"))
    try:
        conn = FakeConnection(lambda name, sql, params: [(7715104927642622783, 17686)] if name == "identity" else None)
        assert RecordingHook(conn, engine="postgres").database_identity() == DatabaseIdentity(
            "7715104927642622783", "17686")
    finally:
        LABELS.pop(0)


# --------------------------------------------- the Oracle freeze passes the same proof (ADR 0038, issue 18)

ORA_OTHERS = [Grant("column", "CLINIC", "OBSERVATIONS", "UPDATE", column="UNIT", grantee="REPORT_USER"),
              Grant("table", "CLINIC", "PATIENTS", "DELETE", grantee="BATCH_ROLE")]


def test_oracle_freeze_takes_every_writer_and_ends_the_sessions_of_their_users() -> None:
    record_row = (7, grants_to_json(ORA_GRANTS + ORA_OTHERS), 1, "", None, None)
    conn = FakeConnection(script(grants=ORA_GRANTS + ORA_OTHERS, sessions=[[(12, 345, 1)], []], role_row=(1, None),
                                 record_row=record_row, frozen=(FROZEN_AT, "123456789")))
    hook = RecordingHook(conn, engine="oracle", allowed_writers=("BASCULE_ADMIN", "GGADMIN"))
    state = hook.freeze(role="clinic_app", schemas=["clinic"])
    revokes = [sql for sql, _ in _sent(conn, "revoke")]
    assert 'REVOKE UPDATE ON "CLINIC"."OBSERVATIONS" FROM "REPORT_USER"' in revokes
    assert 'REVOKE DELETE ON "CLINIC"."PATIENTS" FROM "BATCH_ROLE"' in revokes
    # Sessions of the role, of the other writers and of every user granted them (roles of roles too).
    for sql, binds in _sent(conn, "sessions"):
        assert set(binds) == {"writer0", "writer1", "writer2", "allowed0", "allowed1"}
        assert sorted(v for k, v in binds.items() if k.startswith("writer")) == ["BATCH_ROLE", "CLINIC_APP",
                                                                                 "REPORT_USER"]
        assert "CONNECT BY NOCYCLE PRIOR grantee = granted_role" in sql
    (proof_sql, proof_binds), = _sent(conn, "remaining")
    assert "dba_2pc_pending" in proof_sql and "dba_role_privs" in proof_sql and "dba_sys_privs" in proof_sql
    assert {proof_binds["allowed0"], proof_binds["allowed1"]} == {"BASCULE_ADMIN", "GGADMIN"}
    assert state.terminated_sessions == 1 and state.position == "123456789"


def test_oracle_a_finding_fails_the_freeze_before_the_position_is_taken() -> None:
    findings = [("writer", "REPORT_USER", "grant of REPORTING_ROLE"), ("prepared transactions", "1", None),
                ("definer rights", "CLINIC.ADD_NOTE", "executable by PUBLIC")]
    conn = FakeConnection(script(grants=ORA_GRANTS, sessions=[[]], role_row=(1, None), findings=findings,
                                 record_row=(7, grants_to_json(ORA_GRANTS), 1, "", None, None)))
    hook = RecordingHook(conn, engine="oracle", allowed_writers=("BASCULE_ADMIN",))
    with pytest.raises(FreezeError) as caught:
        hook.freeze(role="clinic_app", schemas=["clinic"])
    assert str(caught.value) == (
        "freeze of 'clinic_app' on unit_db is not proven, the night must not go on: writer REPORT_USER (grant of "
        "REPORTING_ROLE); prepared transactions 1; definer rights CLINIC.ADD_NOTE (executable by PUBLIC) "
        "(allowed writers: BASCULE_ADMIN)")
    assert "mark" not in conn.log and "read_frozen" not in conn.log
    assert conn.log.index("remaining") > conn.log.index("kill" if "kill" in conn.log else "lock_role")
