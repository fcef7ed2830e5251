"""Splits, ingest and the streaming reader on an object-store data root (a real SeaweedFS):
the same files as on a local root, row for row, the same checks green, and the publishing
rules of DESIGN section 8 (a multi-object output exists only through its commit; a killed
writer's uploads are invisible, then removed by the next writer after the grace period)."""

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from assets_pkg.checking import ERROR
from assets_pkg.cli import main as cli_main
from assets_pkg.demo import ingest as demo_ingest
from assets_pkg.demo import splits as demo_splits
from assets_pkg.ingest.checks import evaluate_materialized as ingest_checks
from assets_pkg.ingest.quality import counts_on_disk
from assets_pkg.ingest.stream import LINES_FILE, stream_file_to_shards
from assets_pkg.reader import StreamingReader
from assets_pkg.settings import get_settings
from assets_pkg.splits.checks import evaluate_materialized as splits_checks
from assets_pkg.splits.discovery import discover
from assets_pkg.splits.sensors import file_signature
from assets_pkg.splits.export import export_exists, export_root, published_files
from assets_pkg.splits.params import make_params
from assets_pkg.splits.pipeline import profile_all, run_all, staged_file
from assets_pkg.storage import as_path, is_remote, local_scratch
from assets_pkg.storage import objects
from assets_pkg.storage.arrow import read_table
from assets_pkg.storage.objects import GRACE_VAR, committed_files, list_files
from assets_pkg_tests.test_ingest import _launch as launch_ingest
from assets_pkg_tests.test_ingest import _sensor_tick as ingest_tick
from assets_pkg_tests.test_splits_assets import checks_of, launch, make_defs, tick

SPLITS = ("train", "val", "oot")


# -- helpers ------------------------------------------------------------------------------


def use_root(monkeypatch, root: str, home: Path) -> None:
    monkeypatch.setenv("ASSETS_PKG_DATA_DIR", root)
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("DAGSTER_HOME", str(home))


def splits_snapshot(root) -> dict[str, pa.Table]:
    """Every splits output under ``root``: profiles, allocation, train/val/oot partitions and
    the export tree (as its readers see it), by name. The profile's file-mtime row is left
    out: two copies of one input cannot share it."""
    warehouse = as_path(root) / "warehouse" / "splits"
    out = {}
    for name in ("shard_profile", *SPLITS):
        for path in list_files(warehouse / name):
            table = read_table(path)
            if name == "shard_profile":
                table = table.filter(pc.not_equal(table["kind"], "stat:file_mtime_ns"))
            out[f"{name}/{path.name}"] = table
    out["customer_allocation"] = read_table(warehouse / "customer_allocation.parquet")
    for rel, path in published_files(export_root(as_path(root) / "exports")).items():
        if rel.endswith(".parquet"):
            out[f"exports/{rel}"] = read_table(path)
    return out


def ingest_snapshot(root) -> dict:
    """Every ingested folder under ``root`` as its readers see it: parts, rejects, lines."""
    out_root = as_path(root) / "warehouse" / "ingest" / "files"
    out = {}
    for folder in list_files(out_root, folders=True):
        files = committed_files(folder) if is_remote(folder) else sorted(folder.iterdir())
        for path in files:
            key = f"{folder.name}/{path.name}"
            out[key] = json.loads(path.read_text()) if path.name == LINES_FILE else read_table(path)
    return out


def assert_same(local: dict, remote: dict) -> None:
    assert sorted(remote) == sorted(local)
    for name, expected in local.items():
        got = remote[name]
        same = got == expected if isinstance(expected, dict) else got.equals(expected)
        assert same, f"{name} differs between the local and the object-store root"


def error_outcomes_pass(outcomes) -> None:
    failed = [o.line() for o in outcomes if o.severity == ERROR and not o.passed]
    assert not failed, failed


def run_splits_graph(instance) -> list:
    """What the daemon does: the sensor registers the inbox shards, one run splits them and
    consolidates; every ERROR check of the run passed."""
    demo_splits.generate(get_settings().inbox / "transactions", scale="test")
    defs = make_defs()
    results = launch(defs, instance, tick(defs, instance))
    assert results and all(r.success for r in results)
    for result in results:
        checks = checks_of(result)
        assert checks and all(checks.values()), checks
    return results


