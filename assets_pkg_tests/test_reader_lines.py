"""StreamingReader: exact line numbers across blocks, quoted line breaks, cut-offs."""

import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets_pkg.reader import ReaderError, StreamingReader

SMALL_BLOCKS = {"memory_limit_mb": 1, "chunk_size": 10_000}  # 256 KiB blocks: a few MB of text spans many blocks


def many_rows_with_bad_lines(path, rows, bad_every, bad_text="x"):
    """CSV `i,v` with a non-integer v every `bad_every` rows; returns the bad lines."""
    out, bad = ["i,v"], []
    for i in range(rows):
        if i % bad_every == bad_every - 1:
            out.append(f"{i},{bad_text}")
            bad.append(i + 2)  # header is line 1
        else:
            out.append(f"{i},{i}")
    path.write_text("\n".join(out) + "\n")
    return bad


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz"])
def test_reject_lines_exact_across_many_blocks(tmp_path, name):
    path = tmp_path / name
    bad = many_rows_with_bad_lines(tmp_path / "plain.csv", 300_000, 9_973)
    data = (tmp_path / "plain.csv").read_bytes()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    reader = StreamingReader(path, column_types={"v": pa.int64()}, **{**SMALL_BLOCKS, "chunk_size": 20_000})
    ids = [i for chunk in reader for i in chunk.batch.column("i").to_pylist()]
    assert reader.rejects.column("line").to_pylist() == bad
    assert len(ids) == 300_000 - len(bad) and ids == sorted(ids)
    assert reader.stats.total_chunks == 15  # 299,970 rows in 20,000-row chunks


def test_jsonl_reject_lines_exact_across_blocks(tmp_path):
    lines = [json.dumps({"i": i}) if i % 5_000 != 4_999 else "{broken" for i in range(60_000)]
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    reader = StreamingReader(tmp_path / "t.jsonl", **SMALL_BLOCKS)
    assert sum(c.rows for c in reader) == 60_000 - 12
    assert reader.rejects.column("line").to_pylist() == [i + 1 for i in range(4_999, 60_000, 5_000)]


def test_crlf_line_endings(tmp_path):
    (tmp_path / "t.csv").write_bytes(b"a,b\r\n1,2\r\n3\r\n4,5\r\n")
    reader = StreamingReader(tmp_path / "t.csv", error_threshold=1)
    assert [r for c in reader for r in c.batch.to_pylist()] == [{"a": 1, "b": 2}, {"a": 4, "b": 5}]
    assert reader.rejects.to_pylist()[0]["line"] == 3 and reader.rejects.to_pylist()[0]["raw"] == "3"


def test_quoted_line_breaks_keep_values_and_line_numbers(tmp_path):
    (tmp_path / "t.csv").write_text('a,b\n1,"x\ny"\n2,z\n3\n4,"p\n\nq"\n5,bad\n')
    reader = StreamingReader(tmp_path / "t.csv", column_types={"a": pa.int64()}, error_threshold=1)
    rows = [r for c in reader for r in c.batch.to_pylist()]
    assert rows == [{"a": 1, "b": "x\ny"}, {"a": 2, "b": "z"}, {"a": 4, "b": "p\n\nq"}, {"a": 5, "b": "bad"}]
    assert [(r["line"], r["raw"]) for r in reader.rejects.to_pylist()] == [(5, "3")]


def test_quoted_type_error_reports_the_line_its_record_starts_on(tmp_path):
    (tmp_path / "t.csv").write_text('a,b\n1,"x\ny"\nq,"m\nn"\n')
    reader = StreamingReader(tmp_path / "t.csv", column_types={"a": pa.int64()}, error_threshold=1)
    assert sum(c.rows for c in reader) == 1
    [reject] = reader.rejects.to_pylist()
    assert (reject["line"], reject["raw"]) == (4, 'q,"m\nn"')


