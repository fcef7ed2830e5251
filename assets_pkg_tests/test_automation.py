"""Automation on by default: the inbox sensors and the schedules start RUNNING in a fresh
instance unless ASSETS_PKG_AUTOMATION=off."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assets_pkg.settings import AUTOMATION_VAR, SettingError, automation_on

ROOT = Path(__file__).resolve().parent.parent
AUTOMATED = {"ingest_file_sensor", "splits_shard_sensor", "summary_batch_sensor", "timeseries_file_sensor",
             "logs_daily_schedule"}

PROBE = """
import json
from assets_pkg.definitions import defs
repo = defs.get_repository_def()
found = {d.name: d.default_status.value for d in [*repo.sensor_defs, *repo.schedule_defs]}
print(json.dumps(found))
"""


def _statuses(data_root, value):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(AUTOMATION_VAR, None)
    if value is not None:
        env[AUTOMATION_VAR] = value
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.mark.parametrize("value,expected", [(None, "RUNNING"), ("off", "STOPPED")])
def test_sensors_and_schedule_default_status_follows_the_setting(data_root, value, expected):
    found, _ = _statuses(data_root, value)
    assert AUTOMATED <= set(found)
    assert {name: found[name] for name in AUTOMATED} == {name: expected for name in AUTOMATED}


def test_a_bad_value_warns_naming_it_and_the_code_location_loads_with_automation_on(data_root):
    found, stderr = _statuses(data_root, "sometimes")
    assert {found[name] for name in AUTOMATED} == {"RUNNING"}
    assert f"{AUTOMATION_VAR}='sometimes' is not one of on, off" in stderr


@pytest.mark.parametrize("value,on", [("on", True), (" ON ", True), ("off", False), (" OFF ", False), ("", True)])
def test_the_setting_reads_on_and_off(monkeypatch, value, on):
    monkeypatch.setenv(AUTOMATION_VAR, value)
    assert automation_on() is on


def test_a_bad_value_is_a_setting_error_naming_the_variable(monkeypatch):
    monkeypatch.setenv(AUTOMATION_VAR, "sometimes")
    with pytest.raises(SettingError, match=f"{AUTOMATION_VAR}='sometimes' is not one of on, off"):
        automation_on()


def test_a_bad_value_warning_names_the_variable(monkeypatch):
    from assets_pkg.dagster_layer import sensor_status

    monkeypatch.setenv(AUTOMATION_VAR, "sometimes")
    with pytest.warns(UserWarning, match=AUTOMATION_VAR):
        assert sensor_status().value == "RUNNING"


def test_readme_lists_the_automation_setting_and_how_to_operate():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"| `{AUTOMATION_VAR}` |" in readme
    assert "## Operate it" in readme
