"""Dagster layer of the logs domain: assets + in-op checks, the window job, the CLI, the schedule."""

import json
from datetime import datetime, timezone

import dagster as dg
import pytest

from assets_pkg.logs.assets import log_events, log_summary
from assets_pkg.logs.cli import main
from assets_pkg.logs.definitions import defs as logs_defs
from assets_pkg.logs.partitions import partition_key
from assets_pkg.logs.planner import day_window
from assets_pkg.logs.resources import LogSourceResource
from assets_pkg.logs.schedules import logs_daily_schedule
from assets_pkg.logs.sources import HttpLogSource, LocalLogSource
from assets_pkg.settings import SettingError
from assets_pkg_tests.fake_log_api import FakeLogApi, make_events

DAY = "2025-01-02"
D0, D1 = day_window(DAY)


@pytest.fixture
def api(monkeypatch):
    events = make_events("app", D0 - 3_600_000, D1 + 3_600_000, 60_000)  # one per minute
    with FakeLogApi({"app": events, "web": make_events("web", D0, D1, 600_000)}) as server:
        monkeypatch.setenv("LOG_SOURCE", "http")
        monkeypatch.setenv("LOG_API_URL", server.url)
        yield server


def materialize(instance, key, assets=(log_events, log_summary), run_config=None):
    return dg.materialize(list(assets), partition_key=key, instance=instance, run_config=run_config,
                          resources={"log_source": LogSourceResource()})


def meta(result, name):
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if mat.asset_key.path[-1] == name:
            return {k: v.value for k, v in mat.metadata.items()}
    raise AssertionError(name)


def test_resource_selects_source_from_env(monkeypatch, data_root):
    monkeypatch.delenv("LOG_SOURCE", raising=False)
    assert isinstance(LogSourceResource().build(), LocalLogSource)
    monkeypatch.setenv("LOG_SOURCE", "http")
    monkeypatch.setenv("LOG_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("LOG_API_TOKEN", "tok")
    src = LogSourceResource().build()
    assert isinstance(src, HttpLogSource) and src.token == "tok"
    monkeypatch.setenv("LOG_SOURCE", "ftp")
    with pytest.raises(SettingError, match="LOG_SOURCE"):
        LogSourceResource().build()


def test_partition_materializes_with_checks_then_hits(instance, data_root, api):
    key = partition_key("app", DAY)
    result = materialize(instance, key)
    assert result.success
    events, summary = meta(result, "log_events"), meta(result, "log_summary")
    assert events["decision"] == "miss" and events["rows_fetched"] == 1440
    assert events["dagster/row_count"] == 1440 and events["segments_written"] == 1
    assert summary["dagster/row_count"] == 1440 and summary["window_covered"] is True
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"no_overlapping_segments": True, "segments_readable": True, "window_covered": True,
                      "unique_event_ids": True}
    out = json.loads((data_root / "exports" / "logs" / "app" / f"summary_{D0}_{D1}.json").read_text())
    assert out["row_count"] == 1440 and out["timestamp_min"] == D0 and out["timestamp_max"] == D1 - 60_000
    calls = len(api.requests)
    again = materialize(instance, key, assets=(log_events,))
    assert meta(again, "log_events")["decision"] == "hit" and len(api.requests) == calls


