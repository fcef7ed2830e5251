"""File ingest: inbox scanning, streaming into shards, the asset, the sensor, the CLI."""

import gzip
import json
import os

import dagster as dg
import pyarrow.parquet as pq
import pytest

from assets_pkg.cli import main as cli_main
from assets_pkg.ingest.assets import ingest_files
from assets_pkg.ingest.files import load_column_types, scan_inbox
from assets_pkg.ingest.sensors import ingest_file_sensor
from assets_pkg.ingest.stream import stream_file_to_shards
from assets_pkg.io.parquet_io_manager import ShardedParquetIOManager
from assets_pkg.reader import ReaderError


def _csv(path, rows, bad_every=0):
    lines = ["id,amount"]
    for i in range(rows):
        lines.append(f"{i},oops" if bad_every and i % bad_every == 1 else f"{i},{i * 1.5}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_scan_refuses_unknown_suffixes_unsafe_names_and_folder_collisions(tmp_path):
    for name in ["a.csv", "a.jsonl", "b.tsv.gz", "notes.txt", "bad name.csv", "a.csv.schema.json"]:
        (tmp_path / name).write_text("x\n")
    scan = scan_inbox(tmp_path)
    assert [f.partition_key for f in scan.files] == ["a.csv", "b.tsv.gz"]
    assert [f.stem for f in scan.files] == ["a", "b"]
    assert any(r.startswith("a.jsonl: same output folder 'a' as a.csv") for r in scan.refused)
    assert any(r.startswith("notes.txt") for r in scan.refused)
    assert any(r.startswith("bad name.csv") for r in scan.refused)


def test_sidecar_types_are_validated_with_the_file_named(tmp_path):
    src = tmp_path / "x.csv"
    (tmp_path / "x.csv.schema.json").write_text(json.dumps({"amount": "money"}))
    with pytest.raises(ValueError, match=r"x.csv.schema.json: column 'amount' has unknown type 'money'"):
        load_column_types(src)


def test_stream_writes_bounded_shards_and_rejects(tmp_path):
    src = _csv(tmp_path / "in.csv", 250, bad_every=50)
    import pyarrow as pa

    result = stream_file_to_shards(src, tmp_path / "out", shard_rows=100, chunk_size=64,
                                   column_types={"id": pa.int64(), "amount": pa.float64()})
    assert (result.rows, result.rejects, result.shards) == (245, 5, 3)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "lines.json", "part-00000.parquet", "part-00001.parquet", "part-00002.parquet", "rejects.parquet"
    ]
    assert result.lines_read == 251 and result.row_lines == 245 and result.header_lines == 1
    assert [pq.ParquetFile(out / f"part-0000{i}.parquet").metadata.num_rows for i in range(3)] == [100, 100, 45]
    rejects = pq.read_table(out / "rejects.parquet").to_pylist()
    assert [r["line"] for r in rejects] == [3, 53, 103, 153, 203]  # header is line 1
    assert rejects[0]["raw"].startswith("1,oops")


