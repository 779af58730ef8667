"""Backups of the target before and after the storage actions, and the restore check.

The mission's storage reduction was made "so that backups run faster": this measures it. The
same full physical backup (:class:`bascule.hooks.backup.PhysicalBackupHook`) is made ``runs``
times the same way (fresh folder, fast checkpoint, WAL streamed), the median time is kept with
every run's time, and the size is the last backup's. The after-backup is then restored into a
scratch cluster that must start and answer a smoke query: the team knows the new platform can be
restored before the point of no return.
"""

from __future__ import annotations

import shutil
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DEFAULT_RUNS = 3


@dataclass(frozen=True)
class BackupSeries:
    """``runs`` backups made the same way: every run's seconds and bytes."""

    seconds: tuple[float, ...]
    bytes: tuple[int, ...]
    folder: str

    def __post_init__(self) -> None:
        if not self.seconds or len(self.seconds) != len(self.bytes):
            raise ValueError(f"a backup series needs one size per timed run (got {len(self.seconds)} times "
                             f"and {len(self.bytes)} sizes)")

    @property
    def median_s(self) -> float:
        return float(statistics.median(self.seconds))

    @property
    def size_bytes(self) -> int:
        # The runs copy the same cluster; they differ by the WAL streamed during each (a few MB).
        return int(statistics.median(self.bytes))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "median_s": round(self.median_s, 2), "size_bytes": self.size_bytes}


def reduction_pct(before: int | float, after: int | float) -> float:
    """How much smaller ``after`` is than ``before``, in percent (0 when there was nothing before)."""
    if before <= 0:
        return 0.0
    return round(100.0 * (before - after) / before, 1)


def timed_backups(hook: Any, base: Path, *, label: str, runs: int = DEFAULT_RUNS,
                  log: Callable[[str], None] = print) -> BackupSeries:
    """``runs`` full backups into ``base/label-<i>``; the previous one is deleted before the next starts, the
    last one is kept (the restore check reads it)."""
    if runs < 1:
        raise ValueError(f"runs must be at least 1 (got {runs})")
    seconds: list[float] = []
    sizes: list[int] = []
    folder: Path | None = None
    for i in range(1, runs + 1):
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        folder = base / f"{label}-{i}"
        shutil.rmtree(folder, ignore_errors=True)
        run = hook.backup(folder)
        seconds.append(run.seconds)
        sizes.append(run.bytes)
        log(f"backup {label} {i}/{runs}: {run.seconds:.1f} s, {run.bytes / 1048576:.1f} MB")
    assert folder is not None
    return BackupSeries(seconds=tuple(seconds), bytes=tuple(sizes), folder=str(folder))


def figures(before: BackupSeries, after: BackupSeries, restore_s: float) -> dict[str, float]:
    """The storage bench's backup figures: median times, the size reduction, the restore time."""
    return {"backup_before_s": round(before.median_s, 1), "backup_after_s": round(after.median_s, 1),
            "backup_before_mb": round(before.size_bytes / 1048576, 1),
            "backup_after_mb": round(after.size_bytes / 1048576, 1),
            "backup_size_reduction_pct": reduction_pct(before.size_bytes, after.size_bytes),
            "restore_s": round(restore_s, 1)}


def spread(values: Sequence[float]) -> str:
    """``min..max`` of the runs, for the log next to a median."""
    return f"{min(values):.1f}..{max(values):.1f}"
