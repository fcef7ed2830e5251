"""Fan-out of the time-series days and the ingest files (assets_pkg/fanout.py): a range run
on the multiprocess executor, through ``cluster.execute_selection``, runs one step per
partition (or batch) and equals the in-process one-step run row for row."""

import datetime as dt
import importlib

import dagster as dg
import pyarrow.parquet as pq
import pytest

from assets_pkg import layout
from assets_pkg.cluster import execute_selection
from assets_pkg.domains import DOMAINS
from assets_pkg.batching import batches
from assets_pkg.fanout import from_message, mapping_key, to_message
from assets_pkg.run_tags import RANGE_END_TAG, RANGE_START_TAG

# every module whose definitions follow ASSETS_PKG_EXECUTOR, the code location's last: it
# merges the others into the ``defs`` that the run's orchestrating process reconstructs
EXECUTOR_MODULES = (*(f"assets_pkg.{d}.definitions" for d in DOMAINS), "assets_pkg.definitions")


def _reload_code_location() -> None:
    for name in EXECUTOR_MODULES:
        importlib.reload(importlib.import_module(name))


def _defs(monkeypatch, kind: str) -> dg.Definitions:
    """The code location as ``ASSETS_PKG_EXECUTOR=kind`` builds it: the step processes of an
    out-of-process run import it afresh with the same environment, and this process runs
    the plan from ``assets_pkg.definitions.defs``, which an earlier test may have built
    under another executor."""
    monkeypatch.setenv("ASSETS_PKG_EXECUTOR", kind)
    _reload_code_location()
    return importlib.import_module("assets_pkg.definitions").defs


@pytest.fixture
def restore_definitions(monkeypatch):
    yield
    monkeypatch.delenv("ASSETS_PKG_EXECUTOR", raising=False)
    _reload_code_location()


def _run(defs, instance, keys, first, last):
    return execute_selection(defs, instance, asset_keys=keys, tags={RANGE_START_TAG: first, RANGE_END_TAG: last})


def _events(result, kind: str) -> list:
    return [e for e in result.all_events if e.event_type_value == kind]


def _steps(result, op: str) -> list[str]:
    return sorted(e.step_key for e in _events(result, "STEP_SUCCESS") if f"{op}[" in e.step_key)


def _checks(result) -> list:
    return [e.event_specific_data for e in _events(result, "ASSET_CHECK_EVALUATION")]


def _materialized(instance, key: dg.AssetKey) -> dict:
    """Each partition's latest materialization metadata, without the run's own figures."""
    records = instance.fetch_materializations(key, limit=1000).records
    out = {}
    for record in sorted(records, key=lambda r: r.storage_id):
        mat = record.asset_materialization
        out[mat.partition] = {k: v.value for k, v in mat.metadata.items()
                              if not k.startswith("run/") and k not in ("seconds", "peak_rss_mb", "rows_per_second")
                              and not k.startswith(("seconds/", "rows_per_second/"))}
    return out


def test_batches_mapping_keys_and_messages():
    assert batches(["a", "b", "c", "d", "e"], 2) == [["a", "b"], ["c", "d"], ["e"]]
    assert batches(["a"], 3) == [["a"]]
    assert mapping_key(3, ["x.csv.gz", "y"]) == "3_x_csv_gz"
    meta = {"n": 3, "path": dg.MetadataValue.path("/d/x"), "j": dg.MetadataValue.json({"a": [1]}),
            "m": dg.MetadataValue.md("| a |")}
    import json

    assert from_message(json.loads(json.dumps(to_message(meta)))) == meta


