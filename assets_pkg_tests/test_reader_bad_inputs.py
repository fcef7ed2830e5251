"""StreamingReader: each bad input gives a clear error or a counted reject with its line."""

import gzip
import json
import os

import pyarrow as pa
import pytest

from assets_pkg.reader import ReaderError, RejectThresholdExceeded, StreamingReader


def rows_of(reader):
    return [row for chunk in reader for row in chunk.batch.to_pylist()]


def test_missing_file(tmp_path):
    with pytest.raises(ReaderError, match=r"nope\.csv: file not found"):
        StreamingReader(tmp_path / "nope.csv")


def test_directory(tmp_path):
    with pytest.raises(ReaderError, match="is a directory"):
        StreamingReader(tmp_path)


def test_empty_file_is_an_error(tmp_path):
    (tmp_path / "e.csv").write_bytes(b"")
    with pytest.raises(ReaderError, match=r"e\.csv: file is empty \(0 bytes\)"):
        StreamingReader(tmp_path / "e.csv")


def test_empty_gzip_content_is_an_error(tmp_path):
    (tmp_path / "e.csv.gz").write_bytes(gzip.compress(b""))
    with pytest.raises(ReaderError, match="empty after decompression"):
        StreamingReader(tmp_path / "e.csv.gz")


def test_wrong_delimiter_semicolon_suggests_it(tmp_path):
    (tmp_path / "t.csv").write_text("a;b;c\n1;2;3\n")
    reader = StreamingReader(tmp_path / "t.csv")
    with pytest.raises(ReaderError, match=r"t\.csv.*delimiter is probably ';'.*delimiter=';'"):
        list(reader)


def test_wrong_delimiter_tab_in_csv_suggests_tsv(tmp_path):
    (tmp_path / "t.csv").write_text("a\tb\n1\t2\n")
    with pytest.raises(ReaderError, match="file_format='tsv'"):
        list(StreamingReader(tmp_path / "t.csv", file_format="csv"))


