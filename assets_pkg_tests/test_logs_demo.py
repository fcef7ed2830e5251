"""The logs demo end to end (tiny scale) and `evaluate_materialized` on what it cached."""

import pytest

import assets_pkg.demo.logs as demo_logs
from assets_pkg.demo.framework import DemoContext, DemoReport
from assets_pkg.logs.checks import evaluate_materialized
from assets_pkg.logs.definitions import defs
from assets_pkg.logs.store import SegmentStore, segment_dir
from assets_pkg.settings import get_settings


@pytest.mark.slow
def test_demo_shows_decisions_and_green_checks(data_root, instance):
    settings = get_settings()
    demo_logs.generate(settings.inbox / demo_logs.INBOX, scale="test")
    report = DemoReport()
    demo_logs.run(DemoContext(settings=settings, instance=instance, defs=defs, report=report, scale="test"))
    text = "\n".join(report.lines)
    assert "ad-hoc app 2025-01-02 06:00-18:00: miss" in text
    assert "app   2025-01-02: partial" in text
    assert "web   2025-01-03: miss" in text
    assert "re-run app 2025-01-01: hit (fetched 0 rows)" in text
    assert report.failed_error_checks == []
    assert report.checks[("logs/log_events", "window_covered")][:2] == [7, 0]
    assert len(list((data_root / "exports" / "logs" / "app").glob("summary_*.json"))) >= 3


def test_evaluate_materialized_flags_overlap_and_hole(data_root):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from assets_pkg.logs.store import PART_SCHEMA

    root = data_root / "cache" / "logs"
    for start, end in [(0, 100), (50, 150), (300, 400)]:
        folder = segment_dir(root / "app", start, end)
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"timestamp": pa.array([start], pa.int64()), "event_id": ["x"], "level": ["INFO"],
                                 "message": ["m"], "attributes": ["{}"]}, schema=PART_SCHEMA), folder / "part-00000.parquet")
    outcomes = {o.name: o for o in evaluate_materialized(SegmentStore(root))}
    assert len(outcomes) == 4  # only cached logs are evaluated
    assert outcomes["no_overlapping_segments"].passed is False
    assert outcomes["window_covered"].passed is False and outcomes["window_covered"].metadata["missing_ranges"] == [[150, 300]]
    assert outcomes["unique_event_ids"].passed is False  # "x" three times
    assert outcomes["segments_readable"].passed is True


@pytest.mark.slow
def test_one_failing_partition_fails_alone(data_root, instance, monkeypatch):
    """The demo over an HTTP source whose 'web' log answers garbage: web's partitions fail
    with a clear error naming the page, app's partitions (and one truncated body) still go through."""
    import json

    from assets_pkg_tests.fake_log_api import Fault, FakeLogApi, make_events
    from assets_pkg.logs.planner import day_window

    settings = get_settings()
    demo_logs.generate(settings.inbox / demo_logs.INBOX, scale="test")  # the days and log ids the demo walks
    d0, d1 = day_window(demo_logs.DEMO_DAYS[0])[0], day_window(demo_logs.DEMO_DAYS[-1])[1]
    events = {log_id: make_events(log_id, d0, d1, 600_000) for log_id in ("app", "web")}
    with FakeLogApi(events) as api:
        api.faults = [Fault(200, body=json.dumps({"events": [], "next_page_token": {"bad": 1}}), log_id="web",
                            repeat=True),
                      Fault(200, body=json.dumps({"events": events["app"][:5]}), truncate_to=30, log_id="app")]
        monkeypatch.setenv("LOG_SOURCE", "http")
        monkeypatch.setenv("LOG_API_URL", api.url)
        report = DemoReport()
        demo_logs.run(DemoContext(settings=settings, instance=instance, defs=defs, report=report, scale="test"))
    text = "\n".join(report.lines)
    assert len(report.errors) == 3, report.errors
    assert all(e.startswith("logs web 2025-01-0") and "MalformedResponseError" in e and "page 1" in e
               and "next_page_token is a dict" in e for e in report.errors)
    for day in demo_logs.DEMO_DAYS:
        assert f"web   {day}: FAILED" in text
        assert f"app   {day}: " in text and f"app   {day}: FAILED" not in text
    assert report.failed_error_checks == []
    assert [s.window for s in SegmentStore(data_root / "cache" / "logs").segments("web")] == []