def uploads_blocked_at_commit(script: str, marker: Path) -> subprocess.Popen:
    """A writer in its own process whose commit never comes: its parts are uploaded, then it
    waits at the commit until killed (what a kill -9 mid-publish leaves)."""
    code = (
        "import sys, time, json\n"
        "from assets_pkg.storage import objects\n"
        "def blocked(folder, parts, **extra):\n"
        f"    open({str(marker)!r}, 'w').write(json.dumps(sorted(parts)))\n"
        "    time.sleep(600)\n"
        "objects.write_commit = blocked\n" + script
    )
    process = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ))
    deadline = time.monotonic() + 180
    while not marker.exists():
        assert process.poll() is None, f"the writer ended (exit {process.returncode}) before its commit"
        assert time.monotonic() < deadline, "the writer never reached its commit"
        time.sleep(0.1)
    return process


def kill9(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(30) == -signal.SIGKILL


# -- the streaming reader -----------------------------------------------------------------


def test_reader_streams_remote_text_and_gzip_like_local_files(s3_root, tmp_path):
    body = "id,amount\n" + "".join(f"{i},{i * 1.5}\n" for i in range(5000)) + "7,oops\n"
    for name, data in (("x.csv", body.encode()), ("x.csv.gz", gzip.compress(body.encode()))):
        local = tmp_path / name
        local.write_bytes(data)
        remote = as_path(s3_root) / "inbox" / "files" / name
        with remote.open("wb") as fh:
            fh.write(data)
        expected = StreamingReader(local, column_types={"amount": pa.float64()})
        got = StreamingReader(remote, column_types={"amount": pa.float64()})
        assert got.to_record_batch_reader().read_all().equals(expected.to_record_batch_reader().read_all())
        assert got.stats.line_counts() == expected.stats.line_counts()
        assert got.rejects.column("raw").to_pylist() == ["7,oops"]
    # a URL string names the same object
    assert StreamingReader(f"{s3_root}/inbox/files/x.csv").to_record_batch_reader().read_all().num_rows == 5001


def test_remote_sniff_fetches_a_sample_not_the_whole_object(s3_root):
    from assets_pkg.reader.sniff import SAMPLE_BLOCK_BYTES, open_binary, sniff_format

    remote = as_path(s3_root) / "inbox" / "files" / "big.csv"
    line = b"1,2,3,4,5,6,7,8,9,10\n"
    with remote.open("wb") as fh:
        fh.write(b"a,b,c,d,e,f,g,h,i,j\n" + line * (2_000_000 // len(line)))
    assert sniff_format(remote).format == "csv"
    with open_binary(remote, SAMPLE_BLOCK_BYTES) as fh:
        fh.read(64 * 1024)
        fetched = fh.cache.total_requested_bytes
    assert 0 < fetched <= 2 * SAMPLE_BLOCK_BYTES < remote.stat().st_size


# -- splits -------------------------------------------------------------------------------


@pytest.mark.slow
def test_splits_graph_on_s3_equals_local_root(s3_root, tmp_path, monkeypatch, capsys):
    use_root(monkeypatch, str(tmp_path / "local"), tmp_path / "local_home")
    with dg.instance_for_test(temp_dir=str(tmp_path / "local_home")) as instance:
        run_splits_graph(instance)
    local = splits_snapshot(tmp_path / "local")
    error_outcomes_pass(splits_checks())

    use_root(monkeypatch, s3_root, tmp_path / "s3_home")
    with dg.instance_for_test(temp_dir=str(tmp_path / "s3_home")) as instance:
        run_splits_graph(instance)
    remote = splits_snapshot(s3_root)
    assert {n.split("/")[0] for n in remote} >= {"shard_profile", "train", "val", "oot", "exports"}
    assert_same(local, remote)
    error_outcomes_pass(splits_checks())
    assert not list_files(as_path(s3_root) / "warehouse" / "splits" / "_staged"), "stages stay in local scratch"

    # `assets-pkg splits manifest` reads the S3 root
    capsys.readouterr()
    assert cli_main(["splits", "manifest"]) == 0
    printed = capsys.readouterr().out
    assert "part-00042.parquet" in printed and "customers:" in printed

    # the torch dataset reads the S3 root's shards, every row once, with DataLoader workers
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    from assets_pkg.splits.dataset import SplitShardDataset

    dataset = SplitShardDataset("train", columns=["transaction_id"])
    assert dataset.files and all(is_remote(f) for f in dataset.files)
    seen = Counter()
    for batch in DataLoader(dataset, batch_size=64, num_workers=2):
        assert isinstance(batch["transaction_id"], torch.Tensor)
        seen.update(batch["transaction_id"].tolist())
    expected = pa.concat_tables([t for n, t in remote.items() if n.startswith("train/")])
    assert seen == Counter(expected.column("transaction_id").to_pylist())


def test_splits_sensor_sees_new_and_rewritten_shards_in_the_bucket(s3_root, seaweed, tmp_path):
    inbox = get_settings().inbox / "transactions"
    demo_splits.generate(inbox, scale="test")
    defs = make_defs()
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        first = tick(defs, instance)
        assert [r.tags["splits/shards"] for r in first.run_requests] == ["5"]
        # another client uploads a shard: the next tick lists the bucket afresh
        extra = tmp_path / "part-00077.parquet"
        demo_splits.write_shard(demo_splits.make_rows(50, seed=77), extra)
        seaweed.filesystem().put_file(str(extra), f"{objects.object_key(inbox)}/part-00077.parquet")
        assert "00077" in discover(inbox).by_key()
        second = tick(defs, instance, first.cursor)
        assert [r.tags["splits/shards"] for r in second.run_requests] == ["1"]
        # a shard rewritten with the same size within the same second (S3 mtimes are whole
        # seconds): its ETag tells it changed
        path = inbox / "part-00001.parquet"
        table = read_table(path)
        versions = []
        for i in (1, 2):
            local = tmp_path / f"v{i}.parquet"
            pq.write_table(table.set_column(0, "transaction_id", pc.add(table["transaction_id"], i)), local)
            versions.append(local)
        assert versions[0].stat().st_size == versions[1].stat().st_size == path.stat().st_size
        for _ in range(10):  # until both uploads land within one second
            seaweed.filesystem().put_file(str(versions[0]), objects.object_key(path))
            shard = discover(inbox).by_key()["00001"]  # the listing the sensor makes
            first_sig, first_st = file_signature(shard), path.stat()
            seaweed.filesystem().put_file(str(versions[1]), objects.object_key(path))
            shard = discover(inbox).by_key()["00001"]
            if path.stat().st_mtime_ns == first_st.st_mtime_ns:
                break
        assert path.stat().st_mtime_ns == first_st.st_mtime_ns and path.stat().st_size == first_st.st_size
        assert file_signature(shard) != first_sig
        third = tick(defs, instance, second.cursor)
        assert [r.tags["splits/shards"] for r in third.run_requests] == ["1"]


def test_text_shard_stages_live_in_local_scratch(s3_root):
    inbox = get_settings().inbox / "transactions"
    demo_splits.generate(inbox, scale="test")
    found = discover(inbox)
    warehouse = get_settings().warehouse
    from assets_pkg.duck import connect

    profile_all(connect(), found.shards, make_params(**demo_splits.SETTINGS), warehouse, found.signature)
    text = [s for s in found.shards if s.format != "parquet"]
    assert text
    for shard in text:
        stage = staged_file(warehouse, shard.key)
        assert not is_remote(stage) and stage.is_relative_to(local_scratch()) and stage.exists()
    keys = objects.filesystem(warehouse).find(objects.object_key(warehouse))
    assert not [k for k in keys if "_staged" in k], "no staged rows are uploaded"


def test_export_set_is_visible_only_through_its_commit(s3_root, seaweed):
    inbox = get_settings().inbox / "transactions"
    demo_splits.generate(inbox, scale="test")
    settings = get_settings()
    params = make_params(**demo_splits.SETTINGS)
    run_all(inbox, settings.warehouse, settings.exports, params)
    root = export_root(settings.exports)
    before = published_files(root)
    tables = {n: read_table(p) for n, p in before.items() if n.endswith(".parquet")}
    assert len(tables) == 4 and str(before["split_manifest.json"]).endswith("/split_manifest.json")
    # a stray object in the export tree (a killed writer's part): not part of the export
    seaweed.filesystem().pipe_file(objects.object_key(root / "training_data/train/part-00099.parquet"), b"junk")
    assert published_files(root) == before
    error_outcomes_pass(splits_checks())
    # replacing the export: the old one stays whole until the new commit
    run_all(inbox, settings.warehouse, settings.exports, params)
    after = published_files(root)
    assert sorted(after) == sorted(before)
    assert all(read_table(after[n]).equals(t) for n, t in tables.items())
    assert all(str(after[n]) != str(before[n]) for n in tables), "the new export is a new generation of parts"


@pytest.mark.slow
def test_killed_consolidation_is_invisible_then_a_rerun_equals_a_clean_run(s3_root, tmp_path, monkeypatch):
    params_code = "from assets_pkg.demo.splits import SETTINGS\nfrom assets_pkg.splits.params import make_params\n"
    run_code = (params_code + "from assets_pkg.settings import get_settings\nfrom assets_pkg.splits.pipeline import run_all\n"
                "s = get_settings()\nrun_all(s.inbox / 'transactions', s.warehouse, s.exports, make_params(**SETTINGS))\n")
    settings = get_settings()
    demo_splits.generate(settings.inbox / "transactions", scale="test")
    root = export_root(settings.exports)
    process = uploads_blocked_at_commit(run_code, tmp_path / "at_commit")
    kill9(process)
    leftovers = objects.uncommitted_objects(root)
    assert leftovers, "the killed writer's parts were uploaded"
    assert not export_exists(settings.exports) and published_files(root) == {}, "parts without a commit are no export"
    outcomes = {o.name: o for o in splits_checks()}
    assert "consolidated_matches_shards" not in outcomes or not outcomes["consolidated_matches_shards"].passed

    monkeypatch.setenv(GRACE_VAR, "0")  # the killed writer is gone: no need to wait an hour
    run_all(settings.inbox / "transactions", settings.warehouse, settings.exports, make_params(**demo_splits.SETTINGS))
    assert objects.uncommitted_objects(root) == []
    error_outcomes_pass(splits_checks())
    remote = splits_snapshot(s3_root)

    local_root = tmp_path / "local"
    demo_splits.generate(local_root / "inbox" / "transactions", scale="test")
    run_all(local_root / "inbox" / "transactions", local_root / "warehouse", local_root / "exports",
            make_params(**demo_splits.SETTINGS))
    assert_same(splits_snapshot(local_root), remote)


# -- ingest -------------------------------------------------------------------------------


@pytest.mark.slow
def test_ingest_on_s3_equals_local_root(s3_root, tmp_path, monkeypatch, capsys):
    results = {}
    for name, root in (("local", str(tmp_path / "local")), ("s3", s3_root)):
        use_root(monkeypatch, root, tmp_path / f"{name}_home")
        demo_ingest.generate(get_settings().inbox / "files", scale="test")
        with dg.instance_for_test(temp_dir=str(tmp_path / f"{name}_home")) as instance:
            runs = launch_ingest(instance, ingest_tick(instance))
        assert runs and all(r.success for r in runs)
        results[name] = (ingest_snapshot(root), counts_on_disk(get_settings().warehouse / "ingest" / "files"),
                         [(o.name, o.passed, o.description) for o in ingest_checks()])
    local, remote = results["local"], results["s3"]
    assert {k.split("/")[0] for k in remote[0]} == {"orders", "products", "events"}
    assert_same(local[0], remote[0])
    assert remote[1] == local[1] and remote[1][1] == {}, "every file's lines are accounted for"
    assert remote[2] == local[2]
    capsys.readouterr()
    assert cli_main(["check", "--group", "ingest"]) == 0


def test_ingest_parts_without_a_commit_are_ignored_by_readers_and_checks(s3_root, seaweed, tmp_path):
    out_root = get_settings().warehouse / "ingest" / "files"
    source = tmp_path / "a.csv"
    source.write_text("id,amount\n" + "".join(f"{i},{i}\n" for i in range(30)))
    stream_file_to_shards(source, out_root / "a", shard_rows=10)
    fs = seaweed.filesystem()
    stray = tmp_path / "stray.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3], "amount": [1.0, 2.0, 3.0]}), stray)
    # a folder without a commit, and a part its folder's commit does not list
    fs.put_file(str(stray), objects.object_key(out_root / "ghost" / "part-00000.parquet"))
    fs.put_file(str(stray), objects.object_key(out_root / "a" / "part-00009.parquet"))
    counts, unaccounted = counts_on_disk(out_root)
    assert counts == {"a": (30, 0)} and unaccounted == {}
    assert all(o.passed for o in ingest_checks())
    assert [p.name for p in committed_files(out_root / "a", "part-*.parquet")] == [
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]


@pytest.mark.slow
def test_killed_ingest_writer_keeps_the_old_folder_then_rerun_removes_its_leftovers(s3_root, tmp_path, monkeypatch):
    source = tmp_path / "orders.csv"
    source.write_text("id,amount\n" + "".join(f"{i},{i * 2}\n" for i in range(200)) + "x,bad\n")
    remote_source = get_settings().inbox / "files" / "orders.csv"
    with remote_source.open("wb") as fh:
        fh.write(source.read_bytes())
    folder = get_settings().warehouse / "ingest" / "files" / "orders"
    stream_file_to_shards(remote_source, folder, shard_rows=64)
    committed = ingest_snapshot(s3_root)

    # a replacing writer killed after uploading its parts, before its commit
    script = ("from assets_pkg.ingest.stream import stream_file_to_shards\n"
              f"stream_file_to_shards({str(remote_source)!r}, {str(folder)!r}, shard_rows=50)\n")
    kill9(uploads_blocked_at_commit(script, tmp_path / "at_commit"))
    leftovers = objects.uncommitted_objects(folder)
    assert [n for n in leftovers if "/part-" in n], "the killed writer's parts were uploaded"
    assert_same(committed, ingest_snapshot(s3_root))  # readers still see the last commit, whole
    assert counts_on_disk(folder.parent) == ({"orders": (201, 0)}, {}), counts_on_disk(folder.parent)

    # within the grace period the leftovers may be a live writer's: kept
    stream_file_to_shards(remote_source, folder, shard_rows=50)
    assert set(leftovers) <= set(objects.uncommitted_objects(folder))
    # past it (a short grace, as after a known kill) the next writer removes them
    monkeypatch.setenv(GRACE_VAR, "0")
    stream_file_to_shards(remote_source, folder, shard_rows=50)
    assert objects.uncommitted_objects(folder) == []
    remote = ingest_snapshot(s3_root)

    clean = tmp_path / "clean" / "orders"
    stream_file_to_shards(source, clean, shard_rows=50)
    local = {f"orders/{p.name}": json.loads(p.read_text()) if p.name == LINES_FILE else read_table(p)
             for p in sorted(clean.iterdir())}
    assert_same(local, remote)


def test_a_missing_bucket_is_named_by_the_sensors_and_the_splits_commands(s3_env, tmp_path, monkeypatch, capsys):
    use_root(monkeypatch, "s3://no-such-bucket-here/data", tmp_path / "home")
    # the CLI turns the storage error into one line naming the bucket and exit code 2
    assert cli_main(["splits", "manifest"]) == 2
    assert "bucket 'no-such-bucket-here'" in capsys.readouterr().err
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        with pytest.raises(Exception, match="no-such-bucket-here"):
            ingest_tick(instance)
        with pytest.raises(Exception, match="no-such-bucket-here"):
            tick(make_defs(), instance)


def test_check_reports_ingest_folders_and_export_sets_that_never_got_a_commit(s3_root, seaweed, tmp_path,
                                                                               monkeypatch, capsys):
    """A first ingest or a first export killed before its commit leaves parts no reader sees:
    `assets-pkg check` names them in a WARN (exit 0: a WARN never fails the check), once they
    are older than the grace period (a younger upload may be a live writer's)."""
    settings = get_settings()
    out_root = settings.warehouse / "ingest" / "files"
    source = tmp_path / "a.csv"
    source.write_text("id,amount\n" + "".join(f"{i},{i}\n" for i in range(30)))
    stream_file_to_shards(source, out_root / "a", shard_rows=10)  # committed: not reported
    fs = seaweed.filesystem()
    fs.pipe_file(objects.object_key(out_root / "ghost" / "part-00000.parquet"), b"PAR1 half an upload")
    export = export_root(settings.exports)
    fs.pipe_file(objects.object_key(export / "training_data" / "train" / "part-00000.parquet"), b"PAR1 half")
    fs.pipe_file(objects.object_key(export / "oot_data" / "part-00000.parquet"), b"PAR1 half")
    assert not export_exists(settings.exports) and counts_on_disk(out_root)[0] == {"a": (30, 0)}

    monkeypatch.setenv(GRACE_VAR, "0")
    capsys.readouterr()
    assert cli_main(["check", "--group", "ingest"]) == 0
    out = capsys.readouterr().out
    warns = [line for line in out.splitlines() if line.startswith("WARN  storage:no_uncommitted_objects")]
    assert len(warns) == 1 and f"1 object(s) under {out_root}/ghost " in warns[0] \
           and "part-00000.parquet" in warns[0], out

    assert cli_main(["check", "--group", "splits"]) == 0
    out = capsys.readouterr().out
    warns = [line for line in out.splitlines() if line.startswith("WARN  storage:no_uncommitted_objects")]
    assert len(warns) == 1 and f"2 object(s) under {export} " in warns[0], out
    assert "oot_data/part-00000.parquet" in warns[0] and "training_data/train/part-00000.parquet" in warns[0]

    monkeypatch.delenv(GRACE_VAR)
    assert cli_main(["check", "--group", "ingest"]) == 0
    assert cli_main(["check", "--group", "splits"]) == 0
    assert "WARN  storage" not in capsys.readouterr().out, "within the grace: maybe a live writer's, not reported"
