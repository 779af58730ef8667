"""The peak replay's arithmetic: pgbench's arguments and logs, client activity, PgBouncer's wait figures."""

from __future__ import annotations

import pytest

from bascule.preparation import peak

pytestmark = pytest.mark.unit


def test_settings_keep_every_client_active_and_name_the_field():
    assert peak.PeakSettings().clients == 500
    with pytest.raises(ValueError, match=r"rate_tps must be at least clients / 2 = 250 .*\(got 200\)"):
        peak.PeakSettings(clients=500, rate_tps=200)
    with pytest.raises(ValueError, match="threads must be 1..clients"):
        peak.PeakSettings(clients=4, rate_tps=4, threads=8)
    with pytest.raises(ValueError, match="no pgbench script nope.sql"):
        peak.PeakSettings(workload={"nope": 1})


def test_the_mix_is_mostly_reads_and_every_script_exists():
    settings = peak.PeakSettings()
    reads = sum(w for n, w in settings.workload.items() if n in peak.READ_SCRIPTS)
    assert reads / sum(settings.workload.values()) > 0.5
    assert {"observation_insert", "note_insert", "prescription_insert", "encounter_transfer"} <= set(settings.workload)


def test_pgbench_goes_through_the_pooler_with_a_schedule_and_a_latency_limit():
    settings = peak.PeakSettings(clients=500, rate_tps=600, duration_s=30, threads=2, latency_limit_ms=1500)
    args = peak.peak_pgbench_args(settings, variables={"min_pid": 1, "max_pid": 9}, log_prefix="tx")
    assert args[args.index("-M") + 1] == "simple"  # transaction pooling: no protocol-level prepared statements
    assert args[args.index("-c") + 1] == "500" and args[args.index("-j") + 1] == "2"
    assert args[args.index("--rate") + 1] == "600" and args[args.index("--latency-limit") + 1] == "1500"
    assert args[args.index("-T") + 1] == "30" and "--log" in args and "--log-prefix=tx" in args
    scripts = [a for a in args if a.endswith(("@45", "@20"))]
    assert [s.rsplit("/", 1)[1] for s in scripts] == ["chart_read.sql@45", "patient_search.sql@20"]
    assert "min_pid=1" in args and "max_pid=9" in args


def _log(tmp_path, lines):
    path = tmp_path / "tx.123"
    path.write_text("\n".join(lines) + "\n")
    return [path]


def test_logs_give_latency_per_type_skips_failures_and_per_client_counts(tmp_path):
    # client_id transaction_no time(us) script_no epoch us schedule_lag
    paths = _log(tmp_path, [
        "0 0 1500 0 1700000000 1 200",
        "0 1 2500 1 1700000001 1 100",
        "1 0 skipped 0 1700000001 5 2100000",
        "1 1 900 0 1700000002 1 0",
        "2 0 failed 1 1700000002 9 0",
        "garbage line",
    ])
    log = peak.parse_peak_logs(paths, ["chart_read", "patient_search"])
    assert log.latencies_ms == {"chart_read": [1.5, 0.9], "patient_search": [2.5]}
    assert log.skipped == {"chart_read": 1} and log.failed == {"patient_search": 1}
    assert log.per_client == {0: 2, 1: 1} and log.done == 3
    with pytest.raises(ValueError, match="script number 1 but only 1 scripts ran"):
        peak.parse_peak_logs(paths, ["chart_read"])


def test_a_client_is_active_with_one_transaction_every_two_seconds(tmp_path):
    settings = peak.PeakSettings(clients=3, rate_tps=3, duration_s=4, workload={"chart_read": 1})
    # Client 0: 2 transactions in 4 s (active), client 1: 1 (not), client 2: none.
    paths = _log(tmp_path, ["0 0 1000 0 1 1 0", "0 1 3000 0 2 1 0", "1 0 2000 0 3 1 0"])
    run = peak.summarise(peak.parse_peak_logs(paths, ["chart_read"]), side="source", settings=settings, repeat=0,
                         pool_wait={"maxwait_ms_p95": 0.0})
    assert (run.active_clients, run.min_client_tx, run.transactions, run.tps) == (1, 0, 3, 0.8)
    assert run.p95_ms == 2.9 and run.p99_ms == 2.98
    (stat,) = run.stats
    assert (stat.script, stat.clients, stat.transactions, stat.p50_ms) == ("chart_read", 3, 3, 2.0)


