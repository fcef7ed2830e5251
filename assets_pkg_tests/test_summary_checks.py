"""Every summary check passes on a good build and fails on a deliberately broken table."""

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets_pkg.duck import connect
from assets_pkg.summary.latest import latest_reader
from assets_pkg.summary.months import month_range
from assets_pkg.summary.source import Source, list_batch_files
from assets_pkg.summary.validate import (
    check_history_consistency,
    check_history_length,
    check_history_matches_source,
    check_one_row_per_account,
    check_unique_account_month,
)
from assets_pkg.io import write_table
from assets_pkg_tests.test_summary_helpers import cfg_for, full_build, write_batch

MONTHS = month_range("2024-01", "2024-06")


@pytest.fixture
def built(data_root, tmp_path):
    inbox = tmp_path / "inbox"
    recs = [(k, m, float(k * 10 + i), i, 0) for k in (1, 2, 3) for i, m in enumerate(MONTHS)]
    write_batch(inbox, "0001.parquet", recs)
    cfg = cfg_for(inbox)
    out = tmp_path / "out"
    full_build(cfg, out, "2024-01", "2024-06")
    files = {p.stem: p for p in sorted(out.glob("*.parquet"))}
    con = connect()
    latest = tmp_path / "latest.parquet"
    write_table(latest_reader(con, cfg, list(files.values())), latest)
    source = Source(con, cfg, list_batch_files(inbox))
    source.profile()
    yield cfg, con, files, source, latest
    source.close()


def _rewrite(path, fn):
    table = pq.read_table(path)
    pq.write_table(fn(table), path)


def _set_history(table, col, row, values):
    hist = table.column(col).to_pylist()
    hist[row] = values
    idx = table.schema.get_field_index(col)
    return table.set_column(idx, col, pa.array(hist, table.schema.field(col).type))


def test_all_pass_on_good_build(built):
    cfg, con, files, source, latest = built
    assert check_unique_account_month(con, cfg, files).passed
    assert check_history_length(con, cfg, files).passed
    assert check_history_matches_source(con, cfg, files, source).passed
    assert check_history_consistency(con, cfg, files).passed
    assert check_one_row_per_account(con, cfg, latest, files).passed


def test_unique_account_month_fails_on_duplicate_and_wrong_file(built):
    cfg, con, files, source, latest = built
    _rewrite(files["2024-03"], lambda t: pa.concat_tables([t, t.slice(0, 1)]))
    out = check_unique_account_month(con, cfg, files)
    assert not out.passed and out.metadata["offending_keys"] == ["1@2024-03"]
    _rewrite(files["2024-03"], lambda t: t.slice(1))  # back to 3 rows, the duplicate gone
    _rewrite(files["2024-04"], lambda t: t.set_column(1, "rpt_as_of_mo", pa.array(["2024-05"] * t.num_rows)))
    out = check_unique_account_month(con, cfg, files)
    assert not out.passed and "1@2024-05" in out.metadata["offending_keys"]


def test_history_length_fails_on_short_array(built):
    cfg, con, files, source, latest = built
    _rewrite(files["2024-02"], lambda t: _set_history(t, "balance_am_history", 1, [1.0] * 35))
    out = check_history_length(con, cfg, files)
    assert not out.passed and out.metadata["offending_keys"] == ["2@2024-02"]


def test_history_matches_source_fails_on_wrong_first_element_and_missing_row(built):
    cfg, con, files, source, latest = built
    _rewrite(files["2024-02"], lambda t: _set_history(t, "days_past_due_history", 0, [99] + [None] * 35))
    out = check_history_matches_source(con, cfg, files, source)
    assert not out.passed and out.metadata["offending_keys"] == ["1@2024-02 (differs)"]
    _rewrite(files["2024-05"], lambda t: t.slice(0, 2))
    out = check_history_matches_source(con, cfg, files, source)
    assert out.metadata["offending_count"] == 2 and "3@2024-05 (missing)" in out.metadata["offending_keys"]


def test_history_consistency_fails_on_stale_month(built):
    cfg, con, files, source, latest = built
    # a month left stale after a backfill: its [1] no longer equals the previous month's [0]
    def stale(t):
        hist = t.column("balance_am_history").to_pylist()
        hist[2][1] = -123.0
        return t.set_column(t.schema.get_field_index("balance_am_history"), "balance_am_history",
                            pa.array(hist, t.schema.field("balance_am_history").type))
    _rewrite(files["2024-04"], stale)
    out = check_history_consistency(con, cfg, files)
    assert not out.passed and out.metadata["offending_keys"] == ["3@2024-04", "3@2024-05"]  # both neighbours disagree
    assert check_history_matches_source(con, cfg, files, source).passed  # [0] still right: only this check sees it


