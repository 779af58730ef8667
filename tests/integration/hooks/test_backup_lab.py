"""The backup check on the lab's target: a real pg_basebackup, restored into a scratch cluster that answers."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def test_a_backup_of_the_target_restores_and_answers(lab: Any, airflow_env: dict[str, str]) -> None:
    from bascule.hooks.backup import BackupError, PhysicalBackupHook
    from bascule.plan import default_plan_path, load_plan
    from bascule_lab.common import LAB_USER

    plan = load_plan(default_plan_path())
    hook = PhysicalBackupHook(replication_conn_id=plan.storage.backup_conn_id,
                              os_user=LAB_USER if os.geteuid() == 0 else None)
    work = lab.root / "backup-check-test"
    shutil.rmtree(work, ignore_errors=True)
    try:
        run = hook.backup(work / "b")
        assert run.bytes > 10 << 20 and (work / "b" / "PG_VERSION").read_text().strip() == "15"
        assert (work / "b" / "backup_manifest").exists()  # pg_verifybackup can check it later
        restored = hook.restore_check(work / "b", work / "scratch", dbname="clinic", user="bascule_admin",
                                      smoke_sql="SELECT count(*) FROM clinic.patients")
        assert restored.smoke_rows == 1 and restored.pg_version == "15" and restored.seconds > 0
        assert not (work / "scratch").exists()  # stopped and deleted
        # The same backup again into a folder that holds one: refused, never mixed.
        with pytest.raises(BackupError, match="is not empty"):
            hook.backup(work / "b")
    finally:
        shutil.rmtree(work, ignore_errors=True)
