"""The splits Dagster layer: sensor ticks, one run over many shards, in-op checks, config."""

from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets_pkg.demo.splits import make_rows, write_shard
from assets_pkg.io.parquet_io_manager import ShardedParquetIOManager, partition_path
from assets_pkg.resources.duckdb import DuckDBResource
from assets_pkg.splits.assets import SplitConfig
from assets_pkg.splits.checks import evaluate_materialized
from assets_pkg.splits.definitions import build_defs
from assets_pkg.splits.hashing import side_of
from assets_pkg.splits.pipeline import manifest_file, read_json

SENSOR = "splits_shard_sensor"


def make_defs(consolidate=True, **config) -> dg.Definitions:
    shared = dg.Definitions(
        resources={"io_manager": ShardedParquetIOManager(), "duckdb": DuckDBResource()},
        executor=dg.in_process_executor,
    )
    split_config = SplitConfig(**config) if config else None
    return dg.Definitions.merge(shared, build_defs(consolidate=consolidate, split_config=split_config))


def tick(defs, instance, cursor=None):
    sensor = defs.resolve_sensor_def(SENSOR)
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, sensor_name=SENSOR)
    return sensor.evaluate_tick(context)


def launch(defs, instance, data):
    """What the daemon does with a tick: add partitions, then run each request."""
    for request in data.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    job = defs.resolve_job_def("splits_job")
    results = []
    for request in data.run_requests:
        results.append(job.execute_in_process(
            instance=instance, partition_key=request.partition_key, tags=dict(request.tags),
            asset_selection=list(request.asset_selection) if request.asset_selection else None,
        ))
    return results


def checks_of(result, errors_only=True) -> dict:
    """(asset, check) -> passed, of the ERROR checks (split_ratio is a WARN)."""
    return {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
        if not errors_only or e.severity == dg.AssetCheckSeverity.ERROR
    }


@pytest.fixture
def inbox(data_root) -> Path:
    folder = data_root / "inbox" / "transactions"
    folder.mkdir(parents=True)
    return folder


def test_definitions_load_and_config_has_descriptions():
    defs = make_defs()
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"splits/shard_profile", "splits/customer_allocation", "splits/train", "splits/val", "splits/oot",
            "splits/consolidated"} <= keys
    assert defs.resolve_sensor_def(SENSOR)
    for name, field in SplitConfig.model_fields.items():
        assert field.description, name
    for key in keys:
        node = graph.get(dg.AssetKey(key.split("/")))
        assert node.group_name == "splits" and node.description


def test_sensor_one_run_for_all_new_shards_and_bad_names_reported(data_root, inbox, instance, monkeypatch):
    import assets_pkg.reader

    parsed = []  # text shards the run parsed: once each (pass 2 reads pass 1's stage)

    class CountingReader(assets_pkg.reader.StreamingReader):
        def __init__(self, path, *args, **kwargs):
            parsed.append(Path(path).name)
            super().__init__(path, *args, **kwargs)

    monkeypatch.setattr(assets_pkg.reader, "StreamingReader", CountingReader)
    for number, fmt in ((1, "parquet"), (5, "csv"), (10, "tsv"), (42, "csv.gz"), (99, "parquet")):
        write_shard(make_rows(200, seed=number, n_customers=50), inbox / f"part-{number:05d}.{fmt}")
    (inbox / "invalid.csv").write_text("a\n")
    (inbox / "part-00005.parquet").write_bytes(b"x")  # second file with number 5
    defs = make_defs()
    data = tick(defs, instance)
    assert len(data.run_requests) == 1
    request = data.run_requests[0]
    assert request.tags["dagster/asset_partition_range_start"] == "00001"
    assert request.tags["dagster/asset_partition_range_end"] == "00099"
    refused = request.tags["splits/refused_files"]
    assert "invalid.csv" in refused and "part-00005.csv" in refused and "part-00005.parquet" in refused
    added = data.dynamic_partitions_requests[0].partition_keys
    assert list(added) == ["00001", "00010", "00042", "00099"]

    (result,) = launch(defs, instance, data)
    assert result.success
    assert sorted(parsed) == ["part-00010.tsv", "part-00042.csv.gz"]
    staged = data_root / "warehouse" / "splits" / "_staged"
    assert staged.is_dir() and not list(staged.iterdir())  # each stage removed once its shard was split
    assert ("splits/customer_allocation", "split_ratio") in checks_of(result, errors_only=False)
    assert checks_of(result) == {
        ("splits/train", "shard_mapping"): True,
        ("splits/train", "row_accounting"): True,
        ("splits/oot", "no_customer_leakage"): True,
        ("splits/consolidated", "consolidated_matches_shards"): True,
    }
    # one file per partition, where the IO manager says it lives
    for key in added:
        assert partition_path(["splits", "shard_profile"], key).exists()
        assert partition_path(["splits", "train"], key).exists()
    assert (data_root / "exports/splits/training_data/train/train_processed_data.parquet").exists()
    assert (data_root / "exports/splits/oot_data/oot_data.parquet").exists()
    materialized = instance.get_materialized_partitions(dg.AssetKey(["splits", "oot"]))
    assert materialized == set(added)

    again = tick(defs, instance, cursor=data.cursor)
    assert not again.run_requests
    assert "no new shards" in again.skip_message and "invalid.csv" in again.skip_message
    assert all(o.passed for o in evaluate_materialized() if o.severity == "ERROR")


