"""The preparation's milestones as Airflow Asset events, signed by the workers, checked before the night (ADR 0048).

Each stage that completes (a sign-off answered GO, the initial load done, the storage applied, a
rehearsal finished) emits an event on its milestone's Asset, whose ``extra`` carries the evidence:
the figures, who signed off, which run, when, signed with the workers' key (the decision key of ADR
0037). The night's first step reads those events as its inlets and refuses to start unless every
milestone has signed evidence, none is older than a milestone it builds on, and the last rehearsal is
green and recent.

Why signed: anyone with the API's asset rights can ``POST /api/v2/assets/events`` with any ``extra``.
An event whose signature does not hold, or whose signed run is not the run that emitted it (a signed
extra copied into a new event), is not evidence; the finding says so. The time that counts is the
signed ``recorded_at``, not the event's timestamp, for the same reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow.sdk import Asset, AssetAlias

from bascule.plan import MilestoneId, Plan
from bascule.today import parse_instant, utc_now

ASSET_GROUP = "bascule-milestones"
REHEARSAL = "rehearsal"
# Not a milestone of the preparation: the event a real night emits once it went live, on which the rollback
# window's watch (``post_go_live``) is scheduled (ADR 0057).
WENT_LIVE = "went_live"
SIGNATURE_PREFIX = "hmac-sha256:"
GREEN = "completed"


def asset_name(plan: Plan, milestone: MilestoneId | str) -> str:
    # The production plan's name, also for a rehearsal run (plan.production): one calendar per migration.
    name = milestone if milestone in (REHEARSAL, WENT_LIVE) else MilestoneId(milestone).value
    return f"bascule.{plan.production.name}.{name}"


def milestone_asset(plan: Plan, milestone: MilestoneId | str) -> Asset:
    return Asset(name=asset_name(plan, milestone), group=ASSET_GROUP)


def went_live_asset(plan: Plan) -> Asset:
    """``bascule.<plan>.went_live``: one event per real night that went live, its run id in the extra."""
    return milestone_asset(plan, WENT_LIVE)


def went_live_alias(plan: Plan) -> AssetAlias:
    """The night's report's outlet: an alias, so that the report adds the ``went_live`` event only for a real
    night that went live. A task's plain Asset outlet gets an event whenever the task succeeds, and the report
    succeeds after a rehearsal, an abort or a NO-GO too."""
    return AssetAlias(name=f"{asset_name(plan, WENT_LIVE)}.if_live", group=ASSET_GROUP)


def went_live_extra(plan: Plan, report: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``went_live`` event's extra for a night's report, or None when the night must start no watch: a
    rehearsal (on the rehearsal environment: production's reverse flow is not its concern), a night rolled
    back, aborted, or without a go-live instant. Names and instants only, never a value."""
    if report.get("outcome") != GREEN or not report.get("downtime_end"):
        return None
    if report.get("rehearsal") or plan.production is not plan:
        return None
    return {"plan": plan.production.name, "dag_id": report.get("dag_id"), "run_id": report.get("run_id"),
            "outcome": report.get("outcome"), "downtime_end": report.get("downtime_end"),
            "downtime_s": report.get("downtime_s")}


def calendar_assets(plan: Plan) -> list[Asset]:
    """The inlets of the night's first step: every milestone and the rehearsals; none without a calendar."""
    if plan.production.calendar is None:
        return []
    return [milestone_asset(plan, m) for m in MilestoneId] + [milestone_asset(plan, REHEARSAL)]


