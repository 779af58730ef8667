"""Where the lab lives: its clusters' directory and its Airflow's home."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from bascule.paths import REPO_ROOT


def lab_dir(*, purpose: str = "demo") -> Path:
    """The lab's cluster directory.

    PostgreSQL refuses to run as root, so as root the clusters run as the
    unprivileged ``bascule`` user; a checkout under a 0700 home (root's) is
    unreadable to that user, hence /var/lib rather than the checkout. Tests use
    their own lab (``purpose="test"``) so they never reset a demo in progress.
    """
    override = os.environ.get("BASCULE_LAB_DIR")
    if override:
        base = Path(override)
        return base if purpose == "demo" else base.with_name(f"{base.name}-{purpose}")
    if os.geteuid() == 0:
        digest = hashlib.sha1(str(REPO_ROOT).encode()).hexdigest()[:10]
        return Path("/var/lib/bascule") / f"lab-{digest}-{purpose}"
    return REPO_ROOT / ".lab" / purpose


def airflow_home(*, purpose: str = "demo") -> Path:
    return REPO_ROOT / ".airflow" / purpose