def test_quoted_line_breaks_across_block_boundaries(tmp_path):
    # Every row holds a quoted line break; blocks are 256 KiB, so many boundaries fall
    # inside a quoted value and must not cut it.
    rows = 40_000
    (tmp_path / "t.csv").write_text("a,b\n" + "".join(f'{i},"line one\nline two {i}"\n' for i in range(rows)) + "oops\n")
    reader = StreamingReader(tmp_path / "t.csv", **SMALL_BLOCKS)
    table = pa.Table.from_batches([c.batch for c in reader])
    assert table.num_rows == rows
    assert table.column("b")[rows - 1].as_py() == f"line one\nline two {rows - 1}"
    assert reader.rejects.to_pylist()[0]["line"] == 2 + 2 * rows


def test_skip_data_rows_keeps_physical_line_numbers(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\njunk\njunk\n1,2\n3\n")
    reader = StreamingReader(tmp_path / "t.csv", skip_data_rows=2, error_threshold=1)
    assert sum(c.rows for c in reader) == 1
    assert reader.rejects.column("line").to_pylist() == [5]


def test_skip_rows_skips_a_preamble_before_the_header(tmp_path):
    # the original's example: a protein file with 13 metadata lines before its header
    preamble = "".join(f"# metadata line {i}: a, b\tc\n" for i in range(1, 14))
    (tmp_path / "p.tsv").write_text(preamble + "protein\tlength\nP1\t120\nP2\tbad\nP3\t90\n")
    reader = StreamingReader(tmp_path / "p.tsv", skip_rows=13, column_types={"length": pa.int64()}, error_threshold=1)
    rows = [r for c in reader for r in c.batch.to_pylist()]
    assert rows == [{"protein": "P1", "length": 120}, {"protein": "P3", "length": 90}]
    assert reader.rejects.column("line").to_pylist() == [16]
    assert reader.stats.line_counts() == {"lines_read": 17, "header_lines": 1, "skipped_lines": 13,
                                          "rejected_lines": 1, "row_lines": 2, "rows": 2}


def test_skip_rows_jsonl(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"a": 1}\n{"a": 2}\n{"a": 3}\n')
    reader = StreamingReader(tmp_path / "t.jsonl", skip_rows=1)
    assert [r["a"] for c in reader for r in c.batch.to_pylist()] == [2, 3]


def test_max_rows_across_blocks_ignores_rejects_after_the_cut(tmp_path):
    many_rows_with_bad_lines(tmp_path / "t.csv", 100_000, 1_000)
    reader = StreamingReader(tmp_path / "t.csv", column_types={"v": pa.int64()}, max_rows=50_000, **SMALL_BLOCKS)
    ids = [i for c in reader for i in c.batch.column("i").to_pylist()]
    assert len(ids) == 50_000 and ids[-1] == 50_049  # 50 bad rows skipped before it
    assert reader.rejects.column("line").to_pylist() == [i * 1000 + 1001 for i in range(50)]


def test_continue_on_error_false_on_a_type_error(tmp_path):
    (tmp_path / "t.csv").write_text("a\n1\n2\nx\n4\n")
    with pytest.raises(ReaderError, match=r"line 4: type_error: column 'a': cannot convert 'x' to int64"):
        list(StreamingReader(tmp_path / "t.csv", column_types={"a": pa.int64()}, continue_on_error=False))


def test_continue_on_error_false_on_jsonl(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"a": 1}\nnope\n')
    with pytest.raises(ReaderError, match=r"line 2: json_error"):
        list(StreamingReader(tmp_path / "t.jsonl", continue_on_error=False))


def test_error_threshold_zero_fails_on_any_reject(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n" + "1,2\n" * 5000 + "3\n")
    with pytest.raises(ReaderError, match=r"1 of 5001 data lines rejected"):
        list(StreamingReader(tmp_path / "t.csv", error_threshold=0))


def test_parquet_column_types_reject_and_row_numbers(tmp_path):
    pq.write_table(pa.table({"id": [1, 2, 3, 4], "v": ["10", "x", "30", "y"]}), tmp_path / "t.parquet")
    reader = StreamingReader(tmp_path / "t.parquet", column_types={"v": pa.int64()}, chunk_size=2, error_threshold=1)
    assert [r for c in reader for r in c.batch.to_pylist()] == [{"id": 1, "v": 10}, {"id": 3, "v": 30}]
    rejects = reader.rejects.to_pylist()
    assert [(r["line"], r["error_type"]) for r in rejects] == [(2, "type_error"), (4, "type_error")]
    assert json.loads(rejects[0]["raw"]) == {"id": 2, "v": "x"}


def test_parquet_skip_rows_max_rows_and_columns(tmp_path):
    pq.write_table(pa.table({"id": list(range(10)), "s": [str(i) for i in range(10)]}), tmp_path / "t.parquet")
    reader = StreamingReader(tmp_path / "t.parquet", skip_rows=3, max_rows=4, columns=["id"], chunk_size=3)
    assert [i for c in reader for i in c.batch.column("id").to_pylist()] == [3, 4, 5, 6]
    assert reader.schema.names == ["id"]


def test_utf16_encoding(tmp_path):
    (tmp_path / "t.csv").write_bytes("name,n\nJosé,1\n".encode("utf-16"))
    reader = StreamingReader(tmp_path / "t.csv", encoding="utf-16")
    assert [r for c in reader for r in c.batch.to_pylist()] == [{"name": "José", "n": 1}]


def test_latin1_gzip_tsv(tmp_path):
    (tmp_path / "t.tsv.gz").write_bytes(gzip.compress("a\tb\nü\t1\n".encode("latin-1")))
    reader = StreamingReader(tmp_path / "t.tsv.gz", encoding="latin-1")
    assert [r for c in reader for r in c.batch.to_pylist()] == [{"a": "ü", "b": 1}]


def test_progress_bar_on_a_terminal(tmp_path, monkeypatch):
    class FakeTerminal(io.StringIO):
        def isatty(self):
            return True

    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stderr", terminal)
    (tmp_path / "t.csv").write_text("a\n1\n")
    list(StreamingReader(tmp_path / "t.csv", report_progress=True))
    assert terminal.getvalue().startswith("\r[########################] t.csv 100.0%")
    assert terminal.getvalue().endswith("done\x1b[K\n")


def test_inferred_type_is_fixed_by_the_first_block_and_later_misfits_are_rejected(tmp_path):
    (tmp_path / "t.csv").write_text("v\n" + "".join(f"{i}\n" for i in range(100_000)) + "1.5\n")
    reader = StreamingReader(tmp_path / "t.csv", **SMALL_BLOCKS)
    assert sum(c.rows for c in reader) == 100_000
    assert reader.schema.field("v").type == pa.int64()
    [reject] = reader.rejects.to_pylist()
    assert reject["line"] == 100_002 and "inferred from the first block" in reject["error"] and "column_types" in reject["error"]


def test_stray_quotes_in_unquoted_values_do_not_break_blocks_or_lines(tmp_path):
    # '5" screen' is a literal quote (not at a field start); it must not make the reader
    # think the rest of the block is inside quotes.
    rows = 30_000
    body = "".join(f'{i}\t{i % 7}" screen\n' if i != 20_000 else "oops\n" for i in range(rows))
    (tmp_path / "t.tsv").write_text("n\tsize\n" + body)
    reader = StreamingReader(tmp_path / "t.tsv", error_threshold=1, **SMALL_BLOCKS)
    table = pa.Table.from_batches([c.batch for c in reader])
    assert table.num_rows == rows - 1 and table.column("size")[0].as_py() == '0" screen'
    assert reader.rejects.column("line").to_pylist() == [20_002]


def test_a_line_longer_than_a_block(tmp_path):
    long_value = "y" * (3 * 2**20)
    (tmp_path / "t.csv").write_text(f"a,b\n1,{long_value}\n2,z\n")
    reader = StreamingReader(tmp_path / "t.csv", **SMALL_BLOCKS)
    table = pa.Table.from_batches([c.batch for c in reader])
    assert table.column("a").to_pylist() == [1, 2] and len(table.column("b")[0].as_py()) == 3 * 2**20
