"""The code location loads, and every asset and check is documented for the UI."""

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from assets_pkg.definitions import defs
from assets_pkg.domains import DOMAINS


def test_every_domain_contributes_assets():
    groups = {spec.group_name for spec in defs.resolve_all_asset_specs()}
    assert set(DOMAINS) <= groups


def test_every_asset_has_a_description_kinds_and_group():
    for spec in defs.resolve_all_asset_specs():
        assert spec.description, f"{spec.key.to_user_string()} has no description"
        assert spec.kinds, f"{spec.key.to_user_string()} has no kinds"
        assert spec.group_name in DOMAINS, f"{spec.key.to_user_string()} is in group {spec.group_name}"
        assert spec.key.path[0] == spec.group_name, f"{spec.key.to_user_string()} is not prefixed by its group"


def test_every_asset_check_has_a_description():
    graph = defs.resolve_asset_graph()
    for check_key in graph.asset_check_keys:
        spec = graph.get_check_spec(check_key)
        assert spec.description, f"check {check_key.name} on {check_key.asset_key.to_user_string()} has no description"


@pytest.mark.slow
def test_dagster_definitions_validate(data_root):
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "assets_pkg.definitions"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_named_job_runs_with_the_launchpad_defaults():
    """The config the launchpad opens with (no field set) is valid for every named job:
    no job opens with a missing-config error."""

    named = [job for job in defs.resolve_all_job_defs() if not job.name.startswith("__")]
    assert {job.name for job in named} >= {"splits_job", "summary_job", "ingest_job", "logs_daily_job",
                                           "logs_fetch_window_job", "timeseries_daily"}
    for job in named:
        assert dg.validate_run_config(job, {}), job.name


def test_fetch_window_defaults_to_yesterday_of_the_first_log(monkeypatch):
    import datetime as dt

    from assets_pkg.logs.jobs import FetchWindowConfig
    from assets_pkg.logs.planner import day_window

    monkeypatch.setenv("LOG_IDS", "web,app")
    start, end = day_window("2025-03-01")
    assert FetchWindowConfig().window(today=dt.date(2025, 3, 2)) == ("web", str(start), str(end))
    assert FetchWindowConfig(log_id="app", start="2025-01-01").window(today=dt.date(2025, 3, 2)) == (
        "app", "2025-01-01", str(end))


def test_demo_runs_carry_the_location_name_make_ui_serves():
    """The demo's runs and sensor cursors are keyed by the code location's name: it must be
    workspace.yaml's, or the UI and the daemon would not find them."""
    import yaml

    from assets_pkg.location import DEFINITIONS_MODULE, LOCATION_NAME, repository_origin

    workspace = yaml.safe_load((Path(__file__).resolve().parents[1] / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    assert entry["python_module"] == {"module_name": DEFINITIONS_MODULE, "location_name": LOCATION_NAME}
    assert repository_origin().get_label() == f"__repository__@{LOCATION_NAME}"


# Dagster gives a job every resource with config it can reach; these are the ones each
# job's steps use (``io_manager`` is on every job: Dagster always binds one).
RESOURCES_BY_JOB = {
    "ingest_job": {"io_manager"},
    "splits_job": {"io_manager", "duckdb", "split_config"},
    "summary_job": {"io_manager", "duckdb"},
    "timeseries_daily": {"io_manager", "duckdb"},
    "logs_daily_job": {"io_manager", "log_source"},
    "logs_fetch_window_job": {"io_manager", "log_source", "logs_result_io_manager"},
}


def launchpad_resources(job: dg.JobDefinition) -> tuple[set, set]:
    """(resources in the job's run config schema, resources in the YAML the launchpad pre-fills,
    computed as the webserver computes ``rootDefaultYaml`` from the job's snapshot)."""
    import yaml
    from dagster._core.snap import JobSnap
    from dagster._core.snap.snap_to_yaml import default_values_yaml_from_type_snap

    in_schema = set(job.run_config_schema.config_type.fields["resources"].config_type.fields)
    snap = JobSnap.from_job_def(job)
    root = snap.config_schema_snapshot.get_config_snap(snap.mode_def_snaps[0].root_config_key)
    prefilled = yaml.safe_load(default_values_yaml_from_type_snap(snap.config_schema_snapshot, root)) or {}
    return in_schema, set(prefilled.get("resources", {}))


def test_each_job_shows_only_the_resources_it_uses():
    """summary_job's launchpad has no split_config, ingest_job no duckdb, no asset job the
    logs' result IO manager: a resource reaches only the jobs whose steps require it."""
    for name, expected in RESOURCES_BY_JOB.items():
        in_schema, prefilled = launchpad_resources(defs.resolve_job_def(name))
        assert in_schema == expected, name
        assert prefilled <= expected, name
    assert "split_config" in launchpad_resources(defs.resolve_job_def("splits_job"))[1]
