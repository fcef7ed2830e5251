"""The summary build's in-memory parts: key index, history ring, lazily gathered months."""

import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from assets_pkg.summary.month_file import write_month_file
from assets_pkg.summary.ring import HistoryRing, KeyIndex, MonthRows
from assets_pkg_tests.test_summary_helpers import cfg_for, full_build, read_months, reference, write_batch


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(-50, 50), max_size=12), max_size=6), st.booleans())
def test_key_index_gives_first_seen_rows(months, as_text):
    """Rows are handed out in first-seen order, whatever the key type or lookup path."""
    index = KeyIndex()
    rows: dict = {}
    for keys in months:
        keys = sorted(set(keys))  # a month's winners come sorted by key, unique
        typed = pa.array([str(k) for k in keys] if as_text else keys, pa.string() if as_text else pa.int64())
        got = index.lookup(typed).tolist()
        for k in keys:
            rows.setdefault(str(k) if as_text else k, len(rows))
        assert got == [rows[str(k) if as_text else k] for k in keys]
    assert len(index) == len(rows)
    assert (index.keys.to_pylist() if index.keys is not None else []) == list(rows)


def _month(ring: HistoryRing, month: int, keys: list[int], values: list) -> np.ndarray:
    idx = ring.index(pa.array(keys, pa.int64()))
    ring.put(month, idx, [pa.array(values, pa.float64())])
    return idx


def test_window_survives_lag_later_months():
    """Month M's window is read while M+1..M+lag are stored (a writer thread lags behind)."""
    ring = HistoryRing(3, [np.float64], capacity=8, lag=2)
    _month(ring, 9, [1], [9.0])
    _month(ring, 10, [1, 2], [1.0, 2.0])
    idx = _month(ring, 11, [1, 2], [11.0, None])
    window = ring.window(11, idx, [pa.float64()])
    _month(ring, 12, [1, 2, 3], [12.0, 22.0, 32.0])
    _month(ring, 13, [2], [23.0])
    assert window.lists(0, 0, 2).to_pylist() == [[11.0, 1.0, 9.0], [None, 2.0, None]]
    later = ring.window(13, ring.index(pa.array([1, 2, 3], pa.int64())), [pa.float64()])
    assert later.lists(0, 0, 3).to_pylist() == [[None, 12.0, 11.0], [23.0, 22.0, None], [None, 32.0, None]]


def test_window_survives_the_ring_growing():
    ring = HistoryRing(2, [np.float64], capacity=1, lag=1)
    idx = _month(ring, 1, [7], [1.0])
    window = ring.window(1, idx, [pa.float64()])
    _month(ring, 2, [5, 6, 7, 8], [2.0, 2.0, 2.0, 2.0])
    assert window.lists(0, 0, 1).to_pylist() == [[1.0, None]]
    assert ring.window(2, ring.index(pa.array([7], pa.int64())), [pa.float64()]).lists(0, 0, 1).to_pylist() == [[2.0, 1.0]]


def test_month_rows_batches_equal_the_table(tmp_path):
    """Batches reuse one buffer per thread; written one by one they give the same file as
    the whole table, and a batch made on another thread does not disturb them."""
    ring = HistoryRing(4, [np.float64, np.int32], lag=1)
    keys = list(range(10))
    for m in range(6):
        idx = ring.index(pa.array(keys, pa.int64()))
        ring.put(m, idx, [pa.array([float(k * m) if (k + m) % 3 else None for k in keys]),
                          pa.array([k + m for k in keys], pa.int32())])
    schema = pa.schema([("k", pa.int64()), ("a_history", pa.list_(pa.float64())), ("b_history", pa.list_(pa.int32()))])
    rows = MonthRows(schema, [pa.array(keys, pa.int64())], ring.window(5, idx, [pa.float64(), pa.int32()]))
    whole = rows.to_table()
    parts = []
    for batch in rows.batches(3):
        other = threading.Thread(target=lambda: list(rows.batches(4)))
        other.start()
        other.join()
        parts.append(batch.to_pylist())  # read before the next batch overwrites the buffer
    assert sum(parts, []) == whole.to_pylist()
    assert whole.column("a_history")[4].as_py() == [None, 16.0, 12.0, None]  # key 4, months 5..2
    result = write_month_file(rows, tmp_path / "m.parquet")
    meta = pq.ParquetFile(tmp_path / "m.parquet").metadata
    assert (result.rows, meta.num_rows) == (10, 10)
    assert pq.read_table(tmp_path / "m.parquet").to_pylist() == whole.to_pylist()


