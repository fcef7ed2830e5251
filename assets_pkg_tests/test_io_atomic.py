"""Atomic publication: a failure leaves the old file and no temp file behind."""

import os

import pyarrow as pa
import pytest

from assets_pkg.io import atomic_dir, atomic_path, atomic_write_text, remove_stale_temps, write_table


def test_atomic_path_publishes_on_success(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert not target.exists()
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_path_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_dir_refuses_to_overwrite_and_cleans_up(tmp_path):
    final = tmp_path / "segment"
    with atomic_dir(final) as work:
        (work / "part-00000.parquet").write_bytes(b"x")
    assert (final / "part-00000.parquet").exists()
    with pytest.raises(FileExistsError):
        with atomic_dir(final):
            pass
    with pytest.raises(ValueError):
        with atomic_dir(tmp_path / "other") as work:
            (work / "a").write_text("partial")
            raise ValueError("crash")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["segment"]


def test_remove_stale_temps_only_touches_temp_names(tmp_path):
    (tmp_path / ".a.parquet.tmp-123").write_text("x")
    (tmp_path / ".b.tmp-456").mkdir()
    (tmp_path / "keep.parquet").write_text("x")
    assert remove_stale_temps(tmp_path) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["keep.parquet"]


def test_remove_stale_temps_beside_one_name_and_only_old_ones(tmp_path):
    import os
    import time

    old = time.time() - 3600
    for name in (".a.arrow.tmp-1", ".a.arrow.tmp-2", ".b.arrow.tmp-3"):
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, (old, old))
    (tmp_path / ".a.arrow.tmp-live").write_text("x")  # a writer still at work: just touched
    assert remove_stale_temps(tmp_path, beside=tmp_path / "a.arrow", older_than_s=600) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.arrow.tmp-live", ".b.arrow.tmp-3"]


def test_write_table_streams_and_removes_old_file_when_empty(tmp_path):
    path = tmp_path / "t.parquet"
    result = write_table(pa.table({"a": [1, 2, 3]}), path)
    assert (result.rows, result.path) == (3, path) and result.bytes == path.stat().st_size
    empty = write_table(pa.table({"a": pa.array([], pa.int64())}), path)
    assert empty.path is None and empty.rows == 0
    assert not path.exists()


def test_write_table_accepts_duckdb_relation_pandas_and_reader(tmp_path):
    import duckdb
    import pandas as pd

    con = duckdb.connect()
    rel = con.sql("SELECT range AS i FROM range(1000)")
    assert write_table(rel, tmp_path / "r.parquet").rows == 1000
    assert write_table(pd.DataFrame({"x": [1, 2]}), tmp_path / "p.csv", "csv").rows == 2
    assert (tmp_path / "p.csv").read_text().splitlines() == ['"x"', "1", "2"]
    reader = pa.RecordBatchReader.from_batches(pa.schema([("a", pa.int64())]), [pa.record_batch([[1]], names=["a"])])
    assert write_table(reader, tmp_path / "b.tsv", "tsv").rows == 1


def test_write_table_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unknown output format 'xlsx'"):
        write_table(pa.table({"a": [1]}), tmp_path / "x.xlsx", "xlsx")


def test_atomic_dir_replace_swaps_only_a_complete_folder(tmp_path):
    final = tmp_path / "out"
    with atomic_dir(final) as work:
        (work / "old.parquet").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(final, replace=True) as work:
            (work / "new.parquet").write_text("partial")
            raise RuntimeError("killed")
    assert [p.name for p in final.iterdir()] == ["old.parquet"]
    with atomic_dir(final, replace=True) as work:
        (work / "new.parquet").write_text("new")
    assert [p.name for p in final.iterdir()] == ["new.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: its pid names no process now
    return proc.pid


def _plant(folder, final_name, pid, age_s=0.0):
    import time

    from assets_pkg.io.atomic import _host_tag

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".{final_name}.tmp-{_host_tag()}-{pid}-0123456789ab"
    path.write_bytes(b"half a file")
    if age_s:
        old = time.time() - age_s
        os.utime(path, (old, old))
    return path


def test_a_write_clears_the_folder_s_temps_of_dead_writers_and_old_ones_and_keeps_live_ones(tmp_path):
    from assets_pkg.io.atomic import STALE_TEMP_GRACE_S

    folder = tmp_path / "asset"
    dead = _plant(folder, "2024-01.parquet", _dead_pid())
    other_dead = _plant(folder, "2024-02.parquet", _dead_pid())
    old = folder / ".2024-03.parquet.tmp-0123456789ab"  # an earlier release's name: by age only
    old.write_text("x")
    os.utime(old, (1, 1))
    young_unnamed = folder / ".2024-04.parquet.tmp-ba9876543210"
    young_unnamed.write_text("x")
    live = _plant(folder, "2024-01.parquet", os.getpid())  # this process: a writer at work
    assert STALE_TEMP_GRACE_S > 60
    atomic_write_text(folder / "2024-01.parquet", "new")
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted(["2024-01.parquet", live.name, young_unnamed.name])
    assert not dead.exists() and not other_dead.exists() and not old.exists()
