"""The project's Dagster instance is created once, however many processes start together."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assets_pkg.instance import INIT_LOCK_NAME, open_instance

# Each process opens the instance through the project's entry point and writes to it.
OPEN_AND_WRITE = """
import os, sys
from assets_pkg.instance import open_instance
with open_instance() as instance:
    instance.add_dynamic_partitions("starters", [sys.argv[1]])
    instance.get_runs(limit=5)
print("ok")
"""


def _env(home: Path) -> dict:
    repo = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "ASSETS_PKG_DATA_DIR": str(home.parent), "DAGSTER_HOME": str(home),
            "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}


@pytest.mark.slow
def test_four_processes_opening_a_fresh_home_at_once_all_succeed(tmp_path, monkeypatch):
    for round_no in range(5):
        home = tmp_path / f"round{round_no}" / ".dagster"
        env = _env(home)
        procs = [subprocess.Popen([sys.executable, "-c", OPEN_AND_WRITE, f"p{i}"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(3)]
        # the fourth is the CLI command the Makefile runs before `dagster dev`
        procs.append(subprocess.Popen([sys.executable, "-m", "assets_pkg.cli", "init"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        outputs = [p.communicate(timeout=300) for p in procs]
        for proc, (out, err) in zip(procs, outputs):
            assert proc.returncode == 0, f"round {round_no}: {err[-3000:]}"
        assert "Dagster instance ready at" in outputs[-1][0]
        # usable afterwards, and it holds every process's write
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        with open_instance() as instance:
            assert sorted(instance.get_dynamic_partitions("starters")) == ["p0", "p1", "p2"]
        assert (home / "dagster.yaml").read_text().startswith("telemetry:")


def test_open_instance_creates_the_home_its_config_and_lock(data_root, monkeypatch):
    home = data_root / "elsewhere" / ".dagster"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with open_instance() as instance:
        assert instance.get_runs() == []
    assert (home / "dagster.yaml").is_file()
    assert (home / INIT_LOCK_NAME).is_file()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")
    with open_instance():
        pass
    assert "enabled: true" in (home / "dagster.yaml").read_text()  # a user's config is kept


# A real run of a real job, through the project's entry points, in a process of its own: its
# step kills the process (SIGKILL: no handler runs) or waits for a go file.
RUN_AND_DIE = """
import os, signal, sys, time
from pathlib import Path
import dagster as dg
from assets_pkg.dagster_layer import materialize_selection
from assets_pkg.instance import open_instance

@dg.asset
def doomed():
    Path(sys.argv[2]).write_text("started")
    if sys.argv[1] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    while not Path(sys.argv[2] + ".go").exists():
        time.sleep(0.05)
    return 1

with open_instance() as instance:
    materialize_selection(dg.Definitions(assets=[doomed]), instance, [doomed])
"""


def _only_run(instance):
    runs = instance.get_runs()
    assert len(runs) == 1
    return runs[0]


@pytest.mark.slow
def test_a_run_left_started_by_a_killed_process_is_failed_by_the_next_open(data_root, tmp_path, capsys):
    import dagster as dg

    marker = tmp_path / "started"
    proc = subprocess.run([sys.executable, "-c", RUN_AND_DIE, "kill", str(marker)], env=_env(data_root / ".dagster"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert marker.exists()
    with dg.DagsterInstance.get() as instance:  # a plain open: the run shows as running forever
        assert _only_run(instance).status == dg.DagsterRunStatus.STARTED
    with open_instance() as instance:
        run = _only_run(instance)
        assert run.status == dg.DagsterRunStatus.FAILURE
        failures = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert len(failures) == 1
        assert "left STARTED by process" in failures[0].message
        assert "no longer runs" in failures[0].message
    assert f"run {run.run_id} was left STARTED by a process that is gone" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_of_a_live_process_is_left_running(data_root, tmp_path):
    import dagster as dg

    marker = tmp_path / "started"
    proc = subprocess.Popen([sys.executable, "-c", RUN_AND_DIE, "wait", str(marker)], env=_env(data_root / ".dagster"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:] if proc.poll() else ""
            time.sleep(0.1)
        with open_instance() as instance:
            assert _only_run(instance).status == dg.DagsterRunStatus.STARTED
    finally:
        Path(str(marker) + ".go").write_text("go")
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    with open_instance() as instance:
        assert _only_run(instance).status == dg.DagsterRunStatus.SUCCESS


def test_the_instance_written_by_the_project_monitors_runs(data_root):
    with open_instance() as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["poll_interval_seconds"] <= 30
        assert instance.run_monitoring_start_timeout_seconds > 0


def test_an_instance_config_of_an_earlier_release_is_upgraded_a_user_edited_one_kept(data_root):
    config = data_root / ".dagster" / "dagster.yaml"
    config.write_text("telemetry:\n  enabled: false\n")
    with open_instance() as instance:
        assert instance.run_monitoring_enabled
    config.write_text("telemetry:\n  enabled: true\n")
    with open_instance() as instance:
        assert not instance.run_monitoring_enabled
    assert config.read_text() == "telemetry:\n  enabled: true\n"
