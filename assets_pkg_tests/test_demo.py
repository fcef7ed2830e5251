"""`assets-pkg demo` end to end on tiny generated data, in a temp data root."""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# What the demo materializes or exports (the inbox is its input, .dagster its run history).
OUTPUTS = ("warehouse", "exports", "cache")
# The ad-hoc log window's manifest records how the window was served (miss, then hit).
WINDOW_MANIFEST = re.compile(r"exports/logs/[^/]+/window_\d+_\d+\.json")


def _demo(env: dict) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "assets_pkg.cli", "demo", "--scale", "test"],
        capture_output=True, text=True, timeout=900, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "demo OK" in proc.stdout
    return proc.stdout


def _sections(report: str) -> dict[str, str]:
    """The report's ``== <name>`` sections by name."""
    parts = re.split(r"^== (\w+).*$", report, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def _snapshot(root: Path) -> dict[str, str]:
    """{path under the data root: md5} of every output file, temp files included."""
    return {
        p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for folder in OUTPUTS for p in sorted((root / folder).rglob("*")) if p.is_file()
    }


@pytest.mark.slow
def test_demo_runs_every_domain_and_a_second_run_is_idempotent(data_root):
    env = {**os.environ, "ASSETS_PKG_DATA_DIR": str(data_root), "DAGSTER_HOME": str(data_root / ".dagster")}
    report = _demo(env)
    first = _sections(report)
    # it ends with what to do next: the UI, the inbox folders, where the outputs are
    nxt = report[report.index("== Next"):]
    assert "make ui" in nxt and "http://127.0.0.1:3000" in nxt
    assert str(data_root / "inbox" / "transactions") in nxt and str(data_root / "warehouse") in nxt
    assert "== Checks: every check of the demo's groups and the check evaluations" in report
    for section in ("ingest", "splits", "summary", "logs", "timeseries"):
        assert section in first
    assert (data_root / "warehouse" / "ingest" / "files" / "orders").is_dir()
    before = _snapshot(data_root)
    windows = {k: json.loads((data_root / k).read_text()) for k in before if WINDOW_MANIFEST.fullmatch(k)}
    assert windows and all(w["decision"] == "miss" for w in windows.values())
    assert "0" not in re.findall(r"fetched=\s*(\d+)", first["logs"])
    assert "launched 1 run(s)" in first["timeseries"]
    runs, materializations = _runs_and_materializations()
    _assert_runs_belong_to_the_code_location(runs, env)
    assert not (data_root / ".dagster" / "demo_sensor_cursors.json").exists()
    _assert_sensors_request_nothing()

    # the same command again over the same inboxes: still green, no run, nothing rebuilt
    again = _demo(env)
    second = _sections(again)
    assert "generated sample inputs for: none" in again
    assert "launched 1 run(s)" in first["ingest"] and "launched 0 run(s)" in second["ingest"]
    assert "launched 1 run(s)" in first["splits"] and "launched 0 run(s)" in second["splits"]
    assert "plan: new batch files: 1" in first["summary"]
    assert "plan: new batch files: 0 []" in second["summary"] and "months to rebuild: none" in second["summary"]
    assert "nothing to run" in second["logs"] and "launched 0 run(s)" in second["timeseries"]
    assert _runs_and_materializations() == (runs, materializations)
    assert _snapshot(data_root) == before


def _runs_and_materializations():
    """(run ids, number of materialization events) in the instance at DAGSTER_HOME."""
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        runs = sorted(r.run_id for r in instance.get_runs())
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(["summary", "account_summary"])),
                                                  limit=10_000).records
        total = len(records)
        for key in instance.get_asset_keys():
            if key != dg.AssetKey(["summary", "account_summary"]):
                total += len(instance.fetch_materializations(key, limit=10_000).records)
    return runs, total