def test_failed_ingest_keeps_previous_output_and_leaves_no_partial_folder(tmp_path):
    import pyarrow as pa

    src = _csv(tmp_path / "in.csv", 100)
    out = tmp_path / "out"
    stream_file_to_shards(src, out, shard_rows=1000)
    before = sorted(p.name for p in out.iterdir())
    _csv(src, 100, bad_every=2)  # half the rows now fail their type
    with pytest.raises(ReaderError):
        stream_file_to_shards(src, out, column_types={"amount": pa.float64()}, error_threshold=0.1)
    assert sorted(p.name for p in out.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _sensor_tick(instance, cursor=None):
    from assets_pkg.definitions import defs

    with dg.build_sensor_context(instance_ref=instance.get_ref(), cursor=cursor, definitions=defs) as context:
        return ingest_file_sensor.evaluate_tick(context)


def _launch(instance, data):
    for request in data.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    results = []
    for run_request in data.run_requests:
        results.append(
            dg.materialize(
                [ingest_files], instance=instance, partition_key=run_request.partition_key,
                tags=run_request.tags, resources={"io_manager": ShardedParquetIOManager()},
            )
        )
    return results


@pytest.mark.slow
def test_sensor_batches_new_files_into_one_run_and_reingests_changed_ones(data_root, instance):
    inbox = data_root / "inbox" / "files"
    inbox.mkdir(parents=True)
    _csv(inbox / "a.csv", 30)
    (inbox / "b.tsv").write_text("x\ty\n1\t2\n")
    with gzip.open(inbox / "c.jsonl.gz", "wt") as fh:
        fh.write("".join(f'{{"x": {i}}}\n' for i in range(40)) + '{"x": 2\n')  # 1 of 41 broken
    (inbox / "skip.txt").write_text("not ingested")

    first = _sensor_tick(instance)
    assert len(first.run_requests) == 1  # three new files, one run
    assert first.run_requests[0].tags["dagster/asset_partition_range_start"] == "a.csv"
    assert first.run_requests[0].tags["dagster/asset_partition_range_end"] == "c.jsonl.gz"
    [result] = _launch(instance, first)
    mats = result.asset_materializations_for_node("ingest__files")
    by_partition = {m.partition: m.metadata for m in mats}
    assert by_partition["a.csv"]["dagster/row_count"].value == 30
    assert by_partition["c.jsonl.gz"]["rejects"].value == 1
    [check] = [e for e in result.get_asset_check_evaluations() if e.partition is None]  # the run's aggregate
    assert check.check_name == "reject_rate" and not check.passed  # 2.4% > the 1% warn rate
    assert check.severity == dg.AssetCheckSeverity.WARN
    warehouse = data_root / "warehouse" / "ingest" / "files"
    assert sorted(p.name for p in warehouse.iterdir()) == ["a", "b", "c"]

    second = _sensor_tick(instance, first.cursor)
    assert second.run_requests == [] and "no new or changed files" in second.skip_message

    _csv(inbox / "a.csv", 40)
    os.utime(inbox / "a.csv", ns=(1, 1))
    third = _sensor_tick(instance, second.cursor)
    assert [r.partition_key for r in third.run_requests] == ["a.csv"]
    _launch(instance, third)
    assert sum(pq.ParquetFile(p).metadata.num_rows for p in (warehouse / "a").glob("part-*.parquet")) == 40


def test_cli_stream_reports_json_and_fails_clearly(tmp_path, capsys):
    src = _csv(tmp_path / "in.csv", 20)
    assert cli_main(["stream", str(src), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 20
    assert cli_main(["stream", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o2"), "--no-progress"]) == 2
    assert "missing.csv" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


def test_check_command_reads_what_is_on_disk(data_root, capsys):
    out = data_root / "warehouse" / "ingest" / "files" / "x"
    stream_file_to_shards(_csv(data_root / "x.csv", 10), out)
    code = cli_main(["check", "--group", "ingest"])
    printed = capsys.readouterr().out
    assert code == 0 and "PASS  ingest/files:reject_rate" in printed


def test_reject_rate_has_one_result_per_file_and_a_bad_file_fails_only_its_own(data_root, instance):
    """reject_rate is declared per file partition: a run over three files stores one
    evaluation per file (plus the run's aggregate), and only the file with too many rejects
    fails; ``assets-pkg check`` records the same per file, outside a run."""
    inbox = data_root / "inbox" / "files"
    inbox.mkdir(parents=True)
    _csv(inbox / "a.csv", 30)
    _csv(inbox / "b.csv", 50, bad_every=25)  # 2 of 50 rows rejected: 4% > the 1% warn rate
    (inbox / "b.csv.schema.json").write_text(json.dumps({"amount": "float64"}))
    _csv(inbox / "c.csv", 30)
    keys = ["a.csv", "b.csv", "c.csv"]
    instance.add_dynamic_partitions("ingest_files", keys)
    result = dg.materialize([ingest_files], instance=instance, resources={"io_manager": ShardedParquetIOManager()},
                            tags={"dagster/asset_partition_range_start": "a.csv",
                                  "dagster/asset_partition_range_end": "c.csv"})
    assert result.success
    check_key = dg.AssetCheckKey(dg.AssetKey(["ingest", "files"]), "reject_rate")
    history = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=20)
    assert {r.partition: r.status.value for r in history} == {
        "a.csv": "SUCCEEDED", "b.csv": "FAILED", "c.csv": "SUCCEEDED", None: "FAILED"}
    failed = next(r for r in history if r.partition == "b.csv").event.dagster_event.event_specific_data
    assert failed.metadata["max_reject_rate"].value == 0.04 and failed.description.startswith("b.csv: 4.00%")

    assert cli_main(["check", "--group", "ingest"]) == 0  # a WARN check: reported, not an ERROR failure
    runless = [r for r in instance.event_log_storage.get_asset_check_execution_history(check_key, limit=20)
               if not r.run_id]
    assert {r.partition: r.status.value for r in runless} == {"a.csv": "SUCCEEDED", "b.csv": "FAILED",
                                                              "c.csv": "SUCCEEDED"}


def test_ingest_launchpad_exposes_every_reader_option():
    import inspect

    from assets_pkg.ingest.assets import IngestConfig
    from assets_pkg.reader import StreamingReader

    # the file comes from the partition, column types from its sidecar, progress goes to the run's log
    not_config = {"file_path", "column_types", "report_progress", "progress_callback"}
    options = set(inspect.signature(StreamingReader).parameters) - not_config
    assert options <= set(IngestConfig.model_fields)
    assert all(IngestConfig.model_fields[name].description for name in options)
