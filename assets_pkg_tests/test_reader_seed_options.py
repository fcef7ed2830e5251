"""The original reader's options and defaults (issue 16): strip on, empty rows skipped by
their key columns, encoding="auto", chunk ids with errors, a chunk's memory use."""

import pyarrow as pa

from assets_pkg.reader import StreamingReader


def _rows(reader):
    return [r for c in reader for r in c.batch.to_pylist()]


def test_skip_empty_skips_rows_whose_key_columns_are_all_empty(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,name,note\n1,a,x\n,,\n\n2,, y\n , ,z\n")
    reader = StreamingReader(path, columns=["id", "name"], column_types={"id": pa.int64()})
    assert _rows(reader) == [{"id": 1, "name": "a"}, {"id": 2, "name": None}]
    # ",," and the blank line and " , ,z" (whitespace only in the selected columns) are skipped
    assert reader.stats.line_counts()["skipped_lines"] == 3
    kept = StreamingReader(path, skip_empty=False, column_types={"id": pa.int64()})
    assert len(_rows(kept)) == 5


def test_encoding_auto_reads_latin1_and_utf16(tmp_path):
    (tmp_path / "l.csv").write_bytes("name,n\nJosé,1\nZoë,2\n".encode("cp1252"))
    reader = StreamingReader(tmp_path / "l.csv", encoding="auto")
    assert _rows(reader) == [{"name": "José", "n": 1}, {"name": "Zoë", "n": 2}]
    assert reader.stats.file_metadata["encoding"] == "cp1252"
    (tmp_path / "u.csv").write_bytes("name,n\nJosé,1\n".encode("utf-16"))
    assert _rows(StreamingReader(tmp_path / "u.csv", encoding="auto")) == [{"name": "José", "n": 1}]
    (tmp_path / "8.csv").write_text("name,n\nJosé,1\n", encoding="utf-8")
    reader = StreamingReader(tmp_path / "8.csv", encoding="auto")
    assert _rows(reader) == [{"name": "José", "n": 1}] and reader.stats.file_metadata["encoding"] == "utf-8"


def test_stats_list_the_chunks_with_errors_and_chunks_report_memory(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i}\n" if i % 250 else f"{i}\n" for i in range(1, 1001)))
    reader = StreamingReader(path, chunk_size=100, error_threshold=1.0)
    chunks = list(reader)
    with_errors = [c.chunk_id for c in chunks if c.errors]
    assert reader.stats.error_chunk_ids == with_errors and with_errors
    assert reader.stats.as_metadata()["error_chunk_ids"] == with_errors
    assert all(c.memory_bytes == c.batch.nbytes > 0 for c in chunks)