def _code_location_snapshots(env: dict) -> dict:
    """{job: snapshot id} as a code server started with ``env`` loads the definitions."""
    code = ("import json; from assets_pkg.definitions import defs\n"
            "print(json.dumps({j.name: j.get_job_snapshot_id() for j in defs.resolve_all_job_defs()}))")
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _assert_runs_belong_to_the_code_location(run_ids, env: dict) -> None:
    """Every demo run is a run of a named job of the code location `make ui` serves: listed
    in that job's Runs tab (repository label), with the job's own snapshot (re-execution
    without a version warning)."""
    import dagster as dg
    from dagster._core.storage.tags import REPOSITORY_LABEL_TAG

    snapshots = _code_location_snapshots(env)
    jobs = {"ingest_job", "splits_job", "summary_job", "logs_daily_job", "logs_fetch_window_job", "timeseries_daily"}
    with dg.DagsterInstance.get() as instance:
        runs = [instance.get_run_by_id(run_id) for run_id in run_ids]
        assert {run.job_name for run in runs} == jobs
        for job in jobs:  # the query of a job's Runs tab (dagster_graphql resolve_runs)
            listed = instance.get_runs(filters=dg.RunsFilter(
                job_name=job, tags={REPOSITORY_LABEL_TAG: "__repository__@assets_pkg"}))
            assert sorted(r.run_id for r in listed) == sorted(r.run_id for r in runs if r.job_name == job)
        for run in runs:  # the whole job, with the snapshot the code location gives it
            assert not run.asset_selection, run.job_name
            assert run.job_snapshot_id == snapshots[run.job_name], run.job_name


def _assert_sensors_request_nothing() -> None:
    """The real sensors, evaluated with the cursors the demo left in the instance (what
    the daemon would do when switched on), request no run."""
    import dagster as dg

    from assets_pkg.definitions import defs
    from assets_pkg.location import stored_cursor

    with dg.DagsterInstance.get() as instance:
        for sensor in defs.sensors:
            cursor = stored_cursor(instance, sensor.name)
            assert cursor, sensor.name
            with dg.build_sensor_context(instance_ref=instance.get_ref(), cursor=cursor, definitions=defs,
                                         sensor_name=sensor.name) as context:
                data = sensor.evaluate_tick(context)
            assert not data.run_requests, (sensor.name, data.run_requests)


def test_the_report_counts_check_evaluations_and_next_steps_name_every_inbox(data_root):
    import dagster as dg

    from assets_pkg.demo.framework import DemoReport
    from assets_pkg.demo.runner import DEMO_DOMAINS, demo_module, next_steps
    from assets_pkg.settings import get_settings

    report = DemoReport()
    key = dg.AssetKey(["summary", "account_summary"])
    report.record_check_evaluations([
        dg.AssetCheckEvaluation(asset_key=key, check_name="c", passed=passed, severity=dg.AssetCheckSeverity.ERROR)
        for passed in (True, True, False)])
    report.expect_checks([("summary/account_summary", "c"), ("summary/latest_summary", "never_run")])
    lines = report.render().splitlines()
    assert ["FAIL", "summary/account_summary:c", "2", "passed", "1", "failed", "[ERROR]"] in [l.split() for l in lines]
    # a check no run of this demo evaluated is listed too, saying so
    assert "   --    summary/latest_summary:never_run  not evaluated in this demo (no run of its asset)" in lines
    assert "a count of evaluations, not of partitions" in report.render()
    text = next_steps(get_settings(), DEMO_DOMAINS)
    for domain in DEMO_DOMAINS:
        assert f"{data_root / 'inbox' / demo_module(domain).INBOX}/" in text
    assert "make ui" in text and str(data_root / "exports") in text


@pytest.mark.slow
def test_dagster_console_lines_go_to_the_demo_log_and_every_check_is_listed(data_root):
    env = {**os.environ, "ASSETS_PKG_DATA_DIR": str(data_root), "DAGSTER_HOME": str(data_root / ".dagster")}
    log = data_root / ".dagster" / "demo.log"
    runs = []
    for _ in range(2):  # the second run has nothing new: its check is listed, not evaluated
        proc = subprocess.run([sys.executable, "-m", "assets_pkg.cli", "demo", "--scale", "test", "--only", "ingest"],
                              capture_output=True, text=True, timeout=600, env=env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        # nothing of Dagster's in front of the report: its lines are in the log the report names
        assert " - dagster - " not in proc.stdout + proc.stderr
        assert f"Dagster's log of these runs (DEBUG events, progress, tracebacks): {log}" in proc.stdout
        runs.append(proc.stdout)
        if len(runs) == 1:  # (the second run launches none)
            assert " - dagster - " in log.read_text()
    first, second = (_sections(r)["Checks"].splitlines() for r in runs)
    # reject_rate is evaluated per ingested file (partition): one evaluation each, none failed
    assert any(line.split()[:2] == ["PASS", "ingest/files:reject_rate"]
               and re.search(r"\b[1-9]\d* passed\s+0 failed", line) for line in first)
    assert any(line.split()[:2] == ["--", "ingest/files:reject_rate"] and "not evaluated" in line for line in second)