def test_ragged_rows_become_rejects_with_line_numbers(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,c\n1,2,3\n4,5\n6,7,8,9\n10,11,12\n")
    reader = StreamingReader(tmp_path / "t.csv", error_threshold=1)
    assert rows_of(reader) == [{"a": 1, "b": 2, "c": 3}, {"a": 10, "b": 11, "c": 12}]
    assert reader.rejects.to_pylist() == [
        {"line": 3, "error_type": "ragged_row", "error": "expected 3 fields, found 2", "raw": "4,5"},
        {"line": 4, "error_type": "ragged_row", "error": "expected 3 fields, found 4", "raw": "6,7,8,9"},
    ]
    assert reader.stats.total_errors == 2 and reader.stats.chunks_with_errors == 1


def test_type_failure_is_rejected_not_nulled(tmp_path):
    (tmp_path / "t.csv").write_text("id,v\n1,10\n2,oops\n3,\n4,40\n")
    reader = StreamingReader(tmp_path / "t.csv", column_types={"v": pa.int64()}, error_threshold=1)
    assert rows_of(reader) == [{"id": 1, "v": 10}, {"id": 3, "v": None}, {"id": 4, "v": 40}]
    assert reader.rejects.to_pylist() == [
        {"line": 3, "error_type": "type_error", "error": "column 'v': cannot convert 'oops' to int64", "raw": "2,oops"}
    ]


def test_type_failure_line_numbers_account_for_blank_and_ragged_lines(tmp_path):
    (tmp_path / "t.csv").write_text("id,v\n1,1\n\n2\n3,x\n\n4,4\n5,y\n")
    reader = StreamingReader(tmp_path / "t.csv", column_types={"v": pa.int64()}, error_threshold=1)
    assert [r["id"] for r in rows_of(reader)] == [1, 4]
    assert [(r["line"], r["error_type"]) for r in reader.rejects.to_pylist()] == [
        (4, "ragged_row"), (5, "type_error"), (8, "type_error")
    ]


def test_type_failures_found_exactly_in_a_big_block(tmp_path):
    lines = ["v"] + [str(i) if i not in (17, 4321, 9999) else f"bad{i}" for i in range(10_000)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    reader = StreamingReader(tmp_path / "t.csv", column_types={"v": pa.int64()})
    total = sum(c.rows for c in reader)
    assert total == 9_997
    assert reader.rejects.column("line").to_pylist() == [19, 4323, 10001]


def test_continue_on_error_false_raises_at_first_bad_row(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,4\n5\n6,7\n")
    reader = StreamingReader(tmp_path / "t.csv", continue_on_error=False)
    got = []
    with pytest.raises(ReaderError, match=r"t\.csv: line 4: ragged_row.*continue_on_error") as info:
        for chunk in reader:
            got.extend(chunk.batch.column("a").to_pylist())
    assert info.value.line == 4
    assert got == [1, 3]


def test_reject_rate_above_threshold_stops_with_clear_error(tmp_path):
    (tmp_path / "t.csv").write_text("a\n" + "1\n" * 8 + "x\n" * 2)
    with pytest.raises(RejectThresholdExceeded, match=r"t\.csv: 2 of 10 data lines rejected \(20\.00%\).*error_threshold=0\.1") as info:
        list(StreamingReader(tmp_path / "t.csv", column_types={"a": pa.int64()}, error_threshold=0.1))
    assert (info.value.rejects, info.value.rows_seen) == (2, 10)


def test_reject_rate_at_threshold_passes(tmp_path):
    (tmp_path / "t.csv").write_text("a\n" + "1\n" * 8 + "x\n" * 2)
    reader = StreamingReader(tmp_path / "t.csv", column_types={"a": pa.int64()}, error_threshold=0.2)
    assert sum(c.rows for c in reader) == 8


def test_reject_threshold_stops_mid_file(tmp_path):
    # 30% bad from the start: the read stops after the first block, not at the end.
    lines = "".join("x\n" if i % 10 < 3 else "1\n" for i in range(400_000))
    (tmp_path / "t.csv").write_text("a\n" + lines)
    reader = StreamingReader(tmp_path / "t.csv", column_types={"a": pa.int64()}, memory_limit_mb=2)
    seen = 0
    with pytest.raises(RejectThresholdExceeded):
        for chunk in reader:
            seen += chunk.rows
    assert seen < 280_000


def test_invalid_utf8_lines_become_encoding_rejects(tmp_path):
    (tmp_path / "t.csv").write_bytes(b"a,b\n1,ok\n2,caf\xe9\n3,fine\n")
    reader = StreamingReader(tmp_path / "t.csv", error_threshold=1)
    assert rows_of(reader) == [{"a": 1, "b": "ok"}, {"a": 3, "b": "fine"}]
    [reject] = reader.rejects.to_pylist()
    assert (reject["line"], reject["error_type"]) == (3, "encoding_error")
    assert "latin-1" in reject["error"] and reject["raw"] == "2,caf\\xe9"


def test_invalid_utf8_in_header_names_file_and_encoding(tmp_path):
    (tmp_path / "t.csv").write_bytes(b"caf\xe9,b\n1,2\n")
    with pytest.raises(ReaderError, match=r"t\.csv: line 1.*encoding="):
        list(StreamingReader(tmp_path / "t.csv"))


def test_truncated_gzip_names_file(tmp_path):
    data = gzip.compress(("a,b\n" + "1,2\n" * 50_000).encode())
    (tmp_path / "t.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ReaderError, match=r"t\.csv\.gz: gzip data is truncated"):
        list(StreamingReader(tmp_path / "t.csv.gz"))


def test_random_binary_is_refused(tmp_path):
    (tmp_path / "t.csv").write_bytes(os.urandom(4096))
    with pytest.raises(ReaderError, match=r"t\.csv: looks like binary data"):
        StreamingReader(tmp_path / "t.csv")


def test_jsonl_with_one_broken_line(tmp_path):
    lines = [json.dumps({"a": i}) for i in range(5)]
    lines[2] = '{"a": 2'
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    reader = StreamingReader(tmp_path / "t.jsonl", error_threshold=1)
    assert [r["a"] for r in rows_of(reader)] == [0, 1, 3, 4]
    [reject] = reader.rejects.to_pylist()
    assert (reject["line"], reject["error_type"], reject["raw"]) == (3, "json_error", '{"a": 2')


def test_jsonl_wrong_type_is_a_type_error(tmp_path):
    lines = ['{"a": 1}', '{"a": "x"}', "", '{"a": 3, "b": "y"}']
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    reader = StreamingReader(tmp_path / "t.jsonl", error_threshold=1)
    assert rows_of(reader) == [{"a": 1, "b": None}, {"a": 3, "b": "y"}]
    assert [(r["line"], r["error_type"]) for r in reader.rejects.to_pylist()] == [(2, "type_error")]


def test_jsonl_field_unknown_to_the_first_block_is_a_schema_error(tmp_path):
    # The schema comes from the first block (>= 256 KiB); a new field later is rejected.
    n = 40_000
    lines = [json.dumps({"a": i}) for i in range(n)] + ['{"a": -1, "late": true}', '{"a": -2}']
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    reader = StreamingReader(tmp_path / "t.jsonl", memory_limit_mb=1)
    assert sum(c.rows for c in reader) == n + 1
    [reject] = reader.rejects.to_pylist()
    assert (reject["line"], reject["error_type"]) == (n + 1, "schema_error")
    assert "'late'" in reject["error"] and "columns=" in reject["error"]


def test_jsonl_unknown_field_ignored_when_columns_given(tmp_path):
    n = 40_000
    lines = [json.dumps({"a": i}) for i in range(n)] + ['{"a": -1, "late": true}']
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    reader = StreamingReader(tmp_path / "t.jsonl", memory_limit_mb=1, columns=["a"])
    assert sum(c.rows for c in reader) == n + 1 and reader.rejects.num_rows == 0


def test_duplicate_column_names(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,a\n1,2,3\n")
    with pytest.raises(ReaderError, match=r"t\.csv: duplicate column name 'a'"):
        list(StreamingReader(tmp_path / "t.csv"))


def test_requested_column_missing_lists_available(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ReaderError, match=r"column 'zz' requested in columns does not exist; available columns: a, b"):
        list(StreamingReader(tmp_path / "t.csv", columns=["a", "zz"]))


def test_column_types_for_missing_column(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ReaderError, match=r"'zz' named in column_types does not exist"):
        list(StreamingReader(tmp_path / "t.csv", column_types={"zz": pa.int64()}))


def test_parquet_named_csv_is_refused(tmp_path):
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [1]}), tmp_path / "t.csv")
    with pytest.raises(ReaderError, match="Parquet file"):
        StreamingReader(tmp_path / "t.csv")


def test_jsonl_content_named_csv_is_refused(tmp_path):
    (tmp_path / "t.csv").write_text('{"a": 1}\n')
    with pytest.raises(ReaderError, match="file_format='jsonl'"):
        StreamingReader(tmp_path / "t.csv")


def test_blank_header_line(tmp_path):
    (tmp_path / "t.csv").write_text("\n1,2\n")
    with pytest.raises(ReaderError, match=r"t\.csv: line 1 \(the header\) is empty"):
        list(StreamingReader(tmp_path / "t.csv"))


def test_corrupt_parquet(tmp_path):
    (tmp_path / "t.parquet").write_bytes(b"PAR1" + b"garbage" * 100)
    with pytest.raises(ReaderError, match=r"t\.parquet: not a readable Parquet file"):
        list(StreamingReader(tmp_path / "t.parquet"))


def test_gzip_of_random_binary_is_refused(tmp_path):
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(os.urandom(4096)))
    with pytest.raises(ReaderError, match="looks like binary data"):
        StreamingReader(tmp_path / "t.csv.gz")


def test_corrupt_gzip_stream_names_file(tmp_path):
    data = bytearray(gzip.compress(("a,b\n" + "".join(f"{i},{i * 7}\n" for i in range(200_000))).encode()))
    middle = len(data) // 2
    data[middle : middle + 64] = os.urandom(64)
    (tmp_path / "t.csv.gz").write_bytes(bytes(data))
    with pytest.raises(ReaderError, match=r"t\.csv\.gz: "):
        list(StreamingReader(tmp_path / "t.csv.gz"))


def test_undecodable_bytes_in_declared_encoding(tmp_path):
    (tmp_path / "t.csv").write_bytes("a\n1\n".encode("utf-16-le") + b"\x00\xd8")  # lone surrogate at the end
    with pytest.raises(ReaderError, match=r"t\.csv: .*not valid utf-16-le.*encoding option"):
        list(StreamingReader(tmp_path / "t.csv", encoding="utf-16-le"))