def test_one_row_per_account_fails_on_duplicate_and_stale_latest(built):
    cfg, con, files, source, latest = built
    _rewrite(latest, lambda t: pa.concat_tables([t, t.slice(2, 1)]))
    out = check_one_row_per_account(con, cfg, latest, files)
    assert not out.passed and out.metadata["offending_keys"] == ["3 (duplicate)"]
    _rewrite(latest, lambda t: t.slice(0, 3).set_column(1, "rpt_as_of_mo", pa.array(["2024-06", "2024-05", "2024-06"])))
    out = check_one_row_per_account(con, cfg, latest, files)
    assert not out.passed and out.metadata["offending_keys"] == ["2 (not at its greatest month)"]


@pytest.mark.parametrize("key_type", ["BIGINT", "VARCHAR"])
def test_latest_rows_read_in_key_ranges_equal_one_sorted_read(data_root, tmp_path, key_type):
    """latest_summary bounds its memory by reading key ranges: any range size gives the
    same rows in the same order (accounts ending in different months)."""
    inbox = tmp_path / "inbox"
    recs = [(k, m, float(k + i), i, 0) for k in range(1, 40) for i, m in enumerate(MONTHS) if i <= k % 6]
    write_batch(inbox, "0001.parquet", recs)
    cfg = cfg_for(inbox, key_type=key_type)
    out = tmp_path / "out"
    full_build(cfg, out, "2024-01", "2024-06")
    files = sorted(out.glob("*.parquet"))
    con = connect()
    tables = {n: latest_reader(con, cfg, files, rows_per_query=n).read_all() for n in (1000, 7, 1)}
    whole = tables[1000]
    assert whole.num_rows == 39 and whole.column("cons_acct_key").to_pylist() == sorted(whole.column("cons_acct_key").to_pylist())
    assert {r["rpt_as_of_mo"] for r in whole.to_pylist()} == set(MONTHS)
    assert tables[7].equals(whole) and tables[1].equals(whole)


def test_latest_key_ranges_follow_duckdb_memory_limit(data_root):
    """A lower DUCKDB_MEMORY_LIMIT reads latest_summary in smaller key ranges (a range's
    sort of full rows must fit it: 200k rows failed under 512 MB with "Out of Memory")."""
    from assets_pkg.duck import memory_limit_bytes
    from assets_pkg.summary.latest import ROWS_PER_QUERY, rows_per_query_for

    sizes = {}
    for limit in ("2GB", "512MB", "300MB", "1MB"):
        sizes[limit] = rows_per_query_for(memory_limit_bytes(connect(memory_limit=limit)))
    assert sizes["2GB"] == ROWS_PER_QUERY
    assert 90_000 <= sizes["512MB"] <= 100_000 and 50_000 <= sizes["300MB"] <= 60_000
    assert sizes["1MB"] == 1_000
    unlimited = duckdb.connect()
    unlimited.execute("SET memory_limit = '-1'")  # DuckDB reports it as 16383.9 PiB
    assert rows_per_query_for(memory_limit_bytes(unlimited)) == ROWS_PER_QUERY


def test_history_matches_source_digested_in_parts_of_accounts_gives_the_same_outcome(built):
    """A month with more records than ``rows_per_query`` is digested in parts of its
    accounts (bounded memory): passing and failing, the outcome is the whole month's."""
    cfg, con, files, source, latest = built

    def same():
        whole = check_history_matches_source(con, cfg, files, source)
        for rows in (2, 1):  # 3 accounts a month: 2 and 3 parts
            parted = check_history_matches_source(con, cfg, files, source, rows_per_query=rows)
            assert (parted.passed, parted.description, parted.metadata) == (whole.passed, whole.description, whole.metadata)
            assert {m: o.metadata for m, o in parted.by_partition.items()} == {m: o.metadata for m, o in whole.by_partition.items()}
        return whole

    assert same().passed
    _rewrite(files["2024-03"], lambda t: t.set_column(t.schema.get_field_index("balance_am"), "balance_am",
                                                      pa.array([1.5, 2.5, 3.5])))
    failed = same()
    assert not failed.passed and failed.metadata["offending_count"] == 3
