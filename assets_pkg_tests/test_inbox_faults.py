"""Inbox faults, per sensor: a file still being written is never read half (the sensor
waits until it settles, a run that sees it change fails before publishing), and a file
replaced under the same name is processed again exactly once, with no stale rows."""

import os
import time

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets_pkg.demo.splits import make_rows, write_shard
from assets_pkg.inbox import SourceChangedError
from assets_pkg.ingest.stream import stream_file_to_shards
from assets_pkg.location import evaluate_sensor_tick
from assets_pkg.splits.discovery import discover
from assets_pkg.splits.params import SplitParams
from assets_pkg.splits.profile import profile_shard
from assets_pkg.summary import state as summary_state
from assets_pkg.summary.months import month_range
from assets_pkg.summary.source import Source, list_batch_files
from assets_pkg_tests.test_summary_helpers import cfg_for, full_build, read_months, write_batch

SETTLE = "INBOX_SETTLE_SECONDS"


def _settled(path):
    """Make ``path`` look written a minute ago (what waiting for INBOX_SETTLE_SECONDS gives)."""
    old = time.time() - 60
    os.utime(path, (old, old))


def _tick(data_root, instance, name):
    from assets_pkg.definitions import defs

    return evaluate_sensor_tick(defs, instance, name)


def _csv(path, first, count):
    path.write_text("id,amount\n" + "".join(f"{i},{i * 1.5}\n" for i in range(first, first + count)))
    return path


def _ingested_ids(folder) -> list[int]:
    return sorted(i for p in sorted(folder.glob("part-*.parquet")) for i in pq.read_table(p).column("id").to_pylist())


# ---- a file still being written -------------------------------------------------------------
@pytest.mark.parametrize("sensor, folder", [("ingest_file_sensor", "files"), ("splits_shard_sensor", "transactions"),
                                            ("summary_batch_sensor", "accounts")])
def test_a_file_written_a_moment_ago_waits_for_a_later_tick(data_root, instance, monkeypatch, sensor, folder):
    monkeypatch.setenv(SETTLE, "30")
    inbox = data_root / "inbox" / folder
    inbox.mkdir(parents=True)
    if folder == "files":
        path = _csv(inbox / "a.csv", 0, 50)
    elif folder == "transactions":
        path = inbox / "part-00001.parquet"
        write_shard(make_rows(200, seed=1), path)
    else:
        path = write_batch(inbox, "0001.parquet", [(k, "2024-01", 1.0, 0, 0) for k in (1, 2)])
    first = _tick(data_root, instance, sensor)
    assert first.results == []
    assert f"{path.name} (written" in (first.skip_message or ""), first.skip_message
    _settled(path)  # the copy is done: the next tick requests it whole
    second = _tick(data_root, instance, sensor)
    assert len(second.results) == 1 and second.results[0].success
    assert _tick(data_root, instance, sensor).results == []


def test_ingest_a_file_appended_while_read_publishes_nothing_then_reads_whole(tmp_path):
    src = _csv(tmp_path / "in.csv", 0, 3000)
    out = tmp_path / "out"
    appended = []

    def writer_still_copying(event):  # called by the reader between blocks of the file
        if not appended:
            with open(src, "a") as fh:
                fh.write("".join(f"{i},{i * 1.5}\n" for i in range(3000, 4000)))
            appended.append(True)

    with pytest.raises(SourceChangedError, match="in.csv: changed .* while it was being read"):
        stream_file_to_shards(src, out, chunk_size=100, report_progress=True, progress_interval=0.001,
                              progress_callback=writer_still_copying)
    assert appended and not out.exists()  # nothing that looks complete
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    stream_file_to_shards(src, out)  # the next run reads the whole file
    assert _ingested_ids(out) == list(range(4000))


def test_splits_a_shard_appended_while_profiled_fails_naming_it(data_root):
    inbox = data_root / "inbox" / "transactions"
    path = inbox / "part-00001.csv"
    write_shard(make_rows(3000, seed=2), path)
    lines = path.read_text().splitlines(keepends=True)
    appended = []

    def writer_still_copying(event):
        if not appended:
            with open(path, "a") as fh:
                fh.writelines(lines[1:200])
            appended.append(True)

    [shard] = discover(inbox).shards
    con = duckdb.connect()
    with pytest.raises(SourceChangedError, match="part-00001.csv: changed"):
        profile_shard(con, shard, SplitParams.from_env(), progress_callback=writer_still_copying)
    assert appended


def test_summary_run_leaves_out_a_batch_still_being_written_and_the_next_tick_takes_it(
        data_root, instance, monkeypatch, tmp_path):
    inbox = data_root / "inbox" / "accounts"
    base = [(k, m, float(k + i), i, 0) for k in (1, 2) for i, m in enumerate(month_range("2024-01", "2024-03"))]
    _settled(write_batch(inbox, "0001.parquet", base))
    assert len(_tick(data_root, instance, "summary_batch_sensor").results) == 1
    monkeypatch.setenv(SETTLE, "30")
    # 0002 is being copied in while a run for 0003 reads the inbox
    write_batch(inbox, "0002.parquet", [(3, "2024-02", 7.0, 0, 10)])
    _settled(write_batch(inbox, "0003.parquet", [(1, "2024-03", 9.0, 1, 10)]))
    [run] = _tick(data_root, instance, "summary_batch_sensor").results
    assert run.success
    assert set(summary_state.load_processed()) == {"0001.parquet", "0003.parquet"}
    months = data_root / "warehouse" / "summary" / "account_summary"
    assert 3 not in {r["cons_acct_key"] for rows in read_months(months).values() for r in rows}
    _settled(inbox / "0002.parquet")
    [run] = _tick(data_root, instance, "summary_batch_sensor").results
    assert run.success and set(summary_state.load_processed()) == {"0001.parquet", "0002.parquet", "0003.parquet"}
    assert _tick(data_root, instance, "summary_batch_sensor").results == []
    full_build(cfg_for(inbox), tmp_path / "full", "2024-01", "2024-03")
    assert read_months(months) == read_months(tmp_path / "full")


