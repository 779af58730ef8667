// The migration view's page: polls the plugin's JSON every 2 s while the run is active, then stops.
// Relative URLs only: the app is mounted under the API server's base path. No library, no CDN.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const text = (v, unit) => (v === null || v === undefined ? "-" : `${v}${unit || ""}`);
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => (k === "class" ? (node.className = v) : node.setAttribute(k, v)));
    children.forEach((c) => node.append(c instanceof Node ? c : document.createTextNode(String(c))));
    return node;
  };
  const fmtClock = (s) => {
    if (s === null || s === undefined) return "not frozen";
    const m = Math.floor(s / 60), r = Math.floor(s % 60);
    return `${String(m).padStart(2, "0")}:${String(r).padStart(2, "0")}`;
  };
  let selected = null, timer = null, tab = "night";

  async function getJSON(url) {
    const r = await fetch(url, { credentials: "same-origin" });
    if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
    return r.json();
  }

  function renderNight(n) {
    document.body.dataset.runState = n.state;
    const c = n.clock;
    $("clock").textContent = fmtClock(c.elapsed_s);
    $("clock").dataset.elapsed = c.elapsed_s === null ? "" : String(c.elapsed_s);
    $("clock-budget").textContent = `budget ${c.budget_s} s` + (c.budget_used_pct !== null ? ` (${c.budget_used_pct}% used)` : "");
    const pct = c.elapsed_s ? Math.min(100, (100 * c.elapsed_s) / c.budget_s) : 0;
    $("clock-bar").style.width = `${pct}%`;
    $("clock-bar").className = c.forecast_s !== null && c.forecast_s > c.budget_s ? "over" : pct > 75 ? "warn" : "";
    if (c.forecast_s !== null) {
      $("forecast-mark").style.display = "block";
      $("forecast-mark").style.left = `${Math.min(100, (100 * c.forecast_s) / c.budget_s)}%`;
      $("forecast").textContent = `forecast ${c.forecast_s} s` + (c.forecast_basis ? ` (rehearsed pace of ${c.forecast_basis})` : "");
    } else {
      $("forecast-mark").style.display = "none";
      $("forecast").textContent = c.forecast_basis ? "" : "no rehearsal to forecast from";
    }
    $("current").replaceChildren(...(n.current.length ? n.current.map((s) => el("div", { class: `state-${s.state}` }, `${s.step} (${s.state})`)) : [el("span", {}, n.active ? "between steps" : "nothing running")]));
    $("run-state").textContent = `run ${n.run_id}: ${n.state}` + (n.workers.length ? `; workers ${n.workers.join(", ")}` : "");
    const lag = n.lag;
    $("lag").replaceChildren(lag ? el("div", {}, `${lag.state || "?"}: lag ${text(lag.lag_seconds, " s")}, ${text(lag.lag_bytes, " bytes")}`, el("br"), `drain ETA ${lag.drain_eta_s === null || lag.drain_eta_s === undefined ? "under the threshold" : lag.drain_eta_s + " s"} (from ${lag.task_id})`) : el("span", { class: "muted" }, "no reading yet"));
    $("outcome").textContent = n.outcome ? n.outcome.toUpperCase() : n.active ? "in progress" : n.state;
    $("outcome").dataset.outcome = n.outcome || "";
    $("evidence-root").textContent = n.evidence_root ? `evidence root ${n.evidence_root}` : "";
    $("gates").replaceChildren(...n.gates.map((g) => {
      const li = el("li", { "data-gate": g.gate, class: g.waiting ? "waiting" : "" });
      if (g.waiting) {
        li.append(`${g.gate} is WAITING (${text(g.waited_s, " s")}) for ${g.who.join(", ") || "anyone with rights"}: `);
        li.append(el("a", { href: g.url, target: "_top", class: "required-action" }, "answer in Required Actions"));
      } else {
        li.append(`${g.gate}: ${g.answer || "not answered"}` + (g.by ? ` by ${g.by}` : "") + (g.reason ? `; reason: ${g.reason}` : "") + " ");
        li.append(el("a", { href: g.url, target: "_top" }, "record"));
      }
      return li;
    }));
    const total = Math.max(1, ...n.gantt.map((g) => g.offset_s + g.duration_s));
    $("gantt").replaceChildren(...n.gantt.map((g) => el("div", { class: "gantt-row", "data-step": g.task_id },
      el("div", { class: "gantt-label" }, `${g.step} ${g.duration_s.toFixed(1)} s`),
      (() => { const t = el("div", { class: "gantt-track" }); const b = el("div", { class: `gantt-bar${g.critical_path ? " critical" : ""}${g.open ? " open" : ""}` });
        b.style.left = `${(100 * g.offset_s) / total}%`; b.style.width = `${(100 * g.duration_s) / total}%`; t.append(b); return t; })())));
    if (n.writes) {
      const w = n.writes;
      $("writes").textContent = Object.entries(w).filter(([, v]) => typeof v !== "object").map(([k, v]) => `${k} ${v}`).join(", ");
    }
    $("steps").tBodies[0].replaceChildren(...n.steps.map((s) => el("tr", { "data-step": s.task_id },
      el("td", {}, s.step), el("td", { class: `state-${s.state}` }, s.state), el("td", {}, s.critical_path ? "yes" : ""),
      el("td", {}, text(s.seconds)), el("td", {}, s.worker || ""))));
  }

  function renderValidation(v) {
    $("validation").tBodies[0].replaceChildren(...v.tables.flatMap((t) => t.checks.map((c) => el("tr", { "data-table": t.table },
      el("td", {}, t.table), el("td", {}, c.check), el("td", {}, c.status || "-"), el("td", {}, text(c.rows_compared)),
      el("td", {}, `${text(c.ranges)} (${text(c.ranges_differing)} differing)`),
      el("td", {}, Object.entries(c.by_kind).map(([k, n]) => `${k} ${n}`).join(", ")),
      el("td", { class: "mono" }, Object.entries(c.keys).map(([k, ks]) => `${k}: ${ks.join(" ")}`).join("; ") + (c.keys_hashed ? " (hashed)" : ""))))));
    $("suites").replaceChildren(...v.suites.map((s) => el("li", {}, `${s.suite}: ${s.success ? "passed" : "FAILED"}`)));
  }

  function renderPreparation(p) {
    const r = p.rehearsals;
    $("readiness").replaceChildren(p.readiness_url ? el("a", { href: p.readiness_url, target: "_blank" }, `readiness report (prepare run ${p.prepare_run})`) : el("span", { class: "muted" }, "no readiness report yet"));
    $("forecast-prep").textContent = r.forecast ? `forecast downtime ${r.forecast.downtime_s} s of ${r.forecast.budget_s} s (${r.forecast.budget_used_pct}%), dominated by ${r.forecast.dominating_step}` : "no rehearsal yet";
    $("rehearsals").tBodies[0].replaceChildren(...r.rehearsals.map((x) => el("tr", {}, el("td", {}, x.run_id), el("td", {}, x.started_at), el("td", {}, x.outcome), el("td", {}, text(x.downtime_s)))));
    $("comparison").tBodies[0].replaceChildren(...r.comparison.map((x) => el("tr", {}, el("td", {}, x.step), el("td", {}, text(x.before_s)), el("td", {}, text(x.after_s)), el("td", {}, text(x.delta_s)))));
    $("storage").textContent = p.storage ? `${p.storage.before_bytes} -> ${p.storage.after_bytes} bytes (${p.storage.reduction_pct}% smaller)` : "no storage step run yet";
  }

  function renderAfter(a) {
    const rev = a.reverse;
    $("after").replaceChildren(
      el("p", {}, a.go_live_at ? `live on the target since ${a.go_live_at} (${a.since_go_live_s} s)` : "not live on the target"),
      el("p", {}, rev ? `reverse replication ${rev.state}: lag ${text(rev.lag_seconds, " s")}, ${text(rev.lag_bytes, " bytes")} at ${rev.observed_at}` : "no reverse replication reading from the monitor yet"),
      el("p", { id: "rollback-window" }, a.rollback_window_open ? "rollback window OPEN: reverse replication streams, the fallback DAG can run" : "rollback window closed (no streaming reverse flow)"));
  }

  async function refresh() {
    if (!selected) return;
    const [dag, run] = selected;
    const base = `api/%s/${encodeURIComponent(dag)}/${encodeURIComponent(run)}`;
    try {
      const n = await getJSON(base.replace("%s", "night"));
      renderNight(n);
      if (tab === "validation") renderValidation(await getJSON(base.replace("%s", "validation")));
      if (tab === "preparation") renderPreparation(await getJSON("api/preparation"));
      if (tab === "after" && dag === "cutover") renderAfter(await getJSON(base.replace("%s", "after")));
      $("refresh").textContent = n.active ? `live, refreshed ${new Date().toLocaleTimeString()}` : "run finished; not refreshing";
      clearTimeout(timer);
      if (n.active) timer = setTimeout(refresh, 2000);
    } catch (e) {
      $("refresh").textContent = String(e.message);
      clearTimeout(timer);
      timer = setTimeout(refresh, 5000);
    }
  }

  async function loadRuns() {
    const { runs } = await getJSON("api/runs");
    const sel = $("run-select");
    sel.replaceChildren(...runs.map((r) => el("option", { value: JSON.stringify([r.dag_id, r.run_id]) }, `${r.dag_id} ${r.run_id} (${r.state})`)));
    const wanted = new URLSearchParams(location.search).get("run");
    const pick = runs.find((r) => r.run_id === wanted) || runs[0];
    if (pick) { selected = [pick.dag_id, pick.run_id]; sel.value = JSON.stringify(selected); }
    else {
      // Opened before the night starts: look again until a run appears, then follow it.
      $("refresh").textContent = "no run you may read yet";
      setTimeout(() => loadRuns().then(refresh), 3000);
    }
  }

  document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => {
    tab = b.dataset.tab;
    document.querySelectorAll("#tabs button").forEach((x) => x.classList.toggle("active", x === b));
    document.querySelectorAll("main section").forEach((s) => (s.hidden = s.id !== `tab-${tab}`));
    refresh();
  }));
  $("run-select").addEventListener("change", (e) => { selected = JSON.parse(e.target.value); refresh(); });
  loadRuns().then(refresh);
})();
