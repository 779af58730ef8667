"""The weekly readiness: the three months as a timeline, planned against actual, with the risks (ADR 0059).

Computed from what the runs recorded, never from what people say: the milestones' signed Asset events
(their ``recorded_at``), the rehearsals' reports in the evidence store, and the replication history on the
target. Figures only: no row value is read anywhere here.
"""

from __future__ import annotations

import html
import statistics
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from bascule.plan import Calendar, MilestoneId

ON_TIME, LATE, OVERDUE, DUE = "on time", "late", "overdue", "due"


def timeline(calendar: Calendar, recorded: Mapping[str, datetime | None], today: date) -> list[dict[str, Any]]:
    """One row per milestone, in order: the day planned, the day recorded, and whether it was on time."""
    rows = []
    for mid in MilestoneId:
        planned = calendar.milestones[mid].date
        at = recorded.get(mid.value)
        actual = at.date() if at is not None else None
        if actual is not None:
            status = ON_TIME if actual <= planned else LATE
            late = max(0, (actual - planned).days)
        else:
            status = OVERDUE if today > planned else DUE
            late = max(0, (today - planned).days)
        rows.append({"milestone": mid.value, "planned": planned.isoformat(),
                     "actual": actual.isoformat() if actual else None, "status": status, "days_late": late})
    return rows


def rehearsals(calendar: Calendar, history: Sequence[Any], today: date) -> dict[str, Any]:
    """Rehearsals done against planned by today, the last one's outcome, and the trend of the last two
    complete ones (downtime, validation time inside the window)."""
    from bascule.preparation.rehearsal import figures

    planned = [d for d in calendar.rehearsals.dates() if d <= today]
    complete = [r for r in history if r.outcome == "completed"]
    trend: dict[str, Any] = {}
    if len(complete) >= 2:
        before, after = figures(complete[-2]), figures(complete[-1])
        for key in ("downtime_s", "validation_s"):
            a, b = before[key], after[key]
            trend[key] = {"previous": a, "latest": b,
                          "change_pct": round(100 * (b - a) / a, 1) if a and b is not None else None}
    return {"planned_by_today": len(planned), "planned_total": calendar.rehearsals.count, "done": len(history),
            "complete": len(complete), "last_outcome": history[-1].outcome if history else None,
            "last_run": history[-1].run_id if history else None, "trend": trend}


def lag_trend(readings: Sequence[tuple[datetime, float]], now: datetime) -> dict[str, Any]:
    """The forward flow's lag this week against the week before: median and max of the monitor's readings."""
    def week(start: datetime, end: datetime) -> dict[str, Any] | None:
        lags = [lag for at, lag in readings if start <= at < end and lag is not None]
        if not lags:
            return None
        return {"readings": len(lags), "median_s": round(statistics.median(lags), 3), "max_s": round(max(lags), 3)}

    this, last = week(now - timedelta(days=7), now + timedelta(seconds=1)), week(now - timedelta(days=14),
                                                                               now - timedelta(days=7))
    rising = this is not None and last is not None and this["median_s"] > 1.5 * last["median_s"] + 0.5
    return {"this_week": this, "last_week": last, "rising": rising}


def readiness(calendar: Calendar, *, recorded: Mapping[str, datetime | None], findings: Sequence[str],
              history: Sequence[Any], lag: Mapping[str, Any], budget_s: float, storage: Mapping[str, Any] | None,
              now: datetime) -> dict[str, Any]:
    today = now.astimezone(calendar.cutover.tzinfo).date()
    rows = timeline(calendar, recorded, today)
    rehearsed = rehearsals(calendar, history, today)
    risks = [f"{r['milestone']} {r['status']} ({r['days_late']} days after {r['planned']})"
             for r in rows if r["status"] in (LATE, OVERDUE)]
    risks += [f for f in findings if ": stale" in f]
    if rehearsed["done"] < rehearsed["planned_by_today"]:
        risks.append(f"rehearsals: {rehearsed['done']} done, {rehearsed['planned_by_today']} planned by today")
    if rehearsed["last_outcome"] not in (None, "completed"):
        risks.append(f"rehearsals: the last one ended {rehearsed['last_outcome']!r}")
    for key, label in (("downtime_s", "downtime"), ("validation_s", "validation time")):
        change = (rehearsed["trend"].get(key) or {}).get("change_pct")
        if change is not None and change > 20:
            risks.append(f"rehearsals: {label} up {change}% from the rehearsal before")
    latest_downtime = (rehearsed["trend"].get("downtime_s") or {}).get("latest")
    if latest_downtime is not None and latest_downtime > 0.8 * budget_s:
        risks.append(f"rehearsals: downtime {latest_downtime:.0f} s is over 80% of the {budget_s:.0f} s budget")
    if lag.get("rising"):
        risks.append("replication: the lag's weekly median is rising")
    if storage is None and today > calendar.milestones[MilestoneId.STORAGE_APPLIED].date:
        risks.append("storage: no storage figures recorded")
    return {"today": today.isoformat(), "night": calendar.night_date.isoformat(),
            "days_left": (calendar.night_date - today).days, "timeline": rows,
            "on_time": sum(r["status"] == ON_TIME for r in rows), "late": sum(r["status"] == LATE for r in rows),
            "overdue": sum(r["status"] == OVERDUE for r in rows), "rehearsals": rehearsed, "lag": dict(lag),
            "storage": dict(storage) if storage else None, "risks": risks}


def page(plan_name: str, data: Mapping[str, Any]) -> str:
    """A self-contained HTML page: the timeline, planned against actual, then the rehearsals and the risks."""
    e = html.escape
    rows = "".join(
        f"<tr class='{e(r['status'].replace(' ', '-'))}'><td>{e(r['milestone'])}</td><td>{e(r['planned'])}</td>"
        f"<td>{e(r['actual'] or '—')}</td><td>{e(r['status'])}</td><td>{r['days_late']}</td></tr>"
        for r in data["timeline"])
    risks = "".join(f"<li>{e(str(x))}</li>" for x in data["risks"]) or "<li>none</li>"
    rh = data["rehearsals"]
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Readiness</title><style>"
        "body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;border-bottom:1px solid #ddd}"
        ".late,.overdue{background:#fde2e2}.on-time{background:#e6f4ea}</style></head><body>"
        f"<h1>Readiness of {e(plan_name)}: {data['days_left']} days to the night ({e(data['night'])})</h1>"
        f"<p>Week of {e(data['today'])}: {data['on_time']} milestones on time, {data['late']} late, "
        f"{data['overdue']} overdue.</p><h2>Timeline: planned against actual</h2><table><tr><th>milestone</th>"
        f"<th>planned</th><th>recorded</th><th>status</th><th>days late</th></tr>{rows}</table>"
        f"<h2>Rehearsals</h2><p>{rh['done']} done ({rh['complete']} complete) of {rh['planned_total']} planned, "
        f"{rh['planned_by_today']} due by today; last: {e(str(rh['last_outcome']))}.</p>"
        f"<h2>Risks</h2><ul>{risks}</ul></body></html>")
