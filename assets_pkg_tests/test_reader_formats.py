"""StreamingReader: every format and option on small, exact files."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets_pkg.reader import ReaderOptionError, StreamingReader, sniff_format


def read_all(reader: StreamingReader) -> pa.Table:
    batches = [chunk.batch for chunk in reader]
    return pa.Table.from_batches(batches, schema=reader.schema)


def write(path, text: str, encoding="utf-8"):
    data = text.encode(encoding)
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


CSV = "id,name,amount\n1,ann,1.5\n2,bob,2.5\n3,cy,3.5\n"


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz"])
def test_csv_plain_and_gzip_infers_types(tmp_path, name):
    table = read_all(StreamingReader(write(tmp_path / name, CSV)))
    assert table.schema == pa.schema([("id", pa.int64()), ("name", pa.string()), ("amount", pa.float64())])
    assert table.to_pydict() == {"id": [1, 2, 3], "name": ["ann", "bob", "cy"], "amount": [1.5, 2.5, 3.5]}


@pytest.mark.parametrize("name", ["t.tsv", "t.tsv.gz"])
def test_tsv(tmp_path, name):
    table = read_all(StreamingReader(write(tmp_path / name, CSV.replace(",", "\t"))))
    assert table.column("name").to_pylist() == ["ann", "bob", "cy"]


@pytest.mark.parametrize("name", ["t.jsonl", "t.ndjson", "t.jsonl.gz"])
def test_jsonl(tmp_path, name):
    lines = "".join(json.dumps({"id": i, "name": n}) + "\n" for i, n in [(1, "a"), (2, "b")])
    table = read_all(StreamingReader(write(tmp_path / name, lines)))
    assert table.to_pydict() == {"id": [1, 2], "name": ["a", "b"]}


@pytest.mark.parametrize("name", ["t.parquet", "t.snappy.parquet"])
def test_parquet(tmp_path, name):
    pq.write_table(pa.table({"id": [1, 2, 3], "s": ["a", "b", "c"]}), tmp_path / name)
    reader = StreamingReader(tmp_path / name, chunk_size=2)
    chunks = list(reader)
    assert [c.rows for c in chunks] == [2, 1]
    assert pa.Table.from_batches([c.batch for c in chunks]).to_pydict() == {"id": [1, 2, 3], "s": ["a", "b", "c"]}


def test_parquet_gzip(tmp_path):
    pq.write_table(pa.table({"id": [1, 2]}), tmp_path / "t.parquet")
    (tmp_path / "t.parquet.gz").write_bytes(gzip.compress((tmp_path / "t.parquet").read_bytes()))
    assert read_all(StreamingReader(tmp_path / "t.parquet.gz")).column("id").to_pylist() == [1, 2]


def test_sniff_format_from_name_and_content(tmp_path):
    write(tmp_path / "a.csv.gz", CSV)
    write(tmp_path / "noext", CSV.replace(",", "\t"))
    write(tmp_path / "b.txt", '{"a": 1}\n')
    assert (sniff_format(tmp_path / "a.csv.gz").format, sniff_format(tmp_path / "a.csv.gz").compression) == ("csv", "gzip")
    assert sniff_format(tmp_path / "noext").format == "tsv"
    assert sniff_format(tmp_path / "b.txt").format == "jsonl"


def test_gzip_detected_by_magic_bytes_without_gz_suffix(tmp_path):
    (tmp_path / "t.csv").write_bytes(gzip.compress(CSV.encode()))
    assert read_all(StreamingReader(tmp_path / "t.csv")).num_rows == 3


def test_explicit_file_format_overrides_name(tmp_path):
    write(tmp_path / "data.txt", CSV)
    reader = StreamingReader(tmp_path / "data.txt", file_format="csv")
    assert read_all(reader).num_rows == 3


def test_latin1_encoding(tmp_path):
    path = write(tmp_path / "t.csv", "name,city\nJosé,Zürich\n", encoding="latin-1")
    table = read_all(StreamingReader(path, encoding="latin-1"))
    assert table.to_pydict() == {"name": ["José"], "city": ["Zürich"]}


def test_utf8_bom_is_not_part_of_first_column(tmp_path):
    (tmp_path / "t.csv").write_bytes(b"\xef\xbb\xbfid,x\n1,2\n")
    assert read_all(StreamingReader(tmp_path / "t.csv")).column_names == ["id", "x"]


def test_columns_selects_and_orders(tmp_path):
    table = read_all(StreamingReader(write(tmp_path / "t.csv", CSV), columns=["amount", "id"]))
    assert table.column_names == ["amount", "id"]


def test_column_types_declared(tmp_path):
    reader = StreamingReader(write(tmp_path / "t.csv", CSV), column_types={"id": pa.string(), "amount": pa.float32()})
    table = read_all(reader)
    assert table.schema.field("id").type == pa.string() and table.column("id").to_pylist() == ["1", "2", "3"]
    assert table.schema.field("amount").type == pa.float32()


def test_skip_data_rows_skips_data_rows_after_header(tmp_path):
    table = read_all(StreamingReader(write(tmp_path / "t.csv", CSV), skip_data_rows=2))
    assert table.column("id").to_pylist() == [3]


def test_max_rows_stops_early(tmp_path):
    table = read_all(StreamingReader(write(tmp_path / "t.csv", CSV), max_rows=2))
    assert table.column("id").to_pylist() == [1, 2]


def test_max_rows_zero_yields_nothing(tmp_path):
    reader = StreamingReader(write(tmp_path / "t.csv", CSV), max_rows=0)
    assert list(reader) == []
    assert reader.stats.total_rows == 0


def test_chunk_size_bounds_rows_per_chunk(tmp_path):
    text = "x\n" + "".join(f"{i}\n" for i in range(10))
    chunks = list(StreamingReader(write(tmp_path / "t.csv", text), chunk_size=4))
    assert [c.rows for c in chunks] == [4, 4, 2]
    assert [c.chunk_id for c in chunks] == [0, 1, 2]


def test_skip_empty_skips_blank_lines(tmp_path):
    path = write(tmp_path / "t.csv", "a,b\n1,2\n\n3,4\n\r\n")
    assert read_all(StreamingReader(path)).to_pydict() == {"a": [1, 3], "b": [2, 4]}


def test_skip_empty_false_keeps_blank_lines_as_null_rows(tmp_path):
    path = write(tmp_path / "t.csv", "a,b\n1,2\n\n3,4\n")
    assert read_all(StreamingReader(path, skip_empty=False)).to_pydict() == {"a": [1, None, 3], "b": [2, None, 4]}


def test_strip_whitespace_strips_values_and_header(tmp_path):
    path = write(tmp_path / "t.csv", " a , b \n 1 , x \n2,  \n")
    table = read_all(StreamingReader(path, strip_whitespace=True, column_types={"a": pa.int64()}))
    assert table.to_pydict() == {"a": [1, 2], "b": ["x", None]}


def test_without_strip_whitespace_values_keep_spaces(tmp_path):
    path = write(tmp_path / "t.csv", "a,b\nx , y\n")
    assert read_all(StreamingReader(path, strip_whitespace=False)).to_pydict() == {"a": ["x "], "b": [" y"]}


def test_strip_whitespace_is_the_default(tmp_path):
    path = write(tmp_path / "t.csv", " a , b \nx , y\n 5 ,  \n")
    table = read_all(StreamingReader(path, skip_empty=False))
    assert table.to_pydict() == {"a": ["x", "5"], "b": ["y", None]}


def test_empty_field_is_null(tmp_path):
    path = write(tmp_path / "t.csv", "a,b\n1,\n,x\n")
    assert read_all(StreamingReader(path)).to_pydict() == {"a": [1, None], "b": [None, "x"]}


def test_header_only_gives_zero_rows_and_schema(tmp_path):
    reader = StreamingReader(write(tmp_path / "t.csv", "a,b\n"))
    assert list(reader) == []
    assert reader.schema.names == ["a", "b"]
    assert reader.stats.total_rows == 0


def test_to_record_batch_reader_streams_all_rows(tmp_path):
    text = "x\n" + "".join(f"{i}\n" for i in range(10))
    rbr = StreamingReader(write(tmp_path / "t.csv", text), chunk_size=3).to_record_batch_reader()
    assert isinstance(rbr, pa.RecordBatchReader)
    assert rbr.read_all().column("x").to_pylist() == list(range(10))


def test_stats_after_read(tmp_path):
    reader = StreamingReader(write(tmp_path / "t.csv.gz", CSV), chunk_size=2)
    list(reader)
    s = reader.stats
    assert (s.total_chunks, s.total_rows, s.total_errors, s.chunks_with_errors) == (2, 3, 0, 0)
    assert s.avg_chunk_ms >= 0 and s.peak_memory_mb > 0
    assert s.file_metadata["format"] == "csv" and s.file_metadata["compression"] == "gzip"
    assert s.file_metadata["columns"] == ["id", "name", "amount"]
    assert s.file_metadata["size_bytes"] == (tmp_path / "t.csv.gz").stat().st_size
    assert s.file_metadata["encoding"] == "utf-8"


def test_delimiter_override(tmp_path):
    path = write(tmp_path / "t.csv", "a;b\n1;2\n")
    assert read_all(StreamingReader(path, delimiter=";")).to_pydict() == {"a": [1], "b": [2]}


def test_strip_whitespace_infers_types_from_stripped_values(tmp_path):
    path = write(tmp_path / "t.csv", "a,b,c\n 1 , 2024-01-02 ,x\n2,2024-01-03, y \n")
    table = read_all(StreamingReader(path, strip_whitespace=True))
    assert table.schema == pa.schema([("a", pa.int64()), ("b", pa.date32()), ("c", pa.string())])
    assert table.column("c").to_pylist() == ["x", "y"]


def test_first_block_typed_parse_is_reused_and_identical(tmp_path):
    # The first block is parsed once while inferring; its rows must equal a second pass.
    text = "i,v\n" + "".join(f"{i},{i / 3:.3f}\n" for i in range(50_000))
    reader = StreamingReader(write(tmp_path / "t.csv", text), memory_limit_mb=1, chunk_size=50_000)
    first, second = read_all(reader), read_all(reader)
    assert first.equals(second) and first.num_rows == 50_000
    assert first.schema == pa.schema([("i", pa.int64()), ("v", pa.float64())])


def test_small_parse_blocks_are_joined_into_full_chunks(tmp_path):
    text = "i,s\n" + "".join(f"{i},row-{i}\n" for i in range(250_000))
    reader = StreamingReader(write(tmp_path / "t.csv", text), chunk_size=100_000, memory_limit_mb=16)  # 1 MiB blocks
    chunks = list(reader)
    assert [c.rows for c in chunks] == [100_000, 100_000, 50_000]
    assert all(c.batch.column(0).to_pylist() == list(range(c.chunk_id * 100_000, c.chunk_id * 100_000 + c.rows)) for c in chunks)


def test_chunk_bytes_stay_within_the_memory_budget(tmp_path):
    # 16 MiB budget: a chunk is cut at 4 MiB of Arrow data (four 1 MiB blocks) although
    # chunk_size (about 6 MiB of these rows) fits the budget.
    text = "i,s\n" + "".join(f"{i},{'x' * 200}\n" for i in range(30_000))
    reader = StreamingReader(write(tmp_path / "t.csv", text), chunk_size=30_000, memory_limit_mb=16)
    chunks = list(reader)
    assert sum(c.rows for c in chunks) == 30_000 and len(chunks) >= 2
    assert all(c.memory_bytes == c.batch.nbytes and c.memory_bytes <= 5 * 2**20 for c in chunks)


def test_a_budget_too_small_for_one_chunk_names_both_options(tmp_path):
    text = "i,s\n" + "".join(f"{i},{'x' * 200}\n" for i in range(30_000))
    with pytest.raises(ReaderOptionError, match=r"chunk_size=1,000,000 rows takes about .* memory_limit_mb=1; lower chunk_size to at most"):
        list(StreamingReader(write(tmp_path / "t.csv", text), chunk_size=1_000_000, memory_limit_mb=1))


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_reads_back_what_write_table_writes(tmp_path, fmt):
    from assets_pkg.io.formats import write_table

    original = pa.table({
        "id": pa.array([1, 2, 3], pa.int64()),
        "text": ['plain', 'with "quotes", commas\tand tabs', "two\nlines"],
        "x": [0.5, None, -2.25],
    })
    path = write_table(original, tmp_path / f"t.{fmt}", fmt=fmt).path
    assert read_all(StreamingReader(path)).equals(original)
