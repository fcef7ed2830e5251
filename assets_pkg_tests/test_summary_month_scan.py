"""The month scan behind the summary checks: one read of each month file, in row groups,
checked while the build writes later months. Planted defects fail the right check and
name the account and month; row order and row-group boundaries change nothing."""

import dataclasses
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assets_pkg.duck import connect
from assets_pkg.storage import local_scratch
from assets_pkg.summary.month_scan import MonthPipeline, MonthScanner, scan_months
from assets_pkg.summary.months import month_range
from assets_pkg.summary.validate import summary_outcomes
from assets_pkg_tests.test_summary_helpers import cfg_for, full_build, write_batch

MONTHS = month_range("2024-01", "2024-06")


@pytest.fixture
def built(data_root, tmp_path):
    inbox = tmp_path / "inbox"
    # account 4 skips 2024-03 (a gap), account 5 has a NULL balance in 2024-02
    recs = [(k, m, float(k * 10 + i), i, 0) for k in (1, 2, 3, 4, 5) for i, m in enumerate(MONTHS)
            if not (k == 4 and m == "2024-03")]
    recs = [(k, m, None if (k, m) == (5, "2024-02") else b, d, t) for k, m, b, d, t in recs]
    write_batch(inbox, "0001.parquet", recs)
    cfg = cfg_for(inbox)
    out = tmp_path / "out"
    full_build(cfg, out, "2024-01", "2024-06")
    files = {p.stem: p for p in sorted(out.glob("*.parquet"))}
    return cfg, connect(), files


def _rewrite(path, fn):
    pq.write_table(fn(pq.read_table(path)), path)


def _set(table, col, row, position, value):
    hist = table.column(col).to_pylist()
    hist[row][position] = value
    return table.set_column(table.schema.get_field_index(col), col, pa.array(hist, table.schema.field(col).type))


def _failed(outcomes) -> dict:
    return {o.name: o.metadata["offending_keys"] for o in outcomes if not o.passed}


def test_good_build_in_any_row_order_and_row_group_size_passes(built):
    cfg, con, files = built
    assert _failed(summary_outcomes(con, cfg, files, None)) == {}
    reference = scan_months(cfg, con, files)
    assert reference.pairs_checked == 5 and reference.months_checked == 6
    # keys no longer ascending: the duplicate search and the pairing by key still hold
    for path in files.values():
        _rewrite(path, lambda t: t.take(pa.array(list(range(t.num_rows - 1, -1, -1)))))
    assert _failed(summary_outcomes(con, cfg, files, None)) == {}
    scanner = MonthScanner(cfg, con, batch_rows=2)  # rows of one month over several batches
    for month in sorted(files):
        scanner.add(month, files[month])
    assert scanner.facts == reference


def test_a_null_moved_in_a_history_is_a_stale_month(built):
    cfg, con, files = built
    # account 2's 2024-04 row: [1] (2024-03's value) replaced by NULL
    _rewrite(files["2024-04"], lambda t: _set(t, "balance_am_history", 1, 1, None))
    assert _failed(summary_outcomes(con, cfg, files, None)) == {"history_consistency": ["2@2024-04", "2@2024-05"]}


def test_a_value_where_the_source_has_a_null_is_a_stale_month(built):
    cfg, con, files = built
    # account 5 has a NULL balance in 2024-02: its 2024-03 row (row 3: account 4 skips the month) [1] must be NULL too
    _rewrite(files["2024-03"], lambda t: _set(t, "balance_am_history", 3, 1, 0.0))
    assert _failed(summary_outcomes(con, cfg, files, None)) == {"history_consistency": ["5@2024-03", "5@2024-04"]}


def test_first_element_null_against_a_value_is_caught_row_by_row(built):
    cfg, con, files = built
    source_free = summary_outcomes(con, cfg, files, None)
    assert _failed(source_free) == {}
    _rewrite(files["2024-06"], lambda t: _set(t, "days_past_due_history", 0, 0, None))
    facts = scan_months(cfg, con, files)
    assert facts.first_months == {"2024-06"}


def test_wrong_length_row_fails_length_and_never_agrees_with_its_neighbours(built):
    cfg, con, files = built
    _rewrite(files["2024-02"], lambda t: _set_len(t, "days_past_due_history", 2, 35))
    failed = _failed(summary_outcomes(con, cfg, files, None))
    assert failed == {"history_length": ["3@2024-02"], "history_consistency": ["3@2024-02", "3@2024-03"]}


def _set_len(table, col, row, length):
    hist = table.column(col).to_pylist()
    hist[row] = hist[row][:length]
    return table.set_column(table.schema.get_field_index(col), col, pa.array(hist, table.schema.field(col).type))


def test_a_gap_month_pairs_nothing_across_it(built):
    cfg, con, files = built
    del files["2024-03"]  # not materialized: 2024-02 and 2024-04 are not a pair
    facts = scan_months(cfg, con, files)
    assert facts.pairs_checked == 3 and facts.inconsistent_count == 0


