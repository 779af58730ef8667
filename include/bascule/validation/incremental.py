"""Incremental re-validation: re-check only the rows touched since the last full comparison.

The keys come from the write-ahead log through logical decoding (ADR 0021): a
slot per side, created just before the full comparison starts, so every change
the full comparison may have missed is committed after the slot's start and is
decoded. Inserts, updates (old and new key) and deletes all carry the key, so
deletes are caught, which an ``updated_at`` watermark cannot do. A TRUNCATE, or
a previous difference whose key was reported only as a keyed hash, sends its
table back to a full comparison.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bascule.hooks.validation import ValidationHook
from bascule.validation.compare import Comparator, TableRef
from bascule.validation.report import ComparisonReport, DiffKind

_SLOT_RE = re.compile(r"^[a-z0-9_]{1,63}$")


def slot_name(plan_name: str) -> str:
    name = "bascule_val_" + re.sub(r"[^a-z0-9_]", "_", plan_name.lower())
    return name[:63]


def unquote_key_text(text: str) -> str:
    """A key value as test_decoding prints it (quoted when it is text), as text."""
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return text


_unquote = unquote_key_text


@dataclass
class TouchedKeys:
    """Keys (as text, in key-column order) touched per table, and the tables to re-check whole."""

    keys: dict[str, set[tuple[str, ...]]] = field(default_factory=lambda: defaultdict(set))
    whole: dict[str, str] = field(default_factory=dict)
    changes: int = 0
    # Peeked: where each side's reading started from its end (the position to advance the slot to).
    positions: dict[str, str] = field(default_factory=dict)


class ChangeTracker:
    """Logical-decoding slots on source and target that remember which keys changed."""

    def __init__(self, *, source: ValidationHook, target: ValidationHook, slot: str) -> None:
        if not _SLOT_RE.match(slot):
            raise ValueError(f"slot must be a lowercase PostgreSQL name of at most 63 characters (got {slot!r})")
        self.sides = {"source": source, "target": target}
        self.slot = slot

    def start(self) -> dict[str, Any]:
        """(Re)create both slots, at the same time: the position every later re-check starts from."""
        def create(hook: ValidationHook) -> str:
            with hook.session() as s:
                return s.create_change_slot(self.slot)

        # Each creation waits for a consistent snapshot on its own server: one after the other, the
        # comparison would pay both waits before it starts.
        with ThreadPoolExecutor(max_workers=len(self.sides), thread_name_prefix="bascule-slot") as pool:
            futures = {side: pool.submit(create, hook) for side, hook in self.sides.items()}
            positions = {side: f.result() for side, f in futures.items()}
        return {"slot": self.slot, "positions": positions, "started_at": time.time()}

    def advance(self, positions: dict[str, str]) -> None:
        """Each side's slot moved on to its position: what came before was re-checked (ADR 0070)."""
        for side, position in positions.items():
            with self.sides[side].session() as s:
                s.advance_change_slot(self.slot, position)

    def stop(self) -> None:
        """Drop both slots, so they hold no WAL back once validation is over."""
        for hook in self.sides.values():
            with hook.session() as s:
                s.drop_change_slot(self.slot)

    def collect(self, key_columns: dict[str, list[str]], *, consume: bool = True) -> TouchedKeys:
        """Consume (or, ``consume=False``, peek) both slots; return the keys of the tables given
        ("schema.table" -> key columns). Peeked, ``touched.positions`` says where each side was read from
        on: :meth:`advance` to them once what was read is proven."""
        touched = TouchedKeys()
        wanted = {t.lower(): t for t in key_columns}
        for side, hook in self.sides.items():
            with hook.session() as s:
                if not s.change_slot_exists(self.slot):
                    raise RuntimeError(
                        f"{hook.db_conn_id}: change slot {self.slot} does not exist: run a full comparison "
                        "(with change tracking) before an incremental one")
                if not consume:
                    touched.positions[side] = s.current_position()
                for table, op, values in s.changed_keys(self.slot, key_columns, consume=consume):
                    name = wanted.get(table.lower().replace('"', ""))
                    if name is None:
                        continue
                    touched.changes += 1
                    if op == "TRUNCATE":
                        touched.whole[name] = f"TRUNCATE on the {side}"
                        continue
                    # One list per key column; an UPDATE that changes the key lists old and new.
                    for row in zip(*values, strict=False):
                        touched.keys[name].add(tuple(_unquote(v) for v in row))
        return touched


def incremental_compare(
    comparator: Comparator, tracker: ChangeTracker, tables: list[TableRef], previous: dict[str, Any] | None,
    *, consume: bool = True,
) -> ComparisonReport:
    """Re-check the touched keys and the previous report's differences; whole tables where needed.

    ``consume=False`` (the catch-up before the freeze, ADR 0070): the slots are peeked, and moved on only
    once every table was re-checked, so that a pass that fails half-way loses no key."""
    started = time.monotonic()
    key_columns: dict[str, list[str]] = {}
    for ref in tables:
        with comparator.source.session() as s:
            key_columns[ref.qualified] = [n for n, _ in s.primary_key(ref.schema, ref.table)]
    touched = tracker.collect(key_columns, consume=consume)
    prev_tables = {t["table"]: t for t in (previous or {}).get("tables", [])}
    report = ComparisonReport(kind="incremental", source_conn_id=comparator.source.db_conn_id,
                              target_conn_id=comparator.target.db_conn_id,
                              wait_and_confirm_s=comparator.settings.wait_and_confirm_s,
                              tracking={"slot": tracker.slot, "changes_decoded": touched.changes})
    for ref in tables:
        name = ref.qualified
        keys = set(touched.keys.get(name, set()))
        whole = touched.whole.get(name)
        prev = prev_tables.get(name)
        if previous is not None and prev is None:
            whole = whole or "not in the previous report"
        elif prev is not None and prev.get("status") not in ("equal", "different"):
            whole = whole or f"previous status {prev.get('status')}"
        elif prev is not None and prev.get("differences"):
            if prev.get("keys_hashed") or prev.get("keys_truncated"):
                whole = whole or "previous differences listed as keyed hashes or truncated"
            else:
                for kind in DiffKind:
                    for key in prev["keys"][kind.value]:
                        keys.add(tuple(str(v) for v in (key if isinstance(key, list) else [key])))
        if whole:
            result = comparator.compare_table(ref)
            result.full_recheck_reason = whole
        else:
            result = comparator.recheck(ref, sorted(keys))
        report.tables.append(result)
    if not consume:
        tracker.advance(touched.positions)
        report.tracking = {**(report.tracking or {}), "advanced_to": dict(touched.positions)}
    report.seconds = time.monotonic() - started
    return report
