"""Where things live: the repository's DAGs, plugins, expectations and plans, and runs' evidence.

The lab's own places (its clusters, its Airflow home) are in ``bascule_lab.paths``.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS_DIR = REPO_ROOT / "dags"
PLUGINS_DIR = REPO_ROOT / "plugins"
EXPECTATIONS_DIR = REPO_ROOT / "expectations"
PLANS_DIR = REPO_ROOT / "include" / "plans"
LAB_PLAN = PLANS_DIR / "lab.yaml"


def reports_dir() -> Path:
    """Where runs keep their evidence (reports, charts, histories): ``$BASCULE_REPORTS_DIR``, else
    ``$AIRFLOW_HOME/reports``."""
    base = os.environ.get("BASCULE_REPORTS_DIR")
    if base:
        return Path(base)
    return Path(os.environ.get("AIRFLOW_HOME", ".")) / "reports"
