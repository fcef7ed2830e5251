"""Text shards are parsed once: pass 1 stages the parsed rows, pass 2 reads the stage.

Real csv/tsv/gzip files, a real DuckDB, the real streaming reader; the stage is only a
cache, so every test also checks the outputs equal those of parsing the input again.
"""

import os
from pathlib import Path

import pyarrow as pa
import pytest

from assets_pkg.demo.splits import SETTINGS, make_rows, write_shard
from assets_pkg.duck import connect
from assets_pkg.splits import invariants, staging
from assets_pkg.splits.discovery import discover
from assets_pkg.splits.params import make_params
from assets_pkg.splits.pipeline import (
    manifest_file,
    profile_all,
    read_json,
    shard_file,
    split_and_write,
    staged_file,
    write_allocation,
)
from assets_pkg.splits.shard_io import ShardError


@pytest.fixture
def inbox(data_root) -> Path:
    folder = data_root / "inbox" / "transactions"
    folder.mkdir(parents=True)
    return folder


def outputs(warehouse: Path) -> dict:
    return {str(p.relative_to(warehouse)): p.read_bytes()
            for p in sorted((warehouse / "splits").rglob("part-*"))
            if p.parent.name in ("train", "val", "oot")}


def pass_1(inbox: Path, warehouse: Path, con=None):
    con = con or connect()
    found = discover(inbox)
    params = make_params(**SETTINGS)
    profile_all(con, found.shards, params, warehouse, found.signature)
    paths = [shard_file(warehouse, "shard_profile", s.key) for s in found.shards]
    allocation, manifest = write_allocation(con, paths, params, warehouse)
    return con, found, params, allocation, manifest


def pass_2(con, found, params, allocation, manifest, warehouse: Path):
    return split_and_write(con, found.shards, params, warehouse, manifest, found.signature,
                           customers=allocation.customers)


def forbid_parsing(monkeypatch):
    """Pass 2 must not parse a text shard that has a current stage."""
    import assets_pkg.reader

    def refuse(*_a, **_k):
        raise AssertionError("the input was parsed again")

    monkeypatch.setattr(assets_pkg.reader, "StreamingReader", refuse)


def test_pass_2_reads_the_stage_not_the_input_and_removes_it(data_root, inbox, monkeypatch):
    for number, name in ((1, "part-00001.csv"), (2, "part-00002.tsv"), (3, "part-00003.csv.gz"), (4, "part-00004.parquet")):
        n = 250_000 if number == 1 else 300  # shard 1 spans several reader batches: their order must hold
        write_shard(make_rows(n, seed=number, n_customers=400), inbox / name)
    wh = data_root / "warehouse"
    state = pass_1(inbox, wh)
    for key in ("00001", "00002", "00003"):
        assert staged_file(wh, key).exists() and staging.sidecar(staged_file(wh, key)).exists()
    import pyarrow.ipc as ipc

    assert ipc.open_file(str(staged_file(wh, "00001"))).num_record_batches >= 3
    assert not staged_file(wh, "00004").exists()  # parquet is read by DuckDB directly
    with monkeypatch.context() as m:
        forbid_parsing(m)
        pass_2(*state, wh)
    assert not list((wh / "splits" / "_staged").iterdir())  # each stage removed once used
    reference = data_root / "reference"  # the same inputs, each text shard parsed in both passes
    ref_state = pass_1(inbox, reference)
    for key in ("00001", "00002", "00003"):
        staging.remove(staged_file(reference, key))
    pass_2(*ref_state, reference)
    assert len(outputs(wh)) >= 8 and outputs(wh) == outputs(reference)
    import numpy as np
    import pyarrow.parquet as pq

    for split in ("train", "val", "oot"):  # several reader batches, still in input order
        ids = pq.read_table(wh / "splits" / split / "part-00001.parquet").column("transaction_id").to_numpy()
        assert (np.diff(ids) > 0).all(), split
    assert invariants.row_accounting(wh, read_json(manifest_file(wh))).passed


def test_a_stage_keeps_the_rejected_line_count(data_root, inbox, monkeypatch):
    lines = ["customer_id,date,label"] + [f"C{i},2023-02-01,0" for i in range(60)] + ["X,2023-02-01,0,extra,fields"]
    (inbox / "part-00006.csv").write_text("\n".join(lines) + "\n")
    wh = data_root / "warehouse"
    state = pass_1(inbox, wh)
    with monkeypatch.context() as m:
        forbid_parsing(m)
        [result] = pass_2(*state, wh)
    assert result.counts["rejected_lines"] == 1 and result.counts["rows_in"] == 61
    assert invariants.row_accounting(wh, read_json(manifest_file(wh))).passed


def test_an_input_changed_after_pass_1_is_parsed_again_not_taken_from_the_stage(data_root, inbox):
    path = inbox / "part-00001.csv"
    write_shard(make_rows(300, seed=1, n_customers=40), path)
    wh = data_root / "warehouse"
    state = pass_1(inbox, wh)
    # new content, same size: only the mtime tells; pass 2 must see the new rows
    text = path.read_text()
    assert '"legit"' in text
    path.write_text(text.replace('"legit"', '"LEGIT"', 1))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10_000_000))
    assert not staging.is_current(staged_file(wh, "00001"), staging.identity(state[1].shards[0], None))
    with pytest.raises(ShardError, match=r"part-00001\.csv.*(never seen|differ)"):
        pass_2(*state, wh)