def test_summary_source_reads_one_version_of_a_batch_replaced_while_open(data_root):
    inbox = data_root / "inbox" / "accounts"
    write_batch(inbox, "0001.parquet", [(k, "2024-01", 1.0, 0, 0) for k in (1, 2)])
    con = duckdb.connect()
    with Source(con, cfg_for(inbox), list_batch_files(inbox)) as source:
        assert source.profile().rows == 2
        # a new version renamed over it between the profile and the build's scans
        write_batch(data_root / "next", "0001.parquet", [(k, "2024-01", 1.0, 0, 0) for k in (1, 2, 3, 4)])
        os.replace(data_root / "next" / "0001.parquet", inbox / "0001.parquet")
        assert con.execute("SELECT count(*) FROM summary_src").fetchall() == [(2,)]


def test_summary_a_csv_batch_changed_since_it_was_listed_is_refused_naming_it(data_root):
    inbox = data_root / "inbox" / "accounts"
    inbox.mkdir(parents=True)
    path = inbox / "0001.csv"
    path.write_text("cons_acct_key,rpt_as_of_mo,balance_am,days_past_due,base_ts\n1,2024-01,1.0,0,2024-01-01 00:00:00\n")
    files = list_batch_files(inbox)
    with open(path, "a") as fh:
        fh.write("2,2024-01,2.0,0,2024-01-01 00:00:00\n")
    with pytest.raises(SourceChangedError, match="0001.csv: changed"):
        Source(duckdb.connect(), cfg_for(inbox), files)


# ---- a file replaced under the same name ----------------------------------------------------
def _replace_then_tick_once(data_root, instance, sensor, path, write_new):
    """Replace ``path`` with new content: the next tick requests exactly one run for it, which
    succeeds; the tick after requests none."""
    write_new(path.parent / f".{path.name}.new")
    os.replace(path.parent / f".{path.name}.new", path)  # a new file under the old name
    [run] = _tick(data_root, instance, sensor).results
    assert run.success
    assert _tick(data_root, instance, sensor).results == []
    return run


def test_ingest_a_replaced_file_is_ingested_again_once_without_stale_rows(data_root, instance):
    inbox = data_root / "inbox" / "files"
    inbox.mkdir(parents=True)
    _csv(inbox / "a.csv", 0, 100)
    assert len(_tick(data_root, instance, "ingest_file_sensor").results) == 1
    out = data_root / "warehouse" / "ingest" / "files" / "a"
    assert _ingested_ids(out) == list(range(100))
    _replace_then_tick_once(data_root, instance, "ingest_file_sensor", inbox / "a.csv",
                            lambda p: _csv(p, 500, 30))
    assert _ingested_ids(out) == list(range(500, 530))


def test_splits_a_replaced_shard_is_split_again_once_without_stale_rows(data_root, instance):
    inbox = data_root / "inbox" / "transactions"
    for n in (1, 2):
        write_shard(make_rows(300, seed=n, start_id=1000 * n), inbox / f"part-0000{n}.parquet")
    assert [r.success for r in _tick(data_root, instance, "splits_shard_sensor").results] == [True]
    new = make_rows(120, seed=9, start_id=50_000)
    _replace_then_tick_once(data_root, instance, "splits_shard_sensor", inbox / "part-00001.parquet",
                            lambda p: pq.write_table(new, p))
    splits = data_root / "warehouse" / "splits"
    rows = pa.concat_tables([pq.read_table(p) for name in ("train", "val", "oot")
                             if (p := splits / name / "part-00001.parquet").exists()], promote_options="default")
    profile = pq.read_table(splits / "shard_profile" / "part-00001.parquet")
    assert set(profile.column("source").to_pylist()) == {"part-00001.parquet"}
    # every output row of shard 1 comes from the new file; no row of the old one survives
    id_col = "transaction_id" if "transaction_id" in new.column_names else new.column_names[0]
    assert set(rows.column(id_col).to_pylist()) <= set(new.column(id_col).to_pylist())
    assert rows.num_rows > 0
    old = make_rows(300, seed=1, start_id=1000)
    assert not set(rows.column(id_col).to_pylist()) & (set(old.column(id_col).to_pylist())
                                                       - set(new.column(id_col).to_pylist()))


def test_summary_a_replaced_batch_is_rebuilt_once_and_equals_a_full_build(data_root, instance, tmp_path):
    inbox = data_root / "inbox" / "accounts"
    base = [(k, m, float(k + i), i, 0) for k in (1, 2) for i, m in enumerate(month_range("2024-01", "2024-04"))]
    write_batch(inbox, "0001.parquet", base)
    write_batch(inbox, "0002.parquet", [(3, "2024-02", 5.0, 0, 10)])
    assert len(_tick(data_root, instance, "summary_batch_sensor").results) == 1
    # 0002 replaced: account 3's record is gone, account 4 arrives in another month
    _replace_then_tick_once(data_root, instance, "summary_batch_sensor", inbox / "0002.parquet",
                            lambda p: write_batch(p.parent, p.name, [(4, "2024-03", 6.0, 1, 10)]))
    months = read_months(data_root / "warehouse" / "summary" / "account_summary")
    assert 3 not in {r["cons_acct_key"] for rows in months.values() for r in rows}
    full_build(cfg_for(inbox), tmp_path / "full", "2024-01", "2024-04")
    assert months == read_months(tmp_path / "full")
