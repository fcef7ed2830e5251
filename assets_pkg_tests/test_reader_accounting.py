"""Every physical line is accounted for; a quote left open costs one line, not the file."""

import gzip
import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets_pkg.ingest.stream import failed_rejects_path, stream_file_to_shards
from assets_pkg.reader import ReaderOptionError, RejectThresholdExceeded, StreamingReader


def _read(path, **options):
    reader = StreamingReader(path, **options)
    rows = [row for chunk in reader for row in chunk.batch.to_pylist()]
    return reader, rows


def _unterminated_csv(path, rows=2000, bad_line=31):
    lines = ["id,name,amount"]
    for i in range(1, rows + 1):
        name = '"unterminated' if i + 1 == bad_line else f"name{i}"
        lines.append(f"{i},{name},{i * 1.5}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_unterminated_quote_rejects_its_line_and_reading_resumes(tmp_path):
    reader, rows = _read(_unterminated_csv(tmp_path / "u.csv"))
    assert len(rows) == 1999
    assert [r["id"] for r in rows[28:31]] == [29, 31, 32]
    assert reader.rejects.select(["line", "error_type"]).to_pylist() == [{"line": 31, "error_type": "unterminated_quote"}]
    assert reader.stats.line_counts() == {"lines_read": 2001, "header_lines": 1, "skipped_lines": 0,
                                          "rejected_lines": 1, "row_lines": 1999, "rows": 1999}


def test_multi_line_value_within_the_bound_reads_as_one_value(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text('id,text\n1,"first\nsecond\nthird"\n2,plain\n')
    reader, rows = _read(path)
    assert rows == [{"id": 1, "text": "first\nsecond\nthird"}, {"id": 2, "text": "plain"}]
    assert reader.stats.line_counts() == {"lines_read": 5, "header_lines": 1, "skipped_lines": 0,
                                          "rejected_lines": 0, "row_lines": 4, "rows": 2}


def test_quoted_span_longer_than_max_quoted_lines_is_unterminated(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text('id,text\n1,"a\nb\nc\nd"\n2,plain\n')
    reader, rows = _read(path, max_quoted_lines=3, column_types={"id": pa.string(), "text": pa.string()},
                         error_threshold=1.0)
    # line 2 opens a value that would span 4 lines: rejected; lines 3-5 read on their own
    assert reader.rejects.select(["line", "error_type"]).to_pylist()[0] == {"line": 2, "error_type": "unterminated_quote"}
    assert {"id": "2", "text": "plain"} in rows
    assert reader.stats.line_identity_holds
    with pytest.raises(ReaderOptionError, match="max_quoted_lines"):
        StreamingReader(path, max_quoted_lines=0)


def test_quote_closed_without_a_delimiter_after_it_does_not_swallow_lines(tmp_path):
    # Two stray quotes at field starts: pairing them would make lines 3-11 one value, but
    # the closing quote on line 12 is followed by text (not RFC 4180): each opener alone is rejected.
    lines = ["a,b,c"] + [f'{i},"x{i},{i}' if i in (10, 20) else f"{i},x{i},{i}" for i in range(1, 40)]
    path = tmp_path / "two.csv"
    path.write_text("\n".join(lines) + "\n")
    reader, rows = _read(path, error_threshold=1.0)
    assert len(rows) == 37
    assert [r["line"] for r in reader.rejects.to_pylist()] == [11, 21]


def test_open_quote_across_many_blocks_is_bounded(tmp_path):
    # 400k lines (~5 MB, several parse blocks) with a quote opened on line 3 and never closed
    path = tmp_path / "big.csv"
    with open(path, "w") as fh:
        fh.write("id,name\n1,a\n2,\"open\n")
        for i in range(3, 400_001):
            fh.write(f"{i},n{i}\n")
    reader, rows = _read(path, memory_limit_mb=8)
    assert len(rows) == 399_999
    assert reader.rejects.column("line").to_pylist() == [3]
    assert reader.stats.lines_read == 400_001


def test_mixed_faults_do_not_crash_and_every_line_is_accounted(tmp_path):
    lines = [b"id,name,amount"]
    for i in range(1, 45):
        line = b"%d,n%d,%d" % (i, i, i)
        if i == 5:
            line = b"5,bad\xffbyte,5"
        if i in (10, 20):
            line += b",extra"
        if i == 30:
            line = b'30,"open,30'
        lines.append(line)
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    reader, rows = _read(path, error_threshold=1.0)
    kinds = {r["line"]: r["error_type"] for r in reader.rejects.to_pylist()}
    assert kinds == {6: "encoding_error", 11: "ragged_row", 21: "ragged_row", 31: "unterminated_quote"}
    assert len(rows) == 40
    assert reader.stats.line_identity_holds


def test_ragged_row_with_invalid_utf8_is_one_reject(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(b"a,b\n1,2\n3,\xff,4\n5,6\n")
    reader, rows = _read(path, error_threshold=1.0)
    assert rows == [{"a": 1, "b": 2}, {"a": 5, "b": 6}]
    assert reader.rejects.select(["line", "error_type"]).to_pylist() == [{"line": 3, "error_type": "encoding_error"}]


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "csv.gz", "jsonl.gz"])
def test_line_identity_on_each_format_with_blank_and_bad_lines(tmp_path, fmt):
    base = fmt.removesuffix(".gz")
    if base == "jsonl":
        text = '{"a": 1}\n\n{"a": 2}\nnot json\n{"a": 3}\n'
        expected = {"lines_read": 5, "header_lines": 0, "skipped_lines": 1, "rejected_lines": 1, "row_lines": 3, "rows": 3}
    else:
        d = "," if base == "csv" else "\t"
        text = f"a{d}b\n1{d}2\n\n3{d}4{d}5\n6{d}7\n"
        expected = {"lines_read": 5, "header_lines": 1, "skipped_lines": 1, "rejected_lines": 1, "row_lines": 2, "rows": 2}
    path = tmp_path / f"f.{fmt}"
    path.write_bytes(gzip.compress(text.encode()) if fmt.endswith(".gz") else text.encode())
    reader, _ = _read(path, error_threshold=1.0, skip_rows=0)
    assert reader.stats.line_counts() == expected
    assert reader.stats.line_identity_holds


def test_threshold_counts_lines_not_records(tmp_path):
    # one well-formed record of 40 lines whose id is not a number: 40 rejected lines
    body = "".join(f"{i},x\n" for i in range(200))
    path = tmp_path / "q.csv"
    path.write_text("a,b\n" + body + '1x,"' + "line\n" * 39 + 'end"\n' + body)
    with pytest.raises(RejectThresholdExceeded) as info:
        _read(path, error_threshold=0.05, column_types={"a": pa.int64()})
    assert info.value.rejected_lines == 40


def test_stream_cli_saves_rejects_when_the_threshold_stops_it(tmp_path):
    src = tmp_path / "mixed.csv"
    src.write_bytes(b"id,name\n" + b"".join(b"%d,n\n" % i if i % 5 else b"%d,n,extra\n" % i for i in range(1, 41)))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "assets_pkg.cli", "stream", str(src), "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    saved = failed_rejects_path(out)
    assert f"are in {saved}" in proc.stderr and "8 of 40 data lines rejected" in proc.stderr
    assert pq.read_table(saved).num_rows == 8
    assert not out.exists()  # nothing published


def test_stream_keeps_the_previous_output_when_a_new_read_fails(tmp_path):
    src = tmp_path / "f.csv"
    src.write_text("id,name\n1,a\n2,b\n")
    out = tmp_path / "out"
    stream_file_to_shards(src, out)
    before = sorted(p.name for p in out.iterdir())
    src.write_text("id,name\n1,a\n2,b,c\n3,c,d\n")
    with pytest.raises(RejectThresholdExceeded, match="are in"):
        stream_file_to_shards(src, out)
    assert sorted(p.name for p in out.iterdir()) == before
    assert json.loads((out / "lines.json").read_text())["rows"] == 2
