"""Airflow's configuration for the lab, as environment variables.

One function feeds the CLI, the tests and the benches, so all three run the
same Airflow: project-local AIRFLOW_HOME, no examples, parallelism sized for
two cores, and connections from the lab's connections file (no UI step).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from bascule.paths import DAGS_DIR, LAB_PLAN, PLUGINS_DIR


def airflow_env(
    *,
    home: Path,
    connections_file: Path | None,
    sql_alchemy_conn: str | None = None,
    plan_path: Path = LAB_PLAN,
    parallelism: int = 6,
) -> dict[str, str]:
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # LocalExecutor pre-starts `parallelism` workers; 32 of them starve 2 cores. Six: after the
        # drain, four cutover checks run side by side while finished tasks may still hold a slot (below).
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        # A task's supervisor sometimes sees its process exit only when its select() times out, which
        # is this interval (default 5 s): meanwhile the worker slot stays taken. 1 s bounds that.
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        # Faults and recovery (ADR 0039), as in production (docs/production.md): a task rides out a minute
        # of its API server or metadata database being down (60 failed heartbeats, 1 s apart; Airflow's
        # 3 would end every running task 3 s into an api-server restart), and a task whose worker died is
        # failed, then retried, 90 s after its last heartbeat (Airflow's default: 300 s).
        "AIRFLOW__WORKERS__MAX_FAILED_HEARTBEATS": "60",
        # The same for a task's other Execution API calls, its start above all: a gate answered just before
        # the api-server went down failed to start twice (Airflow's 5 tries, ~6 s) and the night rolled
        # back. 12 tries 2-10 s apart wait 22 s at least, about a minute on average, 86 s at most.
        "AIRFLOW__WORKERS__EXECUTION_API_RETRIES": "12",
        "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MIN": "2",
        "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MAX": "10",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "90",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        # A scheduler that died leaves the task instances it queued or ran: the next one resets them (the
        # LocalExecutor cannot adopt them) once the dead one's heartbeat is older than
        # [scheduler] scheduler_health_check_threshold (30 s, Airflow's default), but only when it looks:
        # as it starts (too early: the dead one still looks alive) and every orphaned_tasks_check_interval
        # (Airflow: 300 s). 30 s: they are scheduled again within about a minute of the crash (ADR 0053).
        "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "30",
        # Scheduled DAGs (replication_monitor) stay off in the lab until someone turns them on;
        # tools unpause what they run.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__DAG_DISCOVERY_SAFE_MODE": "False",
        # Default 1 s idle sleep costs ~1 s between cutover steps; 0.1 s costs ~0.06 s.
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.1",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "BASCULE_PLAN": str(plan_path),
        "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
    }
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = sql_alchemy_conn or f"sqlite:///{home / 'airflow.db'}"
    if connections_file is not None:
        env["AIRFLOW__SECRETS__BACKEND"] = "airflow.secrets.local_filesystem.LocalFilesystemBackend"
        env["AIRFLOW__SECRETS__BACKEND_KWARGS"] = json.dumps({"connections_file_path": str(connections_file)})
    return env


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the lab's Celery workers: their own name, as two hosts would have two.

    Recorded by Airflow on each task instance and by bascule in each step's evidence record.
    """
    return os.environ.get("BASCULE_LAB_WORKER_NAME") or socket.getfqdn()
