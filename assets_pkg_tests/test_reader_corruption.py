"""No row vanishes silently: valid CSV/TSV/JSONL files corrupted at random.

For every corrupted file: no exception but the documented ReaderError family (and only a
truncated gzip raises one here, the threshold being off); the line identity holds; every
record no corruption touched comes back as a row with its values; and the reader never
returns fewer of those good rows than DuckDB's ``read_csv(ignore_errors=true)``.

One exemption, by CSV's own rules: a stray quote opens a quoted value that runs on to the
next quote in the file (another stray one, or one that quoted a later record's value), and
the records it spans are that value (Arrow, DuckDB, Python's csv and RFC 4180 read them so).
A stray quote that never pairs exempts nothing: the reader bounds it and resumes.
"""

import csv
import gzip
import io
import json

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from assets_pkg.reader import ReaderError, StreamingReader

COLUMNS = ["id", "name", "note"]
TEXT = st.text(alphabet=st.sampled_from(list("abcxyz019 ,;\"'\n")), min_size=1, max_size=12).filter(
    lambda s: s.strip() != "" and s == s.strip()
)
RECORDS = st.lists(st.tuples(TEXT, TEXT), min_size=3, max_size=60)
CORRUPTIONS = ("stray_quote", "invalid_byte", "nul", "ragged_more", "ragged_less", "crlf", "lone_cr", "long_line")
PLANS = st.lists(st.tuples(st.sampled_from(CORRUPTIONS), st.integers(0, 10**6), st.integers(0, 10**6)), min_size=1, max_size=3)


def _records(fmt: str, rows) -> list[bytes]:
    """Each record's encoded text (without its final newline) and its values."""
    out = []
    for i, (name, note) in enumerate(rows):
        values = [str(i), name, note]
        if fmt == "jsonl":
            out.append(json.dumps(dict(zip(COLUMNS, values))).encode())
        else:
            buf = io.StringIO()
            csv.writer(buf, delimiter="," if fmt == "csv" else "\t", lineterminator="\n").writerow(values)
            out.append(buf.getvalue().removesuffix("\n").encode())
    return out


def _corrupt(kind: str, record: bytes, at: int) -> bytes:
    pos = at % (len(record) + 1)
    if kind == "stray_quote":
        return record[:pos] + b'"' + record[pos:]
    if kind == "invalid_byte":
        return record[:pos] + b"\xff" + record[pos:]
    if kind == "nul":
        return record[:pos] + b"\x00" + record[pos:]
    if kind == "ragged_more":
        return record + b",extra" if not record.startswith(b"{") else record[:-1] + b', "extra": "x"}'
    if kind == "ragged_less":
        cut = record.rfind(b",")
        return record[:cut] if cut > 0 else record + b",,,"
    if kind == "crlf":
        return record + b"\r"
    if kind == "lone_cr":
        return record[:pos] + b"\r" + record[pos:]
    return record[:pos] + b"z" * 300_000 + record[pos:]  # long_line: longer than a parse block


def _build(tmp_path, fmt: str, rows, plan, gz: bool):
    records = _records(fmt, rows)
    touched: dict[int, str] = {}
    for kind, which, at in plan:
        i = which % len(records)
        records[i] = _corrupt(kind, records[i], at)
        touched[i] = kind if i not in touched else "several"
    header = [] if fmt == "jsonl" else [("," if fmt == "csv" else "\t").join(COLUMNS).encode()]
    data = b"\n".join(header + records) + b"\n"
    path = tmp_path / f"f.{fmt}{'.gz' if gz else ''}"
    path.write_bytes(gzip.compress(data) if gz else data)
    return path, data, touched


def _exempt(fmt: str, data: bytes, touched: dict[int, str]) -> set[int]:
    """Untouched records that a stray quote's quoted value spans (see the module docstring)."""
    quotes = sorted(i for i, kind in touched.items() if kind in ("stray_quote", "several"))
    if fmt == "jsonl" or not quotes:
        return set()
    between = set(range(quotes[0] + 1, quotes[-1])) if len(quotes) > 1 else set()
    return between | _joined_to(quotes, data, "," if fmt == "csv" else "\t")