def _signature(key: bytes, record: Mapping[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "signature"}
    message = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return SIGNATURE_PREFIX + hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def evidence(key: bytes, *, plan: Plan, milestone: str, dag_id: str, run_id: str, signed_off_by: str | None,
             figures: Mapping[str, Any] | None = None, outcome: str | None = None,
             recorded_at: datetime | None = None) -> dict[str, Any]:
    """The signed ``extra`` of a milestone's Asset event. ``figures`` are counts and timings, never a row value."""
    record: dict[str, Any] = {
        "milestone": milestone, "plan": plan.production.name, "dag_id": dag_id, "run_id": run_id,
        "signed_off_by": signed_off_by, "figures": dict(figures or {}),
        "recorded_at": (recorded_at or utc_now()).isoformat(),
    }
    if outcome is not None:
        record["outcome"] = outcome
    return {**record, "signature": _signature(key, record)}


@dataclass(frozen=True)
class Seen:
    """One event on a milestone's Asset, as the night's first step reads it."""

    extra: Mapping[str, Any]
    source_dag_id: str | None = None
    source_run_id: str | None = None

    @classmethod
    def of(cls, event: Any) -> Seen:
        return cls(extra=dict(getattr(event, "extra", None) or {}), source_dag_id=getattr(event, "source_dag_id", None),
                   source_run_id=getattr(event, "source_run_id", None))


def _holds(key: bytes, seen: Seen, plan: Plan, milestone: str) -> bool:
    extra = seen.extra
    if not str(extra.get("signature", "")).startswith(SIGNATURE_PREFIX):
        return False
    if not hmac.compare_digest(str(extra["signature"]), _signature(key, extra)):
        return False
    # The signed run must be the run that emitted this event: a signed extra copied into an event
    # made through the API (no source run) or by another run is a replay, not evidence.
    return (extra.get("milestone") == milestone and extra.get("plan") == plan.production.name
            and extra.get("dag_id") == seen.source_dag_id and extra.get("run_id") == seen.source_run_id)


def _latest(key: bytes, plan: Plan, milestone: str, events: Iterable[Seen]) -> tuple[datetime | None, int, Seen | None]:
    latest: tuple[datetime, Seen] | None = None
    refused = 0
    for seen in events:
        if not _holds(key, seen, plan, milestone):
            refused += 1
            continue
        at = parse_instant(str(seen.extra["recorded_at"]))
        if latest is None or at > latest[0]:
            latest = (at, seen)
    return (latest[0], refused, latest[1]) if latest else (None, refused, None)


def recorded(plan: Plan, events: Mapping[str, Iterable[Seen]], *, key: bytes) -> dict[str, datetime | None]:
    """When each milestone (and the rehearsal) was last recorded with valid signed evidence, else None."""
    names = [m.value for m in MilestoneId] + [REHEARSAL]
    return {name: _latest(key, plan, name, events.get(name, ()))[0] for name in names}


def latest_figures(plan: Plan, events: Mapping[str, Iterable[Seen]], milestone: str, *,
                   key: bytes) -> dict[str, Any] | None:
    """The figures signed with a milestone's latest valid event (a stage's counts and timings), else None."""
    seen = _latest(key, plan, milestone, events.get(milestone, ()))[2]
    return dict(seen.extra.get("figures") or {}) if seen is not None else None


def findings(plan: Plan, events: Mapping[str, Iterable[Seen]], *, key: bytes,
             now: datetime | None = None) -> list[str]:
    """Why the night may not start for real: one line per milestone missing, forged or stale, and for the
    last rehearsal not green or too old. Empty when the plan has no calendar or everything holds."""
    calendar = plan.production.calendar
    if calendar is None:
        return []
    now = now or utc_now()
    out: list[str] = []
    recorded: dict[MilestoneId, datetime] = {}
    for milestone in MilestoneId:
        at, refused, _ = _latest(key, plan, milestone.value, events.get(milestone.value, ()))
        note = f" ({refused} event(s) without a valid signature ignored)" if refused else ""
        if at is None:
            out.append(f"milestone {milestone.value}: no signed evidence on asset {asset_name(plan, milestone)}"
                       f"{note} ({calendar.milestones[milestone].done})")
            continue
        recorded[milestone] = at
    for milestone, at in recorded.items():
        newer = [(m, recorded[m]) for m in milestone.invalidated_by if m in recorded and recorded[m] > at]
        if newer:
            m, when = newer[0]
            out.append(f"milestone {milestone.value}: stale, recorded {at.isoformat(timespec='seconds')}, before "
                       f"{m.value} was recorded again at {when.isoformat(timespec='seconds')}; do it again")
    at, refused, seen = _latest(key, plan, REHEARSAL, events.get(REHEARSAL, ()))
    if at is None or seen is None:
        out.append(f"rehearsal: no signed rehearsal on asset {asset_name(plan, REHEARSAL)}"
                   + (f" ({refused} event(s) without a valid signature ignored)" if refused else ""))
    elif seen.extra.get("outcome") != GREEN:
        out.append(f"rehearsal: the last one ({seen.extra.get('run_id')}, {at.isoformat(timespec='seconds')}) "
                   f"ended {seen.extra.get('outcome')!r}, not {GREEN!r}")
    elif now - at > calendar.rehearsals.max_age:
        out.append(f"rehearsal: the last green one ({seen.extra.get('run_id')}) is {(now - at).days} days old, "
                   f"more than {calendar.rehearsals.max_age.days}")
    return out
