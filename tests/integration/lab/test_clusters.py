"""The lab's clusters: idempotent up, clean down, schema-only target, fast reset."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from bascule_lab.clusters import APP_DB, CLUSTERS, SOURCE, TARGET, Lab, LabError
from bascule_lab.paths import lab_dir

pytestmark = pytest.mark.integration


def _postgres_pids(lab: Lab) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"postgres -D {lab.root}"], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def test_up_twice_is_harmless(lab: Any) -> None:
    before = {s.name: (s.port, s.pid) for s in lab.status()}
    lab.up()
    after = {s.name: (s.port, s.pid) for s in lab.status()}
    assert before == after
    assert all(s.running for s in lab.status())
    assert {s.name for s in lab.status()} == set(CLUSTERS)


def test_source_and_target_run_with_logical_wal(lab: Any) -> None:
    for name in (SOURCE, TARGET):
        with lab.connect(name) as conn:
            assert conn.execute("SHOW wal_level").fetchone()[0] == "logical"


def test_target_has_the_schema_and_release_but_no_rows(fresh_lab: Any) -> None:
    with fresh_lab.connect(TARGET, APP_DB) as conn:
        counts = conn.execute(
            """SELECT c.relname, (xpath('/row/n/text()',
                      query_to_xml(format('SELECT count(*) AS n FROM clinic.%I', c.relname), false, true, '')))[1]::text::int
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'clinic' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"""
        ).fetchall()
        assert counts and all(n == 0 for _, n in counts), counts
        release_col = conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = 'clinic' "
            "AND table_name = 'patients' AND column_name = 'preferred_language'").fetchone()
        assert release_col is not None
    with fresh_lab.connect(SOURCE, APP_DB) as conn:
        assert conn.execute("SELECT count(*) FROM clinic.patients").fetchone()[0] > 0
        no_release = conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = 'clinic' "
            "AND table_name = 'patients' AND column_name = 'preferred_language'").fetchone()
        assert no_release is None


def test_reset_restores_the_seeded_state(lab: Any) -> None:
    with lab.connect(SOURCE, APP_DB) as conn:
        before = conn.execute("SELECT count(*) FROM clinic.observations").fetchone()[0]
        conn.execute("DELETE FROM clinic.observations WHERE observation_id IN "
                     "(SELECT observation_id FROM clinic.observations LIMIT 10)")
    with lab.connect(TARGET, APP_DB) as conn:
        conn.execute("CREATE TABLE clinic.stray (id int)")
    lab.reset()
    with lab.connect(SOURCE, APP_DB) as conn:
        assert conn.execute("SELECT count(*) FROM clinic.observations").fetchone()[0] == before
    with lab.connect(TARGET, APP_DB) as conn:
        assert conn.execute("SELECT to_regclass('clinic.stray')").fetchone()[0] is None


def test_reset_drops_subscriptions_and_their_slots(lab: Any) -> None:
    lab.reset()
    with lab.connect(SOURCE, APP_DB) as conn:
        conn.execute("CREATE PUBLICATION reset_probe FOR TABLE clinic.hospitals")
    state = lab.state()
    with lab.connect(TARGET, APP_DB) as conn:
        conn.execute(
            f"CREATE SUBSCRIPTION reset_probe CONNECTION 'host=127.0.0.1 port={state.ports[SOURCE]} "
            f"dbname={APP_DB} user=bascule_repl password={state.passwords['bascule_repl']}' "
            "PUBLICATION reset_probe WITH (copy_data = false)")
    lab.reset()
    with lab.connect(SOURCE) as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0] == 0
    with lab.connect(TARGET, APP_DB) as conn:
        assert conn.execute("SELECT count(*) FROM pg_subscription").fetchone()[0] == 0


def test_connections_file_names_every_lab_connection(lab: Any) -> None:
    import json

    conns = json.loads(lab.connections_file.read_text())
    for conn_id in ("bascule_legacy", "bascule_new", "bascule_legacy_app", "bascule_legacy_repl",
                    "bascule_key_hmac", "bascule_archive"):
        assert conn_id in conns
    # The archive of old partitions is on another cluster than the target's (the control cluster).
    state = lab.state()
    assert conns["bascule_archive"]["port"] == state.ports["control"] != conns["bascule_new"]["port"]
    assert (conns["bascule_archive"]["login"], conns["bascule_archive"]["schema"]) == ("bascule_archive",
                                                                                       "clinic_archive")
    assert oct(lab.connections_file.stat().st_mode & 0o777) == "0o600"


def test_down_leaves_no_process_behind() -> None:
    scratch = Lab(lab_dir(purpose="test-updown"), echo=lambda _line: None)
    try:
        scratch.up()
        assert len(_postgres_pids(scratch)) == len(CLUSTERS)
        scratch.down()
        assert _postgres_pids(scratch) == []
        assert not any(scratch.is_running(n) for n in CLUSTERS)
        scratch.down()  # twice is harmless too
    finally:
        scratch.destroy()


def test_missing_server_binaries_say_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("BASCULE_PG_BIN", str(tmp_path / "nowhere"))
    with pytest.raises(LabError, match=r"apt-get install -y postgresql-15"):
        Lab(tmp_path / "lab", echo=lambda _line: None).up()