@pytest.mark.slow
def test_new_shard_rerun_keeps_checks_green_and_resplits_affected_shards(data_root, inbox, instance):
    # shard 1: post-split rows of T (a future train customer) -> OOT for now
    train_customer = next(c for c in (f"T{i}" for i in range(100)) if side_of(42, 0.9, c) == "train")
    base = pa.table({"customer_id": ["A", "B", train_customer], "date": ["2023-01-01", "2024-03-01", "2024-04-01"],
                     "label": ["x", "y", "x"]})
    write_shard(base, inbox / "part-00001.parquet")
    defs = make_defs()
    first = tick(defs, instance)
    (r1,) = launch(defs, instance, first)
    assert r1.success and all(checks_of(r1).values())
    oot = pq.read_table(data_root / "warehouse/splits/oot/part-00001.parquet").column("customer_id").to_pylist()
    assert train_customer in oot

    # shard 2 makes T known (pre-split row) -> T is train, shard 1's OOT must lose T's rows
    write_shard(pa.table({"customer_id": [train_customer], "date": ["2023-06-01"], "label": ["z"]}),
                inbox / "part-00002.parquet")
    second = tick(defs, instance, cursor=first.cursor)
    assert second.run_requests[0].tags["dagster/asset_partition_range_start"] == "00002"
    assert second.run_requests[0].tags["dagster/asset_partition_range_end"] == "00002"
    (r2,) = launch(defs, instance, second)
    assert r2.success
    assert all(checks_of(r2).values()), checks_of(r2)
    oot = pq.read_table(data_root / "warehouse/splits/oot/part-00001.parquet").column("customer_id").to_pylist()
    assert train_customer not in oot
    # the label map grew ("z"): shard 1 was re-split with the new codes and recorded as such
    events = [e for e in r2.get_asset_materialization_events() if e.partition == "00001"]
    assert {e.asset_key.to_user_string() for e in events} == {"splits/train", "splits/val", "splits/oot"}
    manifest = read_json(manifest_file(data_root / "warehouse"))
    assert manifest["labels"]["map"] == {"x": 0, "y": 1, "z": 2}
    assert all(o.passed for o in evaluate_materialized() if o.severity == "ERROR")
    third = tick(defs, instance, cursor=second.cursor)
    assert not third.run_requests


def test_sensor_requests_pass2_for_stale_shards(data_root, inbox, instance):
    write_shard(make_rows(100, seed=3, n_customers=20), inbox / "part-00003.parquet")
    defs = make_defs(consolidate=False)
    first = tick(defs, instance)
    (r1,) = launch(defs, instance, first)
    assert r1.success
    state = data_root / "warehouse/splits/_shard_state/part-00003.json"
    state.write_text(state.read_text().replace('"fingerprint": "', '"fingerprint": "old'))
    data = tick(defs, instance, cursor=first.cursor)
    (request,) = data.run_requests
    assert request.tags["dagster/asset_partition_range_start"] == "00003"
    assert {k.to_user_string() for k in request.asset_selection} == {"splits/train", "splits/val", "splits/oot"}
    (r2,) = launch(defs, instance, data)
    assert r2.success and all(checks_of(r2).values())


