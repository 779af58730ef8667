"""The physical backup hook without a cluster: its command line, its refusals, its version check."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from bascule.hooks import backup

pytestmark = pytest.mark.unit


def _hook(monkeypatch, tmp_path, calls):
    hook = backup.PhysicalBackupHook(replication_conn_id="hosp_new_repl")
    hook.__dict__["connection"] = SimpleNamespace(host="db.new", port=5433, login="repl", password="s3cret-pw")
    hook.__dict__["bindir"] = tmp_path / "bin"

    def fake_run(argv, **kwargs):
        calls.append((argv, kwargs))
        folder = Path(argv[argv.index("-D") + 1])
        folder.mkdir(parents=True)
        (folder / "PG_VERSION").write_text("15\n")
        (folder / "base").mkdir()
        (folder / "base" / "1").write_bytes(b"x" * 1000)
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    return hook


def test_a_backup_is_a_plain_full_copy_with_its_wal_and_the_password_stays_off_the_command_line(monkeypatch,
                                                                                                  tmp_path):
    calls = []
    run = _hook(monkeypatch, tmp_path, calls).backup(tmp_path / "b1")
    ((argv, kwargs),) = calls
    assert argv[0] == str(tmp_path / "bin" / "pg_basebackup")
    assert argv[argv.index("-h") + 1] == "db.new" and argv[argv.index("-p") + 1] == "5433"
    assert argv[argv.index("-U") + 1] == "repl" and "-w" in argv
    assert argv[argv.index("-F") + 1] == "p" and argv[argv.index("-X") + 1] == "stream"
    assert argv[argv.index("-c") + 1] == "fast"
    assert "s3cret-pw" not in " ".join(argv) and kwargs["env"]["PGPASSWORD"] == "s3cret-pw"
    assert run.bytes == 1003 and run.seconds >= 0 and run.folder == str(tmp_path / "b1")


def test_a_backup_never_mixes_with_an_older_one(monkeypatch, tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "PG_VERSION").write_text("15\n")
    with pytest.raises(backup.BackupError, match="is not empty"):
        _hook(monkeypatch, tmp_path, []).backup(tmp_path / "old")


def test_a_failed_backup_says_which_connection_and_folder(monkeypatch, tmp_path):
    hook = _hook(monkeypatch, tmp_path, [])
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: subprocess.CompletedProcess(
        argv, 1, "", "pg_basebackup: error: connection to server failed\nFATAL: no pg_hba.conf entry"))
    with pytest.raises(backup.BackupError, match=r"pg_basebackup of hosp_new_repl into .*b2 failed \(1\): .*pg_hba"):
        hook.backup(tmp_path / "b2")


@pytest.mark.parametrize(("text", "major"), [
    ("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n", "15"),
    ("postgres (PostgreSQL) 17.2\n", "17"),
    ("postgres (PostgreSQL) 16beta1\n", None),
    ("", None),
])
def test_the_servers_major_version(text, major):
    assert backup.server_major(text) == major


def test_the_restore_check_refuses_binaries_of_another_major_version(monkeypatch, tmp_path):
    hook = _hook(monkeypatch, tmp_path, [])
    (tmp_path / "bk").mkdir()
    (tmp_path / "bk" / "PG_VERSION").write_text("15\n")
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: subprocess.CompletedProcess(
        argv, 0, "postgres (PostgreSQL) 17.2\n", ""))
    with pytest.raises(backup.BackupError, match="is PostgreSQL 17 but the backup in .* is PostgreSQL 15"):
        hook.restore_check(tmp_path / "bk", tmp_path / "scratch", dbname="clinic", user="u", smoke_sql="SELECT 1")
    assert not (tmp_path / "scratch").exists()