def test_an_empty_month_deletes_its_file(tmp_path):
    path = tmp_path / "m.parquet"
    path.write_bytes(b"old")
    schema = pa.schema([("k", pa.int64())])
    assert write_month_file(MonthRows(schema, [], None), path).rows == 0
    assert not path.exists()


def test_a_stream_of_batches_is_written_as_a_month_file(tmp_path):
    """latest_summary's rows come as a stream: written with the month files' codecs, every
    row counted as written; a stream without a row (empty batches only) deletes the file."""
    schema = pa.schema([("k", pa.int64()), ("a_history", pa.list_(pa.float64()))])
    batches = [pa.record_batch([pa.array(range(i, i + 3)), pa.array([[float(i), None]] * 3)], schema=schema)
               for i in (0, 3, 6)]
    empty = [pa.record_batch([pa.array([], pa.int64()), pa.array([], schema.field(1).type)], schema=schema)]
    path = tmp_path / "latest.parquet"
    result = write_month_file(pa.RecordBatchReader.from_batches(schema, [*empty, *batches]), path, row_group_rows=2)
    assert result.rows == 9 and result.bytes == path.stat().st_size
    assert pq.read_table(path).to_pylist() == pa.Table.from_batches(batches).to_pylist()
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == 6  # each 3-row batch cut at 2 rows
    assert "BYTE_STREAM_SPLIT" in meta.row_group(0).column(1).encodings
    assert write_month_file(pa.RecordBatchReader.from_batches(schema, empty), path).rows == 0
    assert not path.exists()


def test_a_later_null_value_wins(data_root, tmp_path):
    """The winning record's NULL is kept: an older non-NULL value must not show through."""
    inbox = tmp_path / "inbox"
    records = [(1, "2024-01", 5.0, 30, 0), (1, "2024-01", None, None, 1)]
    write_batch(inbox, "b1.parquet", records)
    out = tmp_path / "out"
    full_build(cfg_for(inbox, first_month="2024-01"), out, "2024-01", "2024-01")
    got = read_months(out)
    assert got == reference([("b1.parquet", records)])
    assert got["2024-01"][0]["balance_am"] is None and got["2024-01"][0]["balance_am_history"][0] is None


def test_month_file_history_pages_are_large(tmp_path, monkeypatch):
    """The history lists go in pages of up to DATA_PAGE_BYTES: zstd restarts on every page,
    so Arrow's default 1 MiB pages write more bytes for the same values (what an object
    store ingests); the values read back unchanged."""
    from assets_pkg.summary import month_file

    rng = np.random.default_rng(7)
    n = 20_000  # one page at most (Arrow cuts pages at 20k rows), about 5.8 MB of list values
    cents = rng.integers(-50_000, 500_000, n * 36) / 100  # balances with two decimals, as the bench's
    values = pa.array(np.where(rng.random(n * 36) < 0.07, np.nan, cents), from_pandas=True)
    table = pa.table({"k": pa.array(np.arange(n), pa.int64()),
                      "a_history": pa.FixedSizeListArray.from_arrays(values, 36).cast(pa.list_(pa.float64()))})

    def history_bytes(path):
        meta = pq.ParquetFile(path).metadata
        return sum(meta.row_group(g).column(1).total_compressed_size for g in range(meta.num_row_groups))

    write_month_file(table, tmp_path / "large.parquet")
    monkeypatch.setattr(month_file, "DATA_PAGE_BYTES", 1 << 20)
    write_month_file(table, tmp_path / "small.parquet")
    assert history_bytes(tmp_path / "large.parquet") < 0.99 * history_bytes(tmp_path / "small.parquet")
    assert pq.read_table(tmp_path / "large.parquet").equals(table)