def _joined_to(quotes: list[int], data: bytes, delimiter: str) -> set[int]:
    """Records that Python's csv (lenient, as Arrow) joins into one record with a quoted
    record's line, when that quoted value closes before the end of the file."""
    # lines as Arrow cuts them (\n, \r\n and a lone \r), each mapped to its record (-1: header)
    text = data.decode("utf-8", errors="replace").replace("\x00", "0")
    owner: list[int] = []
    for record, line in enumerate(text.split("\n")[:-1], start=-1):
        owner += [record] * len(io.StringIO(line + "\n", newline="").readlines())
    sentinel = len(owner)  # a line after the file: joined to a record only by a quote left open
    lines = io.StringIO(text + "end\n", newline="").readlines()
    csv.field_size_limit(1 << 30)
    parsed, joined, start = csv.reader(iter(lines), delimiter=delimiter), set(), 0
    for _ in parsed:
        span = range(start, parsed.line_num)
        start = parsed.line_num
        records = {owner[n] for n in span if n < sentinel and owner[n] >= 0}
        if len(records) > 1 and sentinel not in span and records & set(quotes):
            joined |= records
    return joined


def _expected(rows) -> dict[str, tuple[str, str]]:
    return {str(i): (name, note) for i, (name, note) in enumerate(rows)}


def _good_rows(returned, expected, touched, exempt) -> set[str]:
    """Ids of untouched records that came back exactly as written."""
    good = set()
    for row in returned:
        rid = row.get("id")
        if rid is not None and rid in expected and int(rid) not in touched and (row["name"], row["note"]) == expected[rid]:
            good.add(rid)
    return good


def _read(path, fmt):
    reader = StreamingReader(path, file_format=fmt, error_threshold=1.0,
                             column_types={c: pa.string() for c in COLUMNS})
    rows = []
    for chunk in reader:
        rows.extend(chunk.batch.to_pylist())
    return reader, rows


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(fmt=st.sampled_from(["csv", "tsv", "jsonl"]), rows=RECORDS, plan=PLANS, gz=st.booleans())
# a stray quote that pairs with the quote of a later record's value: one record of three lines
@example(fmt="csv", rows=[("0", "0"), ("0", "0"), (",0", "0")], plan=[("stray_quote", 0, 0)], gz=False)
def test_corrupted_files_lose_no_untouched_record(tmp_path, fmt, rows, plan, gz):
    path, data, touched = _build(tmp_path, fmt, rows, plan, gz)
    reader, returned = _read(path, fmt)
    stats = reader.stats
    assert stats.line_identity_holds, stats.line_counts()
    assert stats.lines_read == data.count(b"\n")
    assert stats.total_rows == len(returned)
    expected = _expected(rows)
    exempt = _exempt(fmt, data, touched)
    good = _good_rows(returned, expected, touched, exempt)
    missing = [i for i in range(len(rows)) if i not in touched and i not in exempt and str(i) not in good]
    assert not missing, (missing, touched, reader.rejects.to_pylist()[:5])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=RECORDS, plan=PLANS)
def test_truncated_gzip_is_a_reader_error(tmp_path, rows, plan):
    path, data, _ = _build(tmp_path, "csv", rows, plan, gz=True)
    compressed = path.read_bytes()
    path.write_bytes(compressed[: max(20, len(compressed) // 2)])
    with pytest.raises(ReaderError, match=r"gzip data is truncated|cannot decompress"):
        _read(path, "csv")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(["csv", "tsv"]), rows=RECORDS, plan=PLANS)
def test_at_least_as_many_good_rows_as_duckdb(tmp_path, fmt, rows, plan):
    path, data, touched = _build(tmp_path, fmt, rows, plan, gz=False)
    _, returned = _read(path, fmt)
    expected = _expected(rows)
    ours = _good_rows(returned, expected, touched, set())
    con = duckdb.connect()
    try:
        table = con.sql(
            "SELECT * FROM read_csv(?, header=true, all_varchar=true, ignore_errors=true, delim=?, quote='\"', "
            "escape='\"', columns={'id': 'VARCHAR', 'name': 'VARCHAR', 'note': 'VARCHAR'})",
            params=[str(path), "," if fmt == "csv" else "\t"],
        ).to_arrow_table()
        theirs = _good_rows(table.to_pylist(), expected, touched, set())
    except duckdb.Error:
        theirs = set()  # DuckDB refused the file: it returned nothing
    finally:
        con.close()
    assert len(ours) >= len(theirs), (sorted(theirs - ours), touched)
