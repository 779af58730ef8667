"""The lab's PgBouncer endpoint: up/down/status, and a connected client following a switch."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from bascule.cutover.endpoint import PgBouncerEndpoint, Side
from bascule_lab.pgbouncer import LabPgBouncer

pytestmark = pytest.mark.integration


def _endpoint() -> PgBouncerEndpoint:
    return PgBouncerEndpoint(pgbouncer_conn_id="bascule_endpoint_admin", database="clinic",
                             source_conn_id="bascule_legacy_app", target_conn_id="bascule_new_app",
                             followers=("clinic_smoke",), command_timeout_s=5)


@pytest.fixture()
def switchable(fresh_lab: Any) -> Any:
    endpoint = _endpoint()
    endpoint.point_to(Side.SOURCE)
    endpoint.resume()
    yield endpoint
    endpoint.point_to(Side.SOURCE)
    endpoint.resume()


def _cluster(conn: psycopg.Connection) -> str:
    return conn.execute("SELECT current_setting('cluster_name')").fetchone()[0]


def test_pgbouncer_up_down_status_idempotent(lab: Any) -> None:
    pgb = LabPgBouncer(lab)
    port = pgb.up()
    status = pgb.status()
    assert status.running and status.port == port and status.points_to == "legacy"
    assert pgb.up() == port and pgb.status().pid == status.pid  # up twice: same process
    pgb.down()
    pgb.down()
    assert not pgb.status().running
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pgb.app_dsn(), connect_timeout=2)
    assert pgb.up() == port
    with psycopg.connect(pgb.app_dsn(), autocommit=True, prepare_threshold=None) as conn:
        assert _cluster(conn) == "bascule-legacy"
    conns = pgb.connections()
    assert set(conns) == {"bascule_endpoint_app", "bascule_endpoint_admin"}
    assert pgb.auth_file.stat().st_mode & 0o777 == 0o600  # it holds passwords


def test_a_connected_client_follows_the_switch_and_back(switchable: PgBouncerEndpoint, lab: Any) -> None:
    endpoint = switchable
    client = psycopg.connect(LabPgBouncer(lab).app_dsn(), autocommit=True, prepare_threshold=None)
    assert _cluster(client) == "bascule-legacy"
    assert endpoint.state().as_dict() == {"side": "source", "paused": False}

    assert endpoint.pause() is True
    assert endpoint.point_to("target") is True
    assert endpoint.resume() is True
    assert _cluster(client) == "bascule-new"  # the same connection, now on the other cluster
    assert endpoint.current() is Side.TARGET and LabPgBouncer(lab).status().points_to == "new"

    # Each move again: nothing changes.
    assert (endpoint.point_to("target"), endpoint.resume()) == (False, False)
    assert _cluster(client) == "bascule-new"

    endpoint.pause()
    endpoint.point_to(Side.SOURCE)
    endpoint.resume()
    assert _cluster(client) == "bascule-legacy"
    client.close()


def test_pause_holds_and_times_out_cleanly_on_open_transaction(switchable: PgBouncerEndpoint, lab: Any) -> None:
    from bascule.hooks.pgbouncer import PgBouncerTimeout

    endpoint = switchable
    client = psycopg.connect(LabPgBouncer(lab).app_dsn(), prepare_threshold=None)
    client.execute("SELECT 1")  # a transaction left open: PAUSE cannot complete
    endpoint.hook.command_timeout_s = 1
    with pytest.raises(PgBouncerTimeout, match="did not finish within 1 s"):
        endpoint.pause()
    assert not endpoint.is_paused()  # the half-done pause was undone
    client.rollback()
    assert endpoint.pause() is True and endpoint.is_paused()
    client.close()


def test_unknown_admin_command_is_refused(switchable: PgBouncerEndpoint) -> None:
    from bascule.hooks.pgbouncer import PgBouncerError

    with pytest.raises(PgBouncerError, match="not an allowed PgBouncer admin command"):
        switchable.hook.command("SHUTDOWN")
    with pytest.raises(PgBouncerError, match="no database entry 'nope'"):
        switchable.hook.entry("nope")
