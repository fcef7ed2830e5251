"""The Parquet shard IO manager, exercised through real materializations."""

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets_pkg.run_tags import RANGE_END_TAG, RANGE_START_TAG
from assets_pkg.io.parquet_io_manager import Formatted, ShardedParquetIOManager, partition_path

shards = dg.DynamicPartitionsDefinition(name="test_shards")
months = dg.MonthlyPartitionsDefinition(start_date="2024-01-01", end_date="2024-04-01")
multi = dg.MultiPartitionsDefinition(
    {"log_id": dg.StaticPartitionsDefinition(["app"]), "day": dg.DailyPartitionsDefinition("2024-01-01", end_date="2024-01-03")}
)
ROWS = {"00001": 3, "00005": 0, "00042": 2}


@dg.asset(key=["t", "shard"], partitions_def=shards)
def shard_asset(context):
    return pa.table({"n": list(range(ROWS[context.partition_key]))})


@dg.asset(key=["t", "shard_csv"], partitions_def=shards)
def shard_csv_asset(context):
    return Formatted(pa.table({"n": [1, 2]}), "csv")


@dg.asset(key=["t", "monthly"], partitions_def=months, backfill_policy=dg.BackfillPolicy.single_run())
def monthly_asset(context):
    return {key: pa.table({"month": [key]}) for key in context.partition_keys}


@dg.asset(key=["t", "monthly_bad"], partitions_def=months, backfill_policy=dg.BackfillPolicy.single_run())
def monthly_bad_asset(context):
    return pa.table({"month": ["x"]})


@dg.asset(key=["t", "multi"], partitions_def=multi)
def multi_asset_(context):
    return pa.table({"k": [context.partition_key]})


@dg.asset(key=["t", "all_paths"], ins={"shard": dg.AssetIn(key=["t", "shard"], metadata={"load_as": "paths"})})
def all_paths(shard):
    return pa.table({"path": [p.name for p in shard]})


@dg.asset(key=["t", "all_rows"], ins={"shard": dg.AssetIn(key=["t", "shard"])})
def all_rows(shard: pa.Table):
    return shard


def _run(assets, instance, **kwargs):
    return dg.materialize(assets, instance=instance, resources={"io_manager": ShardedParquetIOManager()}, **kwargs)


@pytest.fixture
def shard_instance(instance):
    instance.add_dynamic_partitions("test_shards", list(ROWS))
    return instance


def test_shard_partitions_get_their_number_and_empty_writes_nothing(data_root, shard_instance):
    for key in ROWS:
        result = _run([shard_asset], shard_instance, partition_key=key)
        mat = result.asset_materializations_for_node("t__shard")[0]
        assert mat.metadata["dagster/row_count"].value == ROWS[key]
    folder = data_root / "warehouse" / "t" / "shard"
    assert sorted(p.name for p in folder.iterdir()) == ["part-00001.parquet", "part-00042.parquet"]
    assert pq.read_table(folder / "part-00042.parquet").num_rows == 2


def test_empty_result_deletes_the_old_partition_file(data_root, shard_instance):
    ROWS["00005"] = 4
    try:
        _run([shard_asset], shard_instance, partition_key="00005")
        path = data_root / "warehouse" / "t" / "shard" / "part-00005.parquet"
        assert path.exists()
    finally:
        ROWS["00005"] = 0
    _run([shard_asset], shard_instance, partition_key="00005")
    assert not path.exists()


def test_runtime_format_and_format_change_leaves_one_file(data_root, shard_instance):
    _run([shard_csv_asset], shard_instance, partition_key="00001")
    path = data_root / "warehouse" / "t" / "shard_csv" / "part-00001.csv"
    assert path.read_text().splitlines() == ['"n"', "1", "2"]


def test_range_run_writes_one_file_per_month(data_root, instance):
    _run([monthly_asset], instance, tags={RANGE_START_TAG: "2024-01-01", RANGE_END_TAG: "2024-03-01"})
    folder = data_root / "warehouse" / "t" / "monthly"
    assert sorted(p.name for p in folder.iterdir()) == ["2024-01.parquet", "2024-02.parquet", "2024-03.parquet"]
    assert pq.read_table(folder / "2024-02.parquet").column("month").to_pylist() == ["2024-02-01"]


def test_range_run_without_a_dict_fails_clearly(data_root, instance):
    with pytest.raises(dg.Failure, match="must return \\{partition_key: value\\}"):
        _run([monthly_bad_asset], instance, tags={RANGE_START_TAG: "2024-01-01", RANGE_END_TAG: "2024-02-01"})
    assert not (data_root / "warehouse" / "t" / "monthly_bad").exists()


def test_multi_partition_path_has_one_folder_per_leading_dimension(data_root, instance):
    _run([multi_asset_], instance, partition_key=dg.MultiPartitionKey({"log_id": "app", "day": "2024-01-02"}))
    assert (data_root / "warehouse" / "t" / "multi" / "log_id=app" / "2024-01-02.parquet").exists()
    assert partition_path(["t", "m"], "2024-03-01", partitions_def=months).name == "2024-03.parquet"
    assert partition_path(["t", "multi"], "2024-01-02|app", partitions_def=multi) == (
        data_root / "warehouse" / "t" / "multi" / "log_id=app" / "2024-01-02.parquet"
    )


def test_unpartitioned_downstream_gets_existing_paths_or_rows(data_root, shard_instance):
    for key in ROWS:
        _run([shard_asset], shard_instance, partition_key=key)
    _run([shard_asset, all_paths, all_rows], shard_instance, selection=[all_paths, all_rows])
    paths = pq.read_table(data_root / "warehouse" / "t" / "all_paths.parquet").column("path").to_pylist()
    assert paths == ["part-00001.parquet", "part-00042.parquet"]  # the empty shard has no file
    assert pq.read_table(data_root / "warehouse" / "t" / "all_rows.parquet").num_rows == 5


KILLED_WRITER = """
import os, signal, sys
from assets_pkg.io.atomic import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"PAR1 half a partition")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_writer_s_temp_is_removed_by_the_next_materialization(data_root, shard_instance):
    import os
    import subprocess
    import sys
    from pathlib import Path

    final = data_root / "warehouse" / "t" / "shard" / "part-00001.parquet"
    final.parent.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(final)], env=env, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    leftovers = [p.name for p in final.parent.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".part-00001.parquet.tmp-")  # what a kill leaves
    assert _run([shard_asset], shard_instance, partition_key="00042").success  # another partition, same asset
    assert sorted(p.name for p in final.parent.iterdir()) == ["part-00042.parquet"]
