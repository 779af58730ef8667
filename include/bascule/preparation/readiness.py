"""The readiness report: one self-contained HTML page for the go/no-go meeting.

Inline CSS, charts as inline SVG drawn by matplotlib (text kept as text, so the
figures are readable in the DOM), no script and no external URL: the hospital
network is closed. It is built only from names, counts, durations and sizes.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bascule.today import parse_instant

TEMPLATE_DIR = Path(__file__).with_name("templates")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.find("<svg"):]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"
    matplotlib.rcParams["svg.hashsalt"] = "bascule"
    import matplotlib.pyplot as plt

    return plt


def lag_chart(points: Sequence[tuple[str, float]], threshold_s: float | None) -> str | None:
    if not points:
        return None
    plt = _pyplot()
    xs = [parse_instant(str(t)) for t, _ in points]
    ys = [float(v) for _, v in points]
    fig, ax = plt.subplots(figsize=(9, 2.6))
    ax.plot(xs, ys, color="#2a6f97", linewidth=1.2)
    if threshold_s is not None:
        ax.axhline(threshold_s, color="#d9534f", linestyle="--", linewidth=1, label=f"threshold {threshold_s:g} s")
        ax.legend(loc="upper right")
    ax.set_ylabel("lag (s)")
    fig.autofmt_xdate()
    return _svg(fig)


def gantt_chart(rehearsals: Sequence[Mapping[str, Any]]) -> str | None:
    if not rehearsals:
        return None
    plt = _pyplot()
    rows = []
    for r in rehearsals:
        t0 = min(parse_instant(s["started_at"]) for s in r["steps"])
        for s in r["steps"]:
            start = (parse_instant(s["started_at"]) - t0).total_seconds()
            rows.append((f"{r['run_id'][-18:]} | {s['step']}", start, float(s["actual_s"]),
                         bool(s.get("critical_path", True))))
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(rows) + 1.2))
    for i, (_label, start, dur, crit) in enumerate(rows):
        ax.barh(i, max(dur, 0.05), left=start, color="#d9534f" if crit else "#5bc0de")
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the run's first step (red: critical path)")
    return _svg(fig)


def bar_chart(labels: Sequence[str], values: Sequence[float], *, ylabel: str, colors: Sequence[str] | None = None
              ) -> str | None:
    if not labels:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.bar(range(len(labels)), values, color=list(colors) if colors else "#2a6f97")
    ax.set_xticks(range(len(labels)), labels, fontsize=8, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    return _svg(fig)


def build_context(
    *,
    plan_name: str,
    budget_s: float,
    lag_points: Sequence[tuple[str, float]] = (),
    lag_threshold_s: float | None = None,
    rehearsals: Mapping[str, Any] | None = None,
    validation_runs: Sequence[Mapping[str, Any]] = (),
    storage: Mapping[str, Any] | None = None,
    findings: Sequence[Mapping[str, Any]] = (),
    replay: Mapping[str, Any] | None = None,
    schema_diff: Mapping[str, Any] | None = None,
    generated_at: datetime | None = None,
) -> dict[str, Any]:
    """Everything the template shows, as plain values; every argument is optional except the plan."""
    rehearsals = rehearsals or {"rehearsals": [], "forecast": None, "comparison": []}
    open_findings = [f for fs in findings for f in fs.get("findings", []) if f.get("severity") != "PASS"]
    lags = [float(v) for _, v in lag_points]
    storage = dict(storage or {})
    storage_chart = None
    if storage.get("before_bytes") is not None and storage.get("after_bytes") is not None:
        storage_chart = bar_chart(["before", "after"], [storage["before_bytes"] / 1048576,
                                                       storage["after_bytes"] / 1048576],
                                  ylabel="MB on the target", colors=["#999999", "#5cb85c"])
    validation_chart = bar_chart([str(v.get("run_id", ""))[-16:] for v in validation_runs],
                                 [float(v.get("mismatched_rows") or 0) for v in validation_runs],
                                 ylabel="mismatched rows") if validation_runs else None
    return {
        "plan": plan_name,
        "generated_at": (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
        "budget_s": budget_s,
        "lag": {"points": len(lags), "max_s": max(lags) if lags else None, "last_s": lags[-1] if lags else None,
                "threshold_s": lag_threshold_s, "chart": lag_chart(lag_points, lag_threshold_s)},
        "rehearsals": rehearsals,
        "gantt": gantt_chart(rehearsals.get("rehearsals", [])),
        "validation_runs": list(validation_runs),
        "validation_chart": validation_chart,
        "storage": storage,
        "storage_chart": storage_chart,
        "findings": open_findings,
        "finding_sets": [{"stage": fs.get("stage"), "verdict": fs.get("verdict"), "counts": fs.get("counts")}
                         for fs in findings],
        "replay": replay,
        "schema_diff": schema_diff,
    }


def render(context: Mapping[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.ChainableUndefined)
    env.filters["mb"] = lambda b: "-" if b is None else f"{int(b) / 1048576:,.1f}"
    env.filters["secs"] = lambda s: "-" if s is None else f"{float(s):,.1f}"
    return env.get_template("readiness.html.j2").render(**context)


def write_report(context: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(context))
    return path


# --------------------------------------------------------------------------- headless Chromium


def chromium_binary() -> str:
    found = os.environ.get("BASCULE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise FileNotFoundError("chromium is not installed: apt-get install -y chromium (scripts/setup.sh does it)")
    return found


def _chromium(html: Path, *extra: str, timeout_s: float = 90) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="bascule-chromium-") as profile:
        return subprocess.run([chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra,
                               html.resolve().as_uri()], capture_output=True, text=True, timeout=timeout_s,
                              check=True)


def dump_dom(html: Path) -> str:
    """The DOM after Chromium rendered the page: what a person's browser shows."""
    return _chromium(html, "--dump-dom").stdout


def screenshot(html: Path, png: Path, *, width: int = 1280, height: int = 2400) -> Path:
    png.parent.mkdir(parents=True, exist_ok=True)
    _chromium(html, f"--screenshot={png.resolve()}", f"--window-size={width},{height}")
    if not png.exists() or png.stat().st_size == 0:
        raise RuntimeError(f"chromium produced no screenshot at {png}")
    return png
