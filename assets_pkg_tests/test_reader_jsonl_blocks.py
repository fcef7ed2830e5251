"""JSONL fast path: the first block is parsed once, many blocks in flight keep file order."""

import json

import pyarrow as pa

from assets_pkg.reader import StreamingReader
from assets_pkg.reader.options import ReaderOptions


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_first_block_schema_and_rows_match_a_line_by_line_read(tmp_path):
    # 8 MiB budget: 512 KiB blocks, so ~60k lines are many blocks. The first block has a
    # field that is always null (typed string), ints that become floats, and a field
    # declared in column_types; later blocks fill the null field in.
    lines = []
    for i in range(60_000):
        event = {"ts": i, "x": i if i % 3 else i + 0.5, "maybe": None if i < 30_000 else f"v{i}", "tag": f"t{i % 7}"}
        lines.append(json.dumps(event))
    path = _write(tmp_path / "a.jsonl", lines)
    reader = StreamingReader(path, memory_limit_mb=8, chunk_size=7_000, column_types={"ts": pa.int64()})
    table = pa.Table.from_batches([c.batch for c in reader])
    assert reader.rejects.num_rows == 0
    assert table.schema == pa.schema([("ts", pa.int64()), ("x", pa.float64()), ("maybe", pa.string()),
                                      ("tag", pa.string())])
    assert table.to_pylist() == [json.loads(line) for line in lines]


def test_first_block_with_a_bad_line_still_rejects_it_exactly(tmp_path):
    lines = [json.dumps({"a": i, "b": "x"}) for i in range(5000)]
    lines[3] = '{"a": 3, "b": '  # broken JSON in the first block
    lines[4000] = '{"a": "four thousand", "b": "x"}'  # a type error
    path = _write(tmp_path / "b.jsonl", lines)
    reader = StreamingReader(path, memory_limit_mb=8)
    rows = sum(c.rows for c in reader)
    rejects = reader.rejects.to_pylist()
    assert rows == 4998
    assert [(r["line"], r["error_type"]) for r in rejects] == [(4, "json_error"), (4001, "type_error")]


def test_many_blocks_in_flight_keep_order_and_line_numbers(tmp_path):
    assert ReaderOptions(tmp_path, memory_limit_mb=64).blocks_in_flight > 3
    assert ReaderOptions(tmp_path, memory_limit_mb=32).blocks_in_flight == 3
    lines = [json.dumps({"i": i, "s": "y" * (i % 50)}) for i in range(200_000)]
    for bad in (17, 99_999, 199_998):
        lines[bad] = "not json"
    lines[150_000] = ""  # a blank line: skipped, not a row
    path = _write(tmp_path / "c.jsonl", lines)
    reader = StreamingReader(path, memory_limit_mb=64, chunk_size=30_000)
    got = [v for c in reader for v in c.batch.column("i").to_pylist()]
    skipped = {17, 99_999, 199_998, 150_000}
    assert got == [i for i in range(200_000) if i not in skipped]
    assert reader.rejects.column("line").to_pylist() == [18, 100_000, 199_999]