def test_a_plan_removes_the_messages_of_ended_runs_and_keeps_those_of_running_ones(data_root, instance):
    import uuid

    from assets_pkg.step_messages import MESSAGES, remove_ended_runs_messages

    runs = {}
    for status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.NOT_STARTED):
        runs[status] = instance.add_run(dg.DagsterRun(job_name="j", run_id=str(uuid.uuid4()), status=status)).run_id
    unknown = str(uuid.uuid4())  # no such run in this instance
    for run_id in [*runs.values(), unknown]:
        folder = layout.staging_dir("timeseries", run_id) / MESSAGES
        folder.mkdir(parents=True)
        (folder / "timeseries__merged.timeseries__merged_fanout_plan.result.0_2024_01_01.json").write_text("[]")
    assert sorted(remove_ended_runs_messages("timeseries", instance)) == sorted([runs[dg.DagsterRunStatus.FAILURE],
                                                                                 unknown])
    left = sorted(p.name for p in layout.staging_dir("timeseries", None).iterdir())
    assert left == sorted([runs[dg.DagsterRunStatus.STARTED], runs[dg.DagsterRunStatus.NOT_STARTED]])
    assert remove_ended_runs_messages("timeseries", instance) == []


# -- ingest --------------------------------------------------------------------------------

FILES = ["a.csv", "b.csv", "c.csv", "d.csv"]


def _inbox(instance):
    inbox = layout.inbox_dir("files")
    inbox.mkdir(parents=True, exist_ok=True)
    for n, name in enumerate(FILES):
        lines = ["id,amount"] + [f"{i},{i * 1.5 + n}" + (",extra" if i % 40 == 4 else "") for i in range(40 + 10 * n)]
        (inbox / name).write_text("\n".join(lines) + "\n")
    instance.add_dynamic_partitions("ingest_files", FILES)


def _ingested() -> dict:
    root = layout.asset_dir(["ingest", "files"])
    return {p.relative_to(root).as_posix(): pq.read_table(p).to_pylist() for p in sorted(root.rglob("*.parquet"))}


@pytest.mark.slow
def test_ingest_fanout_in_batches_equals_the_one_step_run(data_root, instance, monkeypatch, restore_definitions):
    from assets_pkg.ingest.assets import INGEST_KEY

    _inbox(instance)
    monkeypatch.setenv("FANOUT_BATCH_PARTITIONS", "3")  # batching changes the steps, not the outputs
    result = _run(_defs(monkeypatch, "multiprocess"), instance, [INGEST_KEY], FILES[0], FILES[-1])
    assert result.success
    steps = _steps(result, "ingest__files_fanout_step")
    # 4 files at most 3 a step: two even steps (2 + 2), not 3 + a last one alone
    assert steps == ["ingest__files.ingest__files_fanout_step[0_a_csv]", "ingest__files.ingest__files_fanout_step[1_c_csv]"]
    assert not layout.staging_dir("ingest", None).exists()  # the step messages are removed
    checks = _checks(result)
    # reject_rate is declared per file: one evaluation per file, and the run's aggregate
    assert {c.check_name for c in checks} == {"reject_rate"}
    assert sorted(c.partition or "" for c in checks) == ["", *FILES]
    [aggregate] = [c for c in checks if c.partition is None]
    assert aggregate.metadata["files"].value == len(FILES)
    assert all(c.metadata["files"].value == 1 for c in checks if c.partition)
    fanned, fanned_meta = _ingested(), _materialized(instance, INGEST_KEY)
    assert sum(name.endswith("rejects.parquet") for name in fanned) == len(FILES), sorted(fanned)
    assert set(fanned_meta) == set(FILES) and all(m["rejects"] > 0 for m in fanned_meta.values())

    import shutil

    shutil.rmtree(layout.asset_dir(["ingest", "files"]))
    one = _run(_defs(monkeypatch, "in_process"), instance, [INGEST_KEY], FILES[0], FILES[-1])
    assert one.success and not _steps(one, "ingest__files_fanout_step")
    assert _ingested() == fanned
    assert sorted((c.partition or "", c.passed, c.description, c.metadata) for c in _checks(one)) \
        == sorted((c.partition or "", c.passed, c.description, c.metadata) for c in checks)
    one_meta = _materialized(instance, INGEST_KEY)
    for key in FILES:  # every file's own figures as the one-step run reports them
        assert {k: fanned_meta[key][k] for k in ("dagster/row_count", "rejects", "shards", "path", "lines_read")} \
            == {k: one_meta[key][k] for k in ("dagster/row_count", "rejects", "shards", "path", "lines_read")}