def test_a_failed_pass_1_publishes_no_stage(data_root, inbox):
    bad = make_rows(200, seed=1, n_customers=30).to_pylist()
    for r in bad[:100]:
        r["date"] = "not a date"
    write_shard(pa.Table.from_pylist(bad), inbox / "part-00001.csv")
    wh = data_root / "warehouse"
    with pytest.raises(ShardError, match="error_threshold"):
        pass_1(inbox, wh)
    folder = wh / "splits" / "_staged"
    assert not folder.exists() or not list(folder.iterdir())  # no stage and no temp file


def test_a_truncated_gzip_shard_publishes_no_stage(data_root, inbox):
    write_shard(make_rows(3000, seed=1, n_customers=30), inbox / "part-00001.csv.gz")
    data = (inbox / "part-00001.csv.gz").read_bytes()
    (inbox / "part-00001.csv.gz").write_bytes(data[: len(data) // 2])
    wh = data_root / "warehouse"
    with pytest.raises(ShardError, match=r"part-00001\.csv\.gz"):
        pass_1(inbox, wh)
    folder = wh / "splits" / "_staged"
    assert not folder.exists() or not list(folder.iterdir())


def test_an_unreadable_stage_is_dropped_and_the_input_parsed(data_root, inbox):
    write_shard(make_rows(300, seed=1, n_customers=40), inbox / "part-00001.csv")
    wh = data_root / "warehouse"
    state = pass_1(inbox, wh)
    stage = staged_file(wh, "00001")
    stage.write_bytes(stage.read_bytes()[:100])  # the sidecar still says it is current
    pass_2(*state, wh)
    assert not stage.exists() and not staging.sidecar(stage).exists()
    assert invariants.row_accounting(wh, read_json(manifest_file(wh))).passed


def test_a_stage_without_its_sidecar_is_never_used(data_root, inbox):
    write_shard(make_rows(300, seed=1, n_customers=40), inbox / "part-00001.csv")
    wh = data_root / "warehouse"
    shard = discover(inbox).shards[0]
    state = pass_1(inbox, wh)
    staging.sidecar(staged_file(wh, "00001")).unlink()  # e.g. killed between the two renames
    assert staging.load(staged_file(wh, "00001"), staging.identity(shard, None)) is None
    pass_2(*state, wh)
    assert invariants.row_accounting(wh, read_json(manifest_file(wh))).passed


def test_a_killed_pass_1_leaves_only_a_hidden_temp_that_the_next_pass_1_clears(data_root, inbox):
    write_shard(make_rows(300, seed=1, n_customers=40), inbox / "part-00001.csv")
    wh = data_root / "warehouse"
    folder = wh / "splits" / "_staged"
    folder.mkdir(parents=True)
    abandoned = folder / ".part-00001.arrow.tmp-0123456789ab"
    abandoned.write_bytes(b"half a stage")
    fresh = folder / ".part-00001.arrow.tmp-ba9876543210"  # maybe a live writer: kept
    fresh.write_bytes(b"being written")
    old = abandoned.stat().st_mtime - staging.ABANDONED_AFTER_S - 60
    os.utime(abandoned, (old, old))
    shard = discover(inbox).shards[0]
    assert staging.load(staged_file(wh, "00001"), staging.identity(shard, None)) is None
    pass_1(inbox, wh)
    assert not abandoned.exists() and fresh.exists()
    assert staging.is_current(staged_file(wh, "00001"), staging.identity(shard, None))


def test_the_stage_of_a_shard_removed_from_the_inbox_is_pruned(data_root, inbox):
    from assets_pkg.splits.pipeline import prune_stages

    for number in (1, 2):
        write_shard(make_rows(300, seed=number, n_customers=40), inbox / f"part-{number:05d}.csv")
    wh = data_root / "warehouse"
    pass_1(inbox, wh)
    (inbox / "part-00002.csv").unlink()
    assert prune_stages(wh, discover(inbox)) == ["00002"]
    assert staged_file(wh, "00001").exists() and not staged_file(wh, "00002").exists()
    assert not staging.sidecar(staged_file(wh, "00002")).exists()


def test_a_stage_that_does_not_hold_every_counted_row_is_not_published(tmp_path):
    """The consumer's row count is the check that the whole shard went through the tee."""
    table = make_rows(50, seed=1, n_customers=10)
    path = tmp_path / "stage" / "part-00001.arrow"
    writer = staging.StageWriter(path, {"source": "part-00001.csv", "version": staging.STAGE_VERSION})
    batches = writer.tee(pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=20)))
    next(iter(batches))  # the consumer stopped after the first batch
    writer.commit(rejected_lines=0, rows=50)
    assert not path.exists() and not staging.sidecar(path).exists()
    assert not [p for p in path.parent.iterdir()]  # the temp file is gone too
