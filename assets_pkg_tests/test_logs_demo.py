"""The logs demo end to end (tiny scale) and `evaluate_materialized` on what it cached."""

import dagster as dg
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