def test_pgbouncer_wait_from_show_pools_samples_and_show_stats_counters():
    pools = [{"database": "clinic", "user": "clinic_app", "maxwait": "1", "maxwait_us": "250000"},
             {"database": "clinic", "user": "other", "maxwait": "0", "maxwait_us": "5000"},
             {"database": "pgbouncer", "user": "pgbouncer", "maxwait": "9", "maxwait_us": "0"}]
    assert peak.pool_maxwait_ms(pools, "clinic") == 1250.0
    assert peak.pool_maxwait_ms(pools, "clinic_smoke") == 0.0
    stats = [{"database": "clinic", "total_xact_count": "1200", "total_wait_time": "600000"}]
    assert peak.stats_counters(stats, "clinic") == (1200, 600000)
    assert peak.stats_counters(stats, "x") == (0, 0)  # no client has used it since PgBouncer started
    figures = peak.pool_wait_figures([0.0] * 19 + [40.0], (200, 100000), (1200, 600000))
    assert figures == {"maxwait_ms_p95": 2.0, "maxwait_ms_max": 40.0, "samples": 20, "wait_ms_per_xact": 0.5,
                       "pooled_xacts": 1000}
    assert peak.pool_wait_figures([], (0, 0), (0, 0))["wait_ms_per_xact"] == 0.0


def _run(side, tps, p95, p99, wait):
    return peak.PeakRun(side=side, clients=500, duration_s=60, transactions=0, skipped=0, failed=0, tps=tps,
                        p95_ms=p95, p99_ms=p99, active_clients=500, min_client_tx=31, stats=(),
                        pool_wait={"maxwait_ms_p95": wait})


def test_the_last_line_takes_medians_and_the_worse_sides_pool_wait():
    line = peak.figures_line([_run("source", 500.0, 10.0, 20.0, 1.0), _run("source", 498.0, 12.0, 30.0, 3.0)],
                             [_run("target", 499.0, 9.0, 19.0, 0.5), _run("target", 497.0, 8.0, 18.0, 0.7)])
    assert line == ("clients=500 tps_source=499.0 tps_target=498.0 p95_ms_source=11.00 p95_ms_target=8.50 "
                    "p99_ms_source=25.00 p99_ms_target=18.50 pool_wait_ms_p95=2.00")


def test_pgbench_through_a_pooler_sends_no_startup_options(monkeypatch, tmp_path):
    import subprocess

    from bascule.hooks import assessment

    hook = assessment.AssessmentHook(db_conn_id="hosp_endpoint_app")
    monkeypatch.setattr(hook, "libpq_env", lambda **kw: {"PGOPTIONS": "-c TimeZone=UTC", "PGHOST": "pooler"})
    seen = []

    def fake_run(argv, **kwargs):
        seen.append(kwargs["env"])
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(assessment.subprocess, "run", fake_run)
    hook.run_pgbench(["-n"], dbname="clinic", cwd=tmp_path, timeout_s=5, pooled=True)
    hook.run_pgbench(["-n"], dbname="clinic", cwd=tmp_path, timeout_s=5)
    assert "PGOPTIONS" not in seen[0] and seen[0]["PGHOST"] == "pooler"
    assert seen[1]["PGOPTIONS"] == "-c TimeZone=UTC"


def test_the_readiness_report_shows_the_peak_per_transaction_type_source_against_target(tmp_path):
    from bascule.preparation import readiness, replay

    settings = peak.PeakSettings(clients=500, rate_tps=500, duration_s=2,
                                 workload={"chart_read": 3, "note_insert": 1})
    runs = []
    for side, base in (("source", 1000), ("target", 800)):
        for repeat in range(2):
            lines = [f"{c} 0 {base + 10 * c + repeat} {c % 2} 1 1 0" for c in range(500)]
            log = peak.parse_peak_logs(_log(tmp_path, lines), list(settings.workload))
            runs.append(peak.summarise(log, side=side, settings=settings, repeat=repeat, pool_wait={}))
    verdicts = replay.compare_runs([s for r in runs for s in r.stats])
    assert {(v.script, v.clients) for v in verdicts} == {("chart_read", 500), ("note_insert", 500)}
    html = readiness.render(readiness.build_context(plan_name="lab", budget_s=600,
                                                    replay={"verdicts": [v.to_json() for v in verdicts]}))
    section = html[html.index('<section id="replay">'):]
    section = section[:section.index("</section>")]
    chart = next(v for v in verdicts if v.script == "chart_read")
    assert "<td>chart_read</td><td class=\"num\">500</td>" in section
    assert f"{chart.source_p99_ms:.2f} / {chart.target_p99_ms:.2f}" in section
    assert f"{chart.source_tps:.1f} / {chart.target_tps:.1f}" in section and "note_insert" in section
