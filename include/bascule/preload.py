"""Modules imported once by the process that forks task processes, so that no task imports them.

Under the LocalExecutor every task is a fork of a worker forked from the
scheduler; under Celery, of the Celery worker. Whatever those parents imported,
a task has for free; whatever they did not, each task imports again before its
step can start. Measured here: Slack's SDK and provider 0.5 s, Great Expectations
6 s, psycopg's replication helpers 0.2 s. On cutover night every one of those
seconds is downtime that no step uses (ADR 0032).

The ``bascule_preload`` plugin calls :func:`preload` when ``BASCULE_PRELOAD`` is
set in the process's environment and plugins are loaded eagerly
(``AIRFLOW__CORE__LAZY_LOAD_PLUGINS=False``): the lab's Airflow stack sets both
for its scheduler, docker-compose for the scheduler and the Celery worker. Other
Airflow commands (the CLI, the API server) are left alone.
"""

from __future__ import annotations

import importlib
import logging
import os
import time

log = logging.getLogger(__name__)

ENV = "BASCULE_PRELOAD"

MODULES = (
    "psycopg",
    "bascule.plan",
    "bascule.notifications.slack",
    "bascule.operators.steps",
    "bascule.operators.gates",
    "bascule.operators.drain",
    "bascule.runbook.actions",
    "bascule.runbook.fallback",
    "bascule.runbook.announce",
    "bascule.replication.factory",
    "bascule.replication.postgres_logical",
    "bascule.validation.service",
    "bascule.validation.runner",
    "great_expectations",
)


def wanted() -> bool:
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes")


def preload(modules: tuple[str, ...] = MODULES) -> dict[str, float]:
    """Import ``modules``; returns the seconds each took. A module that fails is logged and skipped."""
    took: dict[str, float] = {}
    for name in modules:
        started = time.perf_counter()
        try:
            importlib.import_module(name)
        except Exception as exc:  # a missing optional module must not stop the scheduler
            log.warning("bascule preload: %s not imported (%s)", name, type(exc).__name__)
            continue
        took[name] = round(time.perf_counter() - started, 3)
    total = sum(took.values())
    # Task processes load plugins again and find everything imported: nothing worth a line in their logs.
    if total >= 0.1:
        log.info("bascule preload: %d modules in %.1f s", len(took), total)
    return took
