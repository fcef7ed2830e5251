"""Normalisation into the fixed part schema and the streaming part writer."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets_pkg.logs.store import PART_SCHEMA
from assets_pkg.logs.writer import BatchNormalizer, EventFormatError, PartWriter, events_to_batch


def test_attributes_are_exact_json_of_the_other_fields():
    batch = pa.record_batch({
        "timestamp": pa.array([1, 2, 3, 4], pa.int32()),
        "event_id": ["a", "b", "c", "d"],
        "host": ["x", 'q"uo\\te', None, "é"],
        "n": [1, None, 3, -4],
        "f": [1.5, None, 2.25, 0.1],
        "ok": [True, False, None, True],
    })
    out = BatchNormalizer().normalize(batch)
    assert out.schema == PART_SCHEMA
    assert out.column("timestamp").to_pylist() == [1, 2, 3, 4]
    assert out.column("level").null_count == 4  # absent core fields are nulls
    others = batch.select(["host", "n", "f", "ok"]).to_pylist()
    assert [json.loads(a) for a in out.column("attributes").to_pylist()] == others


@pytest.mark.parametrize("values", [
    {"host": ["line\nbreak", "tab\there"]},          # control characters -> DuckDB escaping
    {"nested": [{"a": 1}, {"a": 2}]},                  # structs
    {"tags": [["x", "y"], []]},                        # lists
    {"f": [float("nan"), 1.0]},                        # not representable by the fast path
])
def test_attributes_fallback_is_valid_json(values):
    batch = pa.record_batch({"timestamp": [1, 2], **values})
    attrs = [json.loads(a) for a in BatchNormalizer().normalize(batch).column("attributes").to_pylist()]
    key = next(iter(values))
    if key != "f":
        assert [a[key] for a in attrs] == values[key]
    else:
        assert attrs[1]["f"] == 1.0


def test_events_without_usable_timestamps_are_refused():
    with pytest.raises(EventFormatError, match="no 'timestamp'"):
        BatchNormalizer().normalize(pa.record_batch({"event_id": ["a"]}))
    with pytest.raises(EventFormatError, match="integer milliseconds"):
        BatchNormalizer().normalize(pa.record_batch({"timestamp": ["yesterday"]}))
    with pytest.raises(EventFormatError, match="without a timestamp"):
        BatchNormalizer().normalize(pa.record_batch({"timestamp": pa.array([1, None], pa.int64())}))
    with pytest.raises(EventFormatError, match="integer milliseconds"):
        events_to_batch([{"timestamp": "1", "event_id": "x"}])
    with pytest.raises(EventFormatError):
        events_to_batch([{"timestamp": True, "event_id": "x"}])


def _batch(n, start=0):
    return events_to_batch([{"timestamp": start + i, "event_id": str(start + i), "level": "INFO", "message": "m" * 50}
                            for i in range(n)])


def test_writer_flushes_by_rows_and_clears_its_buffer(tmp_path):
    writer = PartWriter(tmp_path, flush_rows=100, flush_bytes=10**9)
    for i in range(7):
        writer.write(_batch(45, i * 45))
    writer.close()
    sizes = [pq.ParquetFile(p).metadata.num_rows for p in writer.parts]
    assert sizes == [100, 100, 100, 15] and writer.rows == 315
    assert writer.max_buffer_rows == 100 and writer._buffer == [] and writer._buffer_rows == 0
    ts = pa.concat_tables([pq.read_table(p) for p in writer.parts]).column("timestamp").to_pylist()
    assert ts == list(range(315))


def test_writer_flushes_by_bytes_inside_a_big_batch(tmp_path):
    batch = _batch(1000)
    writer = PartWriter(tmp_path, flush_rows=10**9, flush_bytes=batch.nbytes // 10)
    writer.write(batch)
    writer.close()
    assert 9 <= len(writer.parts) <= 11 and writer.rows == 1000


def test_empty_window_writes_one_zero_row_part(tmp_path):
    writer = PartWriter(tmp_path, flush_rows=10, flush_bytes=10**6)
    writer.close()
    assert [p.name for p in writer.parts] == ["part-00000.parquet"]
    assert pq.read_table(writer.parts[0]).schema == PART_SCHEMA


def test_flush_and_freshness_settings_from_env(monkeypatch):
    from assets_pkg.logs.fetch import freshness_minutes_setting
    from assets_pkg.logs.writer import flush_bytes_setting, flush_rows_setting
    from assets_pkg.settings import SettingError

    assert (flush_rows_setting(), flush_bytes_setting(), freshness_minutes_setting()) == (100_000, 64 * 2**20, 10)
    monkeypatch.setenv("FLUSH_ROWS", "7")
    monkeypatch.setenv("FLUSH_BYTES", "1024")
    monkeypatch.setenv("FRESHNESS_MINUTES", "0")
    assert (flush_rows_setting(), flush_bytes_setting(), freshness_minutes_setting()) == (7, 1024, 0)
    assert flush_rows_setting(3) == 3  # explicit config wins over the env
    for name, value in [("FLUSH_ROWS", "0"), ("FLUSH_ROWS", "many"), ("FLUSH_BYTES", "-1"), ("FRESHNESS_MINUTES", "-5")]:
        monkeypatch.setenv(name, value)
        with pytest.raises(SettingError, match=name):
            {"FLUSH_ROWS": flush_rows_setting, "FLUSH_BYTES": flush_bytes_setting,
             "FRESHNESS_MINUTES": freshness_minutes_setting}[name]()
        monkeypatch.setenv(name, {"FLUSH_ROWS": "7", "FLUSH_BYTES": "1024", "FRESHNESS_MINUTES": "0"}[name])


# --- the vectorized attributes path (no per-row Python, no DuckDB for flat columns) ----------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_texts = st.text(alphabet=st.sampled_from(['a', 'é', '"', '\\', ' ', '/', '€', '{', '😀']), max_size=6)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(_texts, st.booleans(), st.integers(-2**62, 2**62), st.booleans(), st.booleans()),
                  min_size=1, max_size=12),
    offset=st.integers(0, 3),
    with_nulls=st.booleans(),
)
def test_flat_attributes_are_exact_json_without_duckdb(rows, offset, with_nulls):
    """Strings with and without nulls (quotes folded into the separators), escaping only when
    needed, sliced batches (array offsets), ints, bools, an all-null column."""
    n = len(rows)
    host = [r[0] if not (with_nulls and r[3]) else None for r in rows]
    batch = pa.record_batch({
        "timestamp": pa.array(range(n), pa.int64()),
        "host": pa.array(host, pa.string()),
        "plain": pa.array([f"p{i}" for i in range(n)], pa.string()),
        "ok": pa.array([r[1] if not (with_nulls and r[4]) else None for r in rows], pa.bool_()),
        "n": pa.array([r[2] for r in rows], pa.int64()),
        "nothing": pa.nulls(n),
    })
    batch = batch.slice(min(offset, n - 1))
    normalizer = BatchNormalizer()
    out = normalizer.normalize(batch)
    assert normalizer._con is None  # flat columns without control characters: Arrow kernels only
    want = batch.select(["host", "plain", "ok", "n", "nothing"]).to_pylist()
    assert [json.loads(a) for a in out.column("attributes").to_pylist()] == want


def test_events_without_extra_fields_get_empty_objects():
    batch = pa.record_batch({"timestamp": pa.array([1, 2, 3], pa.int64()), "event_id": ["a", "b", "c"]})
    assert BatchNormalizer().normalize(batch).column("attributes").to_pylist() == ["{}"] * 3
    assert BatchNormalizer().normalize(batch.slice(0, 0)).column("attributes").to_pylist() == []


def test_parts_are_written_with_the_part_encoding_and_read_back(tmp_path):
    import duckdb

    writer = PartWriter(tmp_path, flush_rows=1000, flush_bytes=2**30)
    batch = BatchNormalizer().normalize(pa.record_batch({
        "timestamp": pa.array(range(10, 2510), pa.int64()), "level": ["INFO", "WARN"] * 1250,
        "host": ["h1", "h2"] * 1250,
    }))
    writer.write(batch)
    writer.close()
    meta = pq.ParquetFile(writer.parts[0]).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    assert "DELTA_BINARY_PACKED" in encodings["timestamp"]
    assert any("DICTIONARY" in e for e in encodings["level"])
    con = duckdb.connect()
    got = con.execute("SELECT count(*), min(timestamp), max(timestamp), count(DISTINCT attributes) FROM read_parquet(?)",
                      [[str(p) for p in writer.parts]]).fetchall()
    assert got == [(2500, 10, 2509, 2)]
    assert pa.concat_tables([pq.read_table(p) for p in writer.parts]).equals(pa.Table.from_batches([batch]))