def test_single_partition_materialize_and_empty_split_has_no_file(data_root, inbox, instance):
    train_customer = next(c for c in (f"T{i}" for i in range(100)) if side_of(42, 0.9, c) == "train")
    write_shard(pa.table({"customer_id": [train_customer], "date": ["2023-01-01"], "label": ["1"]}),
                inbox / "part-00007.csv")
    defs = make_defs(consolidate=False, output_format="csv")
    instance.add_dynamic_partitions("splits_shards", ["00007"])
    job = defs.resolve_job_def("splits_job")
    result = job.execute_in_process(instance=instance, partition_key="00007")
    assert result.success
    wh = data_root / "warehouse" / "splits"
    assert (wh / "train/part-00007.csv").exists()
    assert not (wh / "val/part-00007.csv").exists() and not (wh / "oot/part-00007.csv").exists()
    meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert meta["splits/train"]["dagster/row_count"].value == 1
    assert meta["splits/val"]["dagster/row_count"].value == 0


def test_invalid_config_fails_the_run_naming_the_setting(data_root, inbox, instance):
    write_shard(make_rows(50, seed=1, n_customers=10), inbox / "part-00001.parquet")
    defs = make_defs(consolidate=False, train_ratio=1.5)
    instance.add_dynamic_partitions("splits_shards", ["00001"])
    result = defs.resolve_job_def("splits_job").execute_in_process(
        instance=instance, partition_key="00001", raise_on_error=False)
    assert not result.success
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
    assert "TRAIN_RATIO" in failure.event_specific_data.error.to_string()


def test_missing_input_file_fails_with_the_refused_names(data_root, inbox, instance):
    (inbox / "part-00008.csv").write_text("customer_id,date,label\nA,2023-01-01,0\n")
    (inbox / "part-8.tsv").write_text("customer_id\tdate\tlabel\nA\t2023-01-01\t0\n")
    defs = make_defs(consolidate=False)
    instance.add_dynamic_partitions("splits_shards", ["00008"])
    result = defs.resolve_job_def("splits_job").execute_in_process(
        instance=instance, partition_key="00008", raise_on_error=False)
    assert not result.success
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
    text = failure.event_specific_data.error.to_string()
    assert "part-00008.csv" in text and "part-8.tsv" in text



def _run_range(defs, instance, keys):
    instance.add_dynamic_partitions("splits_shards", keys)
    return defs.resolve_job_def("splits_job").execute_in_process(
        instance=instance, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]})


def _split_outputs(root: Path) -> dict:
    return {f"{p.parent.name}/{p.name}": pq.read_table(p)
            for name in ("train", "val", "oot") for p in sorted((root / "warehouse/splits" / name).glob("part-*"))}


def _partition_status(instance, key: str):
    """Materialized and failed partitions of an asset, as the UI computes them."""
    from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

    from assets_pkg.splits.assets import shard_partitions

    asset_key = dg.AssetKey(["splits", key])
    value = get_and_update_asset_status_cache_value(instance, asset_key, shard_partitions, instance)
    return (set(instance.get_materialized_partitions(asset_key)),
            set(value.deserialize_failed_partition_subsets(shard_partitions).get_partition_keys()))


