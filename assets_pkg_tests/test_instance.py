"""The project's Dagster instance is created once, however many processes start together."""

import os
import subprocess
import sys
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