# -- time series ---------------------------------------------------------------------------

TS_ASSETS = ["resampled", "merged", "export", "analysis"]


def _timeseries_outputs(data_root) -> dict:
    """Every warehouse and export file of the time series, row for row (statistics as JSON)."""
    import json

    out = {}
    for folder in (data_root / "warehouse" / "timeseries", data_root / "exports" / "timeseries"):
        for p in sorted(folder.rglob("*")):
            name = p.relative_to(data_root).as_posix()
            if p.suffix == ".parquet":
                out[name] = pq.read_table(p).to_pylist()
            elif p.name.endswith(".analysis.json"):
                out[name] = json.loads(p.read_text())
            elif p.is_file():
                out[name] = p.stat().st_size > 0
    return out


@pytest.mark.slow
def test_timeseries_fanout_equals_the_one_step_chain(data_root, instance, monkeypatch, restore_definitions):
    import shutil

    from assets_pkg.demo import timeseries as demo

    demo.generate(data_root / "inbox" / demo.INBOX, scale="test")
    first = demo.day_keys("test")[0]
    days = [str(dt.date.fromisoformat(first) + dt.timedelta(days=d)) for d in range(2)]
    keys = [dg.AssetKey(["timeseries", a]) for a in TS_ASSETS]
    result = _run(_defs(monkeypatch, "multiprocess"), instance, keys, days[0], days[-1])
    assert result.success
    for asset in TS_ASSETS:  # one step per day for every asset of the chain
        op = f"timeseries__{asset}_fanout_step"
        assert _steps(result, op) == [f"timeseries__{asset}.{op}[{i}_{d.replace('-', '_')}]"
                                      for i, d in enumerate(days)]
    checks = _checks(result)
    error_checks = [c for c in checks if c.severity == dg.AssetCheckSeverity.ERROR]
    assert {c.check_name for c in error_checks} == {"unique_buckets", "export_matches_merged"}
    assert all(c.passed for c in error_checks), error_checks
    per_day = {(c.check_name, c.partition) for c in checks if c.partition}
    assert per_day == {(name, d) for name in ("unique_buckets", "coverage", "export_matches_merged") for d in days}
    fanned = _timeseries_outputs(data_root)
    assert sum(name.startswith("exports/") and name.endswith(".parquet") for name in fanned) >= 2
    fanned_meta = {a: _materialized(instance, dg.AssetKey(["timeseries", a])) for a in TS_ASSETS}
    assert not layout.staging_dir("timeseries", None).exists()

    shutil.rmtree(data_root / "warehouse" / "timeseries")
    shutil.rmtree(data_root / "exports" / "timeseries")
    one = _run(_defs(monkeypatch, "in_process"), instance, keys, days[0], days[-1])
    assert one.success and not _steps(one, "timeseries__merged_fanout_step")
    assert _timeseries_outputs(data_root) == fanned
    assert sorted((c.check_name, c.partition or "", c.passed) for c in _checks(one)) \
        == sorted((c.check_name, c.partition or "", c.passed) for c in checks)
    one_meta = {a: _materialized(instance, dg.AssetKey(["timeseries", a])) for a in TS_ASSETS}
    for asset in TS_ASSETS:  # each day's own figures as the one-step run records them
        for day in days:
            same = set(one_meta[asset][day]) & set(fanned_meta[asset][day])
            assert "dagster/row_count" in same and "rows" in same, (asset, day)
            assert {k: fanned_meta[asset][day][k] for k in same} == {k: one_meta[asset][day][k] for k in same}


def test_a_logs_backfill_is_one_run_per_log_and_day():
    """The logs need no fan-out graph: without a single-run policy each (log_id, day) of a
    backfill is its own run, which any worker can take."""
    from assets_pkg.logs.assets import log_events, log_summary

    for asset in (log_events, log_summary):
        policy = asset.backfill_policy
        assert policy is None or policy.max_partitions_per_run == 1, asset.key
