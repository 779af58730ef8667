"""Where things live in the repository: DAGs, plugins, expectations, plans.

The lab's own places (its clusters, its Airflow home) are in ``bascule_lab.paths``.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS_DIR = REPO_ROOT / "dags"
PLUGINS_DIR = REPO_ROOT / "plugins"
EXPECTATIONS_DIR = REPO_ROOT / "expectations"
PLANS_DIR = REPO_ROOT / "include" / "plans"
LAB_PLAN = PLANS_DIR / "lab.yaml"