def test_pipeline_scans_months_handed_over_out_of_order_from_threads(built):
    cfg, con, files = built
    months = sorted(files)
    pipeline = MonthPipeline(cfg, con, months[1], months[-1], previous=files[months[0]])
    threads = [threading.Thread(target=pipeline.ready, args=(m, files[m])) for m in reversed(months[1:])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    facts = pipeline.finish()
    expected = scan_months(cfg, con, {m: files[m] for m in months[1:]}, previous={months[0]: files[months[0]]})
    assert facts == expected and facts.months_checked == 5 and facts.pairs_checked == 5


def test_pipeline_refuses_to_report_a_month_never_handed_over(built):
    cfg, con, files = built
    pipeline = MonthPipeline(cfg, con, "2024-01", "2024-03")
    pipeline.ready("2024-01", files["2024-01"])
    pipeline.ready("2024-03", files["2024-03"])
    with pytest.raises(RuntimeError, match="2024-02 was never handed over"):
        pipeline.finish()


def test_a_month_changed_after_its_write_fails_the_build_s_checks(data_root, tmp_path):
    """The checks of a build read the files back (independent of the builder's memory):
    a month file altered between its write and its check fails them, named."""
    inbox = tmp_path / "inbox"
    write_batch(inbox, "0001.parquet", [(k, m, float(k + i), i, 0) for k in (1, 2) for i, m in enumerate(MONTHS)])
    cfg = cfg_for(inbox)
    out = tmp_path / "out"

    def plant(month, rows):
        if month == "2024-03":
            _rewrite(out / f"{month}.parquet", lambda t: _set(t, "balance_am_history", 1, 1, -1.0))

    result = full_build(cfg, out, "2024-01", "2024-06", on_month=plant)
    assert _failed(result.outcomes) == {"history_consistency": ["2@2024-03", "2@2024-04"]}
    clean = full_build(cfg, tmp_path / "clean", "2024-01", "2024-06")
    assert _failed(clean.outcomes) == {}


def _spilled(folder, name: str, month_index: int, keys: list, batch_rows: int, seed: int):
    """A month's (key, head, tail, bad) rows in ``batch_rows`` batches, as the scan spills
    them; hashes drawn from a few values so neighbours agree and disagree."""
    import numpy as np
    import pyarrow.ipc as ipc

    from assets_pkg.summary.month_scan import _MonthHashes

    rng = np.random.default_rng(seed)
    n = len(keys)
    schema = pa.schema([("key", pa.string()), ("head", pa.uint64()), ("tail", pa.uint64()), ("bad", pa.bool_())])
    table = pa.table({"key": pa.array(keys, pa.string()), "head": rng.integers(0, 3, n, dtype=np.uint64),
                      "tail": rng.integers(0, 3, n, dtype=np.uint64), "bad": rng.random(n) < 0.1}, schema=schema)
    path = folder / name
    with ipc.new_stream(str(path), schema) as out:
        for batch in table.to_batches(max_chunksize=batch_rows):
            out.write_batch(batch)
    return _MonthHashes(month_index, path, ascending=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prev_keys=st.sets(st.text("abz'", min_size=0, max_size=4), max_size=40),
       cur_keys=st.sets(st.text("abz'", min_size=0, max_size=4), max_size=40),
       prev_batch=st.integers(1, 9), cur_batch=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_pairing_months_batch_by_batch_equals_pairing_them_whole(tmp_path, prev_keys, cur_keys, prev_batch,
                                                                  cur_batch, seed):
    """Two months whose keys ascend are paired by merging their hash files one batch at a
    time (memory of a batch, not of a month); whatever the batch sizes and however the keys
    interleave, the offending rows and their labels are those of pairing the months whole."""
    from assets_pkg.summary.config import SummarySettings
    from assets_pkg.summary.month_scan import MonthScanner

    prev = _spilled(tmp_path, f"p{seed}.arrow", 1, sorted(prev_keys), prev_batch, seed)
    cur = _spilled(tmp_path, f"c{seed}.arrow", 2, sorted(cur_keys), cur_batch, seed + 1)
    scanners = [MonthScanner(SummarySettings(), None) for _ in range(2)]
    scanners[0]._pairs("2024-02", prev, cur)
    whole = (dataclasses.replace(prev, ascending=False), cur)
    scanners[1]._pairs("2024-02", *whole)
    batched, reference = scanners[0].facts, scanners[1].facts
    assert batched == reference and batched.pairs_checked == 1
    p_keys, _, p_tails, p_bad = prev.whole()
    expected = sum(1 for k, h, b in zip(*[cur.whole()[i] for i in (0, 1, 3)])
                   if k.as_py() in prev_keys and (b or h != p_tails[sorted(prev_keys).index(k.as_py())]
                                                 or p_bad[sorted(prev_keys).index(k.as_py())]))
    assert batched.inconsistent_count == expected


def test_a_month_whose_keys_do_not_ascend_is_scanned_whole_and_its_duplicates_named(built):
    """A file not in the build's key order (a repeated account) cannot be merged by key:
    its duplicate is found and named, and its pairs with the months around it still hold."""
    cfg, con, files = built
    _rewrite(files["2024-03"], lambda t: pa.concat_tables([t, t.slice(1, 1)]))  # account 2 twice
    before = set(local_scratch("summary-checks").glob("hashes-*"))
    facts = scan_months(cfg, con, files)
    assert facts.unique_bad == ["2@2024-03"] and facts.unique_count == 1
    assert facts.pairs_checked == 5 and facts.inconsistent_count == 0
    assert set(local_scratch("summary-checks").glob("hashes-*")) == before, "the scan's hash files outlive it"