def test_a_corrupt_shard_among_good_ones_fails_alone_naming_it(tmp_path, data_root, inbox, instance, monkeypatch):
    """Parquet shards are profiled two at a time on worker threads: the bad one fails its own
    partitions (no profile, no split, its train/val/oot partitions failed, the run failed
    naming the file); the other 19 are profiled and split exactly as in a run without it."""
    keys = [f"{n:05d}" for n in range(1, 21)]
    for key in keys:
        write_shard(make_rows(150, seed=int(key), n_customers=40), inbox / f"part-{key}.parquet")
    (inbox / "part-00007.parquet").write_bytes(b"PAR1 not really parquet PAR1")
    defs = make_defs(consolidate=False)
    result = _run_range(defs, instance, keys)
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [f.step_key for f in failures] == ["split_shards"]
    assert "part-00007.parquet" in failures[0].event_specific_data.error.to_string()
    assert not partition_path(["splits", "shard_profile"], "00007").exists()
    good = [k for k in keys if k != "00007"]
    for name in ("train", "val", "oot"):
        materialized, failed = _partition_status(instance, name)
        assert materialized == set(good) and failed == {"00007"}, name
    checks = checks_of(result)
    assert checks[("splits/train", "shard_mapping")] is False and checks[("splits/train", "row_accounting")] is False
    outcomes = {o.name: o for o in evaluate_materialized()}
    assert not outcomes["shard_mapping"].passed and "00007" in outcomes["shard_mapping"].metadata["failed_shards"]
    assert not outcomes["row_accounting"].passed and "part-00007.parquet" in str(outcomes["row_accounting"].metadata)
    assert outcomes["no_customer_leakage"].passed
    import threading

    assert not [t for t in threading.enumerate() if t.name.startswith("splits-shard")]

    # the same 19 good shards alone, in another data root: the same outputs
    alone = tmp_path / "alone"
    (alone / "inbox/transactions").mkdir(parents=True)
    for key in good:
        (alone / "inbox/transactions" / f"part-{key}.parquet").write_bytes((inbox / f"part-{key}.parquet").read_bytes())
    monkeypatch.setenv("ASSETS_PKG_DATA_DIR", str(alone))
    (tmp_path / "alone_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "alone_home")) as other:
        assert _run_range(defs, other, good).success
    with_bad = _split_outputs(data_root)
    assert {n.split("/")[1] for n in with_bad} == {f"part-{k}.parquet" for k in good}
    without = _split_outputs(alone)
    assert with_bad.keys() == without.keys()
    for name, table in with_bad.items():
        assert table.equals(without[name]), name

    # fixed: the next run over the shard profiles and splits it, and every check passes
    monkeypatch.setenv("ASSETS_PKG_DATA_DIR", str(data_root))
    write_shard(make_rows(150, seed=7, n_customers=40), inbox / "part-00007.parquet")
    fixed = _run_range(defs, instance, ["00007"])
    assert fixed.success and all(checks_of(fixed).values())
    assert not (data_root / "warehouse/splits/_failed/part-00007.json").exists()
    assert "00007" in _partition_status(instance, "train")[0]


def test_failed_error_check_blocks_consolidation(data_root, inbox, instance):
    write_shard(make_rows(100, seed=4, n_customers=20), inbox / "part-00004.parquet")
    orphan = data_root / "warehouse/splits/oot/part-00077.parquet"
    orphan.parent.mkdir(parents=True)
    pq.write_table(pa.table({"customer_id": ["Z"]}), orphan)  # an output without an input shard
    defs = make_defs(consolidate=True)
    data = tick(defs, instance)
    (result,) = launch_no_raise(defs, instance, data)
    assert not result.success
    assert checks_of(result)[("splits/train", "shard_mapping")] is False
    assert not (data_root / "exports/splits/training_data").exists()
    outcome = {o.name: o for o in evaluate_materialized()}["shard_mapping"]
    assert not outcome.passed and "oot/part-00077.parquet" in outcome.metadata["orphans"]


def launch_no_raise(defs, instance, data):
    for request in data.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    job = defs.resolve_job_def("splits_job")
    return [job.execute_in_process(instance=instance, partition_key=r.partition_key, tags=dict(r.tags),
                                   raise_on_error=False) for r in data.run_requests]


def test_range_run_records_each_shards_own_row_count(data_root, inbox, instance):
    for number in (2, 4):
        write_shard(make_rows(120 * number, seed=number, n_customers=40), inbox / f"part-{number:05d}.parquet")
    defs = make_defs(consolidate=False)
    (result,) = launch(defs, instance, tick(defs, instance))
    assert result.success
    for name in ("train", "val", "oot"):
        by_partition = {
            e.partition: e.materialization.metadata["dagster/row_count"].value
            for e in result.get_asset_materialization_events()
            if e.asset_key.to_user_string() == f"splits/{name}"
        }
        on_disk = {
            key: (pq.ParquetFile(p).metadata.num_rows if p.exists() else 0)
            for key in ("00002", "00004")
            for p in [partition_path(["splits", name], key)]
        }
        assert by_partition == on_disk
    # read back from the instance: the run's figures are labelled run/, each shard's are its own
    for name in ("shard_profile", "train"):
        key = dg.AssetKey(["splits", name])
        metas = {}
        for shard in ("00002", "00004"):
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[shard]), limit=1).records
            metas[shard] = records[0].asset_materialization.metadata
        for shard, meta in metas.items():
            path = partition_path(["splits", name], shard)
            assert meta["dagster/row_count"].value == pq.ParquetFile(path).metadata.num_rows, (name, shard)
            assert meta["bytes"].value == path.stat().st_size, (name, shard)
            assert "seconds" not in meta and "peak_rss_mb" not in meta, (name, meta.keys())
        assert metas["00002"]["run/rows" if name == "shard_profile" else "rows_in_run"].value > 0
    train = metas["00002"]
    assert train["dagster/row_count"].value != metas["00004"]["dagster/row_count"].value
    assert "run/seconds" in train and "run/peak_rss_mb" in train and "run/bytes" in train