def test_window_job_and_cli_return_the_same_contract(instance, data_root, api, capsys):
    job = logs_defs.resolve_job_def("logs_fetch_window_job")
    config = {"ops": {"fetch_log_window": {"config": {"log_id": "app", "start": "2025-01-02T06:00:00Z",
                                                      "end": "2025-01-02T12:00:00"}}}}
    result = job.execute_in_process(instance=instance, run_config=config)
    out = result.output_for_node("fetch_log_window")
    keys = {"output_file", "rows_processed", "batches_processed", "duration_seconds", "segments_used",
            "segments_written", "cache_missing_ranges", "cache_cached_ranges", "summary_output", "summary"}
    assert keys <= out.keys()
    assert out["decision"] == "miss" and out["rows_processed"] == 360
    assert out["cache_missing_ranges"] == [[D0 + 6 * 3_600_000, D0 + 12 * 3_600_000]]
    assert json.loads(open(out["summary_output"]).read())["row_count"] == 360

    # the CLI on the whole day: a partial, fetching only the two gaps
    assert main(["fetch", "--log-id", "app", "--start", DAY, "--end", "2025-01-03", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert keys <= cli.keys()
    assert cli["decision"] == "partial" and cli["rows_processed"] == 1440 - 360
    assert cli["cache_cached_ranges"] == out["cache_missing_ranges"]
    assert cli["summary"]["row_count"] == 1440

    # without --json: a short summary, the window as typed, times readable (no epoch ms)
    assert main(["fetch", "--log-id", "app", "--start", DAY, "--end", "2025-01-03"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0] == f"app from {DAY} to 2025-01-03: hit, 1,440 events"
    assert "from the cache: 3 segment(s) covering 2025-01-02T00:00:00Z to 2025-01-03T00:00:00Z" in text
    prose = [line for line in text.splitlines() if not line.lstrip().startswith(("events:", "summary:"))]
    assert not [line for line in prose if str(D0) in line] and len(text.splitlines()) <= 8, text

    # the partition then is a full hit built on the job's and the CLI's segments
    materialized = materialize(instance, partition_key("app", DAY))
    assert meta(materialized, "log_events")["decision"] == "hit"
    assert meta(materialized, "log_events")["segments_used"] == 3

    # --bypass-cache writes nothing; bad input -> exit 2 with a clear message
    assert main(["fetch", "--log-id", "web", "--start", DAY, "--end", "2025-01-03", "--bypass-cache", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["row_count"] == 144
    assert not (data_root / "cache" / "logs" / "web").exists()
    assert main(["fetch", "--log-id", "../x", "--start", DAY, "--end", "2025-01-03"]) == 2
    assert "log_id '../x' is invalid" in capsys.readouterr().err
    assert main(["fetch", "--log-id", "app", "--start", "2025-01-03", "--end", DAY]) == 2
    assert "reversed" in capsys.readouterr().err


def test_bypass_config_on_the_asset(instance, data_root, api):
    result = materialize(instance, partition_key("web", DAY), assets=(log_events,),
                         run_config={"ops": {"logs__log_events": {"config": {"bypass_cache": True}}}})
    assert meta(result, "log_events")["decision"] == "bypass"
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["window_covered"] is False  # nothing cached, and the check says so
    assert not (data_root / "cache" / "logs" / "web").exists()


def test_schedule_requests_previous_day_for_every_log():
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2025, 3, 5, 0, 20, tzinfo=timezone.utc),
                                        repository_def=logs_defs.get_repository_def())
    requests = list(logs_daily_schedule.evaluate_tick(context).run_requests)
    assert sorted(r.partition_key for r in requests) == ["2025-03-04|app", "2025-03-04|web"]
    early = dg.build_schedule_context(scheduled_execution_time=datetime(2024, 3, 5, tzinfo=timezone.utc),
                                      repository_def=logs_defs.get_repository_def())
    assert not logs_daily_schedule.evaluate_tick(early).run_requests


def test_definitions_load():
    graph = logs_defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {"logs/log_events", "logs/log_summary"}
    spec = graph.get(dg.AssetKey(["logs", "log_events"]))
    assert spec.group_name == "logs"
    assert logs_defs.resolve_schedule_def("logs_daily_schedule")


def test_top_level_cli_has_logs_fetch():
    from assets_pkg.cli import build_parser

    args = build_parser().parse_args(["logs", "fetch", "--log-id", "app", "--start", DAY, "--end", "2025-01-03",
                                      "--bypass-cache"])
    assert args.func.__name__ == "_cmd_fetch" and args.bypass_cache and args.log_id == "app"


def test_summary_asset_without_the_json_file(instance, data_root, api, monkeypatch):
    monkeypatch.setenv("LOG_SUMMARY_JSON", "false")
    result = materialize(instance, partition_key("app", DAY))
    summary = meta(result, "log_summary")
    assert summary["dagster/row_count"] == 1440 and "path" not in summary
    assert not (data_root / "exports" / "logs" / "app" / f"summary_{D0}_{D1}.json").exists()
