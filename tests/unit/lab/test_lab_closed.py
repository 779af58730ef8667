"""The lab is closed to other local accounts: peer or scram only, 0700 directories, files born 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bascule_lab.clusters import Lab
from bascule_lab.common import write_private

pytestmark = pytest.mark.unit


def test_a_private_file_is_created_with_its_final_mode(tmp_path: Path) -> None:
    seen: list[int] = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *args, **kwargs):
        if flags & os.O_CREAT:
            seen.append(mode)
        return real_open(path, flags, mode, *args, **kwargs)

    os.open = spy  # type: ignore[assignment]
    try:
        write_private(tmp_path / "secret.json", '{"k": "v"}')
    finally:
        os.open = real_open  # type: ignore[assignment]
    assert seen == [0o600]
    assert stat.S_IMODE((tmp_path / "secret.json").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret.json"]


def test_the_superuser_is_reached_by_peer_for_the_labs_own_accounts_only(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "lab", echo=lambda _: None)
    lab.data_dir("legacy").mkdir(parents=True)
    lab._as_root = False
    lab._write_hba("legacy")
    hba = (lab.data_dir("legacy") / "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line and not line.startswith("#")]
    assert not [r for r in rules if "trust" in r]
    assert ["local", "all", "postgres", "peer", "map=lab"] in rules
    assert all(r[-1] == "scram-sha-256" or r[-2:] == ["peer", "map=lab"] for r in rules)
    ident = (lab.data_dir("legacy") / "pg_ident.conf").read_text().split()
    import pwd

    assert ident[-2:] == [pwd.getpwuid(os.geteuid()).pw_name, "postgres"]
    for name in ("pg_hba.conf", "pg_ident.conf"):
        assert stat.S_IMODE((lab.data_dir("legacy") / name).stat().st_mode) == 0o600


def test_roles_sql_says_bascule_admin_is_superuser_on_both_clusters() -> None:
    from bascule_lab.clusters import SQL_DIR

    text = (SQL_DIR / "roles.sql").read_text()
    assert "TARGET\n-- cluster only" not in text and "BOTH clusters" in text
