"""Pure summary logic: exact history arrays, tie-breaking, backfill reach, bad inputs."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets_pkg.duck import connect, current_setting, setting
from assets_pkg.settings import SettingError
from assets_pkg.summary.config import load_summary_settings
from assets_pkg.summary.engine import rebuild_months
from assets_pkg.summary.months import MonthError, add_months, contiguous_ranges, month_index, month_range, month_str
from assets_pkg.summary.plan import plan_batches
from assets_pkg.summary.source import Source, SummarySourceError, list_batch_files, month_chunks
from assets_pkg_tests.test_summary_helpers import cfg_for, full_build, read_months, reference, write_batch


def test_month_arithmetic():
    assert month_index("2016-01") == 2016 * 12
    assert month_str(month_index("2024-12") + 1) == "2025-01"
    assert add_months("2024-03", -3) == "2023-12"
    assert month_range("2024-11", "2025-02") == ["2024-11", "2024-12", "2025-01", "2025-02"]
    assert contiguous_ranges(["2024-01", "2024-02", "2024-05"]) == [("2024-01", "2024-02"), ("2024-05", "2024-05")]
    for bad in ["2024-13", "2024-1", "24-01", "2024/01", "", None]:
        with pytest.raises(MonthError):
            month_index(bad)


def test_month_chunks_bound_rows():
    rows = {0: 5, 1: 5, 2: 5, 3: 20, 4: 1}
    assert month_chunks(rows, 0, 4, 10) == [(0, 1), (2, 2), (3, 3), (4, 4)]
    assert month_chunks(rows, 0, 4, 100) == [(0, 4)]


def test_exact_arrays_with_gaps(data_root, tmp_path):
    inbox = tmp_path / "inbox"
    # account 1: gap of one month (2020-02 missing), then 2023-02 = 2020-03 + 35 months,
    # then 2023-04 (2020-03 + 37: the 2020 records have left the 36-month window)
    # account 2: 2020-01 and 2023-01 = 2020-01 + 36 months (just out of reach)
    # account 3: two consecutive months with a NULL and a negative value
    records = [
        (1, "2020-01", 10.0, 1, 0),
        (1, "2020-03", 30.0, 3, 0),
        (1, "2023-02", 50.0, 5, 0),
        (1, "2023-04", 70.0, 7, 0),
        (2, "2020-01", 1.0, 0, 0),
        (2, "2023-01", 2.0, 0, 0),
        (3, "2021-06", None, 9, 0),
        (3, "2021-07", -5.5, None, 0),
    ]
    write_batch(inbox, "b1.parquet", records)
    cfg = cfg_for(inbox)
    out = tmp_path / "out"
    res = full_build(cfg, out)
    got = read_months(out)
    assert got == reference([("b1.parquet", records)])
    assert set(got) == {"2020-01", "2020-03", "2023-02", "2023-04", "2023-01", "2021-06", "2021-07"}
    row = got["2020-03"][0]
    assert row["balance_am_history"][:3] == [30.0, None, 10.0] and row["balance_am_history"][3:] == [None] * 33
    row = got["2023-02"][0]
    assert row["balance_am_history"][0] == 50.0 and row["balance_am_history"][35] == 30.0
    assert row["balance_am_history"][1:35] == [None] * 34
    row = got["2023-04"][0]
    assert row["balance_am_history"][0] == 70.0 and row["balance_am_history"][2] == 50.0
    assert sum(v is not None for v in row["balance_am_history"]) == 2
    row2 = [r for r in got["2023-01"] if r["cons_acct_key"] == 2][0]
    assert row2["balance_am_history"] == [2.0] + [None] * 35  # gap of 36: nothing carried
    r3 = got["2021-07"][0]
    assert r3["balance_am"] == -5.5 and r3["days_past_due"] is None
    assert r3["balance_am_history"][:2] == [-5.5, None] and r3["days_past_due_history"][:2] == [None, 9]
    assert all(len(r["balance_am_history"]) == 36 for rows in got.values() for r in rows)
    assert res.stats.rows == len(records)
    assert all(o.passed for o in res.outcomes), [o.line() for o in res.outcomes]


def test_ties_later_file_then_later_row(data_root, tmp_path):
    inbox = tmp_path / "inbox"
    b1 = [(1, "2024-01", 1.0, 0, 5), (2, "2024-01", 1.0, 0, 5), (3, "2024-01", 1.0, 0, 9)]
    b2 = [(1, "2024-01", 2.0, 0, 5), (2, "2024-01", 2.0, 0, 5), (2, "2024-01", 3.0, 0, 5), (3, "2024-01", 2.0, 0, 8)]
    write_batch(inbox, "a.parquet", b1)
    write_batch(inbox, "b.parquet", b2)
    out = tmp_path / "out"
    full_build(cfg_for(inbox), out, "2024-01", "2024-01")
    got = {r["cons_acct_key"]: r["balance_am"] for r in read_months(out)["2024-01"]}
    assert got == {1: 2.0, 2: 3.0, 3: 1.0}  # later file; later row; greater base_ts wins over later file
    assert read_months(out) == reference([("a.parquet", b1), ("b.parquet", b2)])


def test_backfill_reaches_36_months_and_no_further(data_root, tmp_path):
    inbox = tmp_path / "inbox"
    months = month_range("2018-01", "2022-12")
    base = [(7, m, float(i), i, 0) for i, m in enumerate(months)] + [(8, m, 1.0, 1, 0) for m in months]
    write_batch(inbox, "0001.parquet", base)
    cfg = cfg_for(inbox)
    out = tmp_path / "out"
    full_build(cfg, out, update_state=True)
    before = read_months(out)
    mtimes = {p.stem: p.stat().st_mtime_ns for p in out.glob("*.parquet")}
    fix = [(7, "2019-03", -1.0, 99, 10)]
    write_batch(inbox, "0002.parquet", fix)
    con = connect()
    files = list_batch_files(inbox)
    plan = plan_batches(con, cfg, [f for f in files if f.name == "0002.parquet"], files, sorted(out.glob("*.parquet")))
    assert plan.case_backfill == 1 and plan.case_new == 0 and plan.case_forward == 0
    assert (plan.start, plan.end) == ("2019-03", add_months("2019-03", 35))
    rebuild_months(cfg, plan.start, plan.end, lambda m: out / f"{m}.parquet", update_state=False)
    after = read_months(out)
    for m in months:
        if m in plan.affected_months:
            assert out.joinpath(f"{m}.parquet").stat().st_mtime_ns != mtimes[m]
        else:
            assert out.joinpath(f"{m}.parquet").stat().st_mtime_ns == mtimes[m]
            assert after[m] == before[m]
    for k in range(36):
        m = add_months("2019-03", k)
        row = [r for r in after[m] if r["cons_acct_key"] == 7][0]
        assert row["balance_am_history"][k] == -1.0
    m36 = add_months("2019-03", 36)
    row = [r for r in after[m36] if r["cons_acct_key"] == 7][0]
    assert -1.0 not in row["balance_am_history"]
    assert after == reference([("0001.parquet", base), ("0002.parquet", fix)])


def test_plan_classifies_cases(data_root, tmp_path):
    inbox = tmp_path / "inbox"
    write_batch(inbox, "0001.parquet", [(1, "2024-01", 1.0, 0, 0), (1, "2024-03", 1.0, 0, 0), (2, "2024-02", 1.0, 0, 0)])
    cfg = cfg_for(inbox)
    out = tmp_path / "out"
    full_build(cfg, out)
    new = [
        (1, "2024-04", 2.0, 0, 1),  # forward (after 2024-03)
        (1, "2024-02", 2.0, 0, 1),  # backfill (before 2024-03)
        (2, "2024-02", 2.0, 0, 1),  # backfill at the latest month itself
        (3, "2024-05", 2.0, 0, 1),  # new account
        (3, "2024-06", 2.0, 0, 1),  # new account, second record
        (4, "2023-12", 2.0, 0, 1),  # new account
    ]
    write_batch(inbox, "0002.parquet", new)
    files = list_batch_files(inbox)
    plan = plan_batches(connect(), cfg, [files[1]], files, sorted(out.glob("*.parquet")))
    assert (plan.case_new, plan.case_forward, plan.case_backfill) == (3, 1, 2)
    assert (plan.accounts_new, plan.accounts_forward, plan.accounts_backfill) == (2, 0, 2)
    assert plan.records == 6
    # months m..m+35 limited to the months that exist (last source month 2024-06)
    assert (plan.start, plan.end) == ("2023-12", "2024-06")
    tags = plan.tags()
    assert tags["dagster/asset_partition_range_start"] == "2023-12"
    assert tags["summary/case_iii_backfill"] == "2"


def test_old_timestamps_batch_is_still_planned(data_root, tmp_path):
    inbox = tmp_path / "inbox"
    write_batch(inbox, "0001.parquet", [(1, "2024-01", 1.0, 0, 100), (1, "2024-02", 1.0, 0, 100)])
    cfg = cfg_for(inbox)
    out = tmp_path / "out"
    full_build(cfg, out)
    write_batch(inbox, "0002.parquet", [(1, "2024-01", 9.0, 0, 5), (2, "2024-01", 9.0, 0, 5)])
    files = list_batch_files(inbox)
    plan = plan_batches(connect(), cfg, [files[1]], files, sorted(out.glob("*.parquet")))
    assert plan.older_than_newest == 2 and plan.records == 2
    assert plan.start == "2024-01"
    full_build(cfg, out, plan.start, plan.end)
    got = read_months(out)["2024-01"]
    assert {r["cons_acct_key"]: r["balance_am"] for r in got} == {1: 1.0, 2: 9.0}  # old ts loses, new account lands


def _expect_error(cfg, out, *needles):
    with pytest.raises(SummarySourceError) as err:
        full_build(cfg, out)
    for needle in needles:
        assert needle in str(err.value), str(err.value)
    return str(err.value)


@pytest.mark.parametrize(
    "month, needle",
    [("2024-13", "malformed rpt_as_of_mo '2024-13'"), ("2024-1", "malformed"), ("2015-12", "before first_month 2016-01"),
     ("2999-01", "after the current month")],
)
def test_bad_months_refused_nothing_written(data_root, tmp_path, month, needle):
    inbox = tmp_path / "inbox"
    write_batch(inbox, "0001.parquet", [(1, "2024-01", 1.0, 0, 0)])
    out = tmp_path / "out"
    full_build(cfg_for(inbox), out)
    before = {p.name: p.read_bytes() for p in out.glob("*.parquet")}
    write_batch(inbox, "0002.parquet", [(1, "2024-02", 1.0, 0, 0), (2, month, 1.0, 0, 0)])
    msg = _expect_error(cfg_for(inbox), out, needle, "0002.parquet", "rows 2")
    assert {p.name: p.read_bytes() for p in out.glob("*.parquet")} == before, msg


def test_bad_rows_skip_policy_counts_them(data_root, tmp_path):
    inbox = tmp_path / "inbox"
    write_batch(inbox, "0001.parquet", [(1, "2024-01", 1.0, 0, 0), (2, "2024-13", 1.0, 0, 0), (None, "2024-01", 1.0, 0, 0)])
    out = tmp_path / "out"
    res = full_build(cfg_for(inbox, bad_rows="skip"), out)
    assert res.profile.bad_rows == 2 and res.stats.rows == 1
    assert len(res.profile.problems) == 2


def test_profile_names_each_file_s_problems_and_leaves_the_connection_s_settings(data_root, tmp_path):
    """The profile scans without Parquet prefetching (a block that sets it and puts the
    previous value back): each file's problems keep their file and row numbers, the error
    with bad_rows="error" names both files, and the setting is restored whichever it was."""
    inbox = tmp_path / "inbox"
    write_batch(inbox, "0001.parquet", [(1, "2024-01", 1.0, 0, 0), (2, "2024-13", 1.0, 0, 0)])
    write_batch(inbox, "0002.parquet", [(None, "2024-02", 1.0, 0, 0), (3, "2024-02", 1.0, 0, 0), (None, "2024-02", 2.0, 0, 0)])
    con = connect()
    with Source(con, cfg_for(inbox, bad_rows="skip"), list_batch_files(inbox)) as source:
        prof = source.profile()
    assert prof.problems == [
        f"{inbox / '0001.parquet'}: 1 rows with malformed rpt_as_of_mo '2024-13' (expected YYYY-MM) (rows 2)",
        f"{inbox / '0002.parquet'}: 2 rows with null cons_acct_key (rows 1, 3)",
    ]
    assert (prof.rows, prof.bad_rows) == (5, 3)
    assert prof.rows_per_month == {month_index("2024-01"): 1, month_index("2024-02"): 1}
    assert prof.file_months == {"0001.parquet": {month_index("2024-01")}, "0002.parquet": {month_index("2024-02")}}
    assert current_setting(con, "disable_parquet_prefetching") is False
    for before in (False, True):
        with setting(con, "disable_parquet_prefetching", before):
            with Source(con, cfg_for(inbox), list_batch_files(inbox)) as source:
                with pytest.raises(SummarySourceError) as err:
                    source.profile()
            assert current_setting(con, "disable_parquet_prefetching") is before
        assert "0001.parquet: 1 rows with malformed" in str(err.value)
        assert "0002.parquet: 2 rows with null cons_acct_key (rows 1, 3)" in str(err.value)


def test_null_key_refused(data_root, tmp_path):
    inbox = tmp_path / "inbox"
    write_batch(inbox, "0001.parquet", [(1, "2024-01", 1.0, 0, 0), (None, "2024-01", 1.0, 0, 0)])
    _expect_error(cfg_for(inbox), tmp_path / "out", "null cons_acct_key", "0001.parquet")
    assert not list((tmp_path / "out").glob("*.parquet"))


def test_null_base_ts_refused(data_root, tmp_path):
    inbox = tmp_path / "inbox"
    write_batch(inbox, "0001.parquet", [(1, "2024-01", 1.0, 0, None)])
    _expect_error(cfg_for(inbox), tmp_path / "out", "base_ts", "0001.parquet")


def test_missing_column_names_file_and_column(data_root, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    pq.write_table(pa.table({"cons_acct_key": [1], "rpt_as_of_mo": ["2024-01"], "balance_am": [1.0],
                             "base_ts": pa.array([0], pa.timestamp("us"))}), inbox / "0001.parquet")
    _expect_error(cfg_for(inbox), tmp_path / "out", "0001.parquet", "missing column 'days_past_due'")


def test_corrupt_parquet_clear_error_nothing_written(data_root, tmp_path):
    inbox = tmp_path / "inbox"
    write_batch(inbox, "0001.parquet", [(1, "2024-01", 1.0, 0, 0)])
    out = tmp_path / "out"
    full_build(cfg_for(inbox), out)
    before = {p.name: p.read_bytes() for p in out.glob("*.parquet")}
    good = (inbox / "0001.parquet").read_bytes()
    (inbox / "0002.parquet").write_bytes(good[: len(good) // 2] + b"garbage" * 10)
    _expect_error(cfg_for(inbox), out, "0002.parquet", "not a readable parquet file")
    assert {p.name: p.read_bytes() for p in out.glob("*.parquet")} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_empty_batches_are_fine(data_root, tmp_path):
    inbox = tmp_path / "inbox"
    write_batch(inbox, "0001.parquet", [(1, "2024-01", 1.0, 0, 0)])
    write_batch(inbox, "0002.parquet", [])
    (inbox / "0003.csv").write_text("")
    (inbox / "0004.csv").write_text("cons_acct_key,rpt_as_of_mo,balance_am,days_past_due,base_ts\n")
    out = tmp_path / "out"
    res = full_build(cfg_for(inbox), out)
    assert res.stats.rows == 1 and res.batches == 4
    files = list_batch_files(inbox)
    plan = plan_batches(connect(), cfg_for(inbox), files[1:], files, sorted(out.glob("*.parquet")))
    assert plan.records == 0 and plan.empty


def test_csv_batch_through_streaming_reader(data_root, tmp_path):
    inbox = tmp_path / "inbox"
    write_batch(inbox, "0001.parquet", [(1, "2024-01", 1.0, 0, 0), (1, "2024-02", 1.0, 0, 0)])
    (inbox / "0002.csv").write_text(
        "cons_acct_key,rpt_as_of_mo,balance_am,days_past_due,base_ts,extra\n"
        "1,2024-01,-7.25,3,2024-02-01 00:00:00,x\n"
        "2,2024-02,,4,2024-02-01 00:00:00,y\n"
    )
    out = tmp_path / "out"
    full_build(cfg_for(inbox), out)
    got = read_months(out)
    assert got["2024-01"][0]["balance_am"] == -7.25 and got["2024-01"][0]["days_past_due"] == 3
    assert got["2024-02"][0]["balance_am_history"][:2] == [1.0, -7.25]
    r2 = [r for r in got["2024-02"] if r["cons_acct_key"] == 2][0]
    assert r2["balance_am"] is None and r2["days_past_due"] == 4


def test_csv_bad_value_names_file_and_row(data_root, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "0001.csv").write_text(
        "cons_acct_key,rpt_as_of_mo,balance_am,days_past_due,base_ts\n"
        "1,2024-01,1.0,3,2024-02-01 00:00:00\n"
        "abc,2024-01,1.0,3,2024-02-01 00:00:00\n"
        "3,2024-01,lots,3,2024-02-01 00:00:00\n"
    )
    msg = _expect_error(cfg_for(inbox), tmp_path / "out", "0001.csv")
    assert "cons_acct_key not a BIGINT" in msg and "balance_am not a DOUBLE" in msg


def test_unknown_files_in_inbox_refused(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "notes.txt").write_text("x")
    (inbox / ".hidden.tmp-123").write_text("x")
    with pytest.raises(SummarySourceError, match="notes.txt"):
        list_batch_files(inbox)


def test_config_file_and_env(tmp_path, monkeypatch):
    path = tmp_path / "summary.yaml"
    path.write_text("history_length: 12\nhistory_columns: [balance_am]\nfirst_month: '2020-01'\n")
    monkeypatch.setenv("SUMMARY_CONFIG", str(path))
    cfg = load_summary_settings()
    assert cfg.history_length == 12 and cfg.history_columns == ("balance_am",) and cfg.first_month == "2020-01"
    path.write_text('{"history_lenght": 3}')
    with pytest.raises(SettingError, match="history_lenght"):
        load_summary_settings(path)
    path.write_text("first_month: '2020-13'\n")
    with pytest.raises(SettingError, match="first_month"):
        load_summary_settings(path)


def test_short_history_length_config(data_root, tmp_path):
    inbox = tmp_path / "inbox"
    recs = [(1, m, float(i), i, 0) for i, m in enumerate(month_range("2024-01", "2024-06"))]
    write_batch(inbox, "0001.parquet", recs)
    out = tmp_path / "out"
    full_build(cfg_for(inbox, history_length=3), out)
    assert read_months(out) == reference([("0001.parquet", recs)], length=3)


def test_replaced_and_removed_batches_rebuild_their_old_months(data_root, tmp_path):
    import os
    import time

    from assets_pkg.summary import state

    inbox = tmp_path / "inbox"
    state_file = tmp_path / "state.json"
    b1 = [(1, "2024-01", 1.0, 0, 0), (1, "2024-02", 1.0, 0, 0)]
    b2 = [(2, "2024-05", 2.0, 0, 0)]
    write_batch(inbox, "0001.parquet", b1)
    write_batch(inbox, "0002.parquet", b2)
    cfg = cfg_for(inbox, history_length=3)
    out = tmp_path / "out"
    full_build(cfg, out, "2024-01", "2024-06", update_state=True, state_file=state_file)
    assert set(state.load_processed(state_file)) == {"0001.parquet", "0002.parquet"}
    # 0002 replaced by a file with another month; 0001 removed
    time.sleep(0.01)
    b2_new = [(2, "2024-03", 3.0, 0, 0)]
    write_batch(inbox, "0002.parquet", b2_new)
    os.utime(inbox / "0002.parquet", ns=(time.time_ns(), time.time_ns()))
    (inbox / "0001.parquet").unlink()
    files = list_batch_files(inbox)
    new, gone = state.pending_files(files, state.load_processed(state_file))
    assert [f.name for f in new] == ["0002.parquet"] and set(gone) == {"0001.parquet", "0002.parquet"}
    plan = plan_batches(connect(), cfg, new, files, sorted(out.glob("*.parquet")), gone)
    assert plan.affected_months == month_range("2024-01", "2024-05")  # old months of both + the new one
    rebuild_months(cfg, plan.start, plan.end, lambda m: out / f"{m}.parquet", state_file=state_file)
    assert read_months(out) == reference([("0002.parquet", b2_new)], length=3)
    assert state.pending_files(list_batch_files(inbox), state.load_processed(state_file)) == ([], {})


def test_history_window_seeded_from_current_month_files(data_root, tmp_path):
    """A range rebuild reads the months before its start from their month files when those
    carry the current source fingerprint, and from the source when they are stale."""
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    b1 = [(1, "2024-01", 1.0, 1, 0), (1, "2024-02", 2.0, 2, 0), (2, "2024-02", 5.0, None, 0),
          (1, "2024-04", 4.0, 4, 0), (2, "2024-05", None, 7, 0), (3, "2024-06", 6.0, 6, 0)]
    write_batch(inbox, "b1.parquet", b1)
    cfg = cfg_for(inbox, first_month="2024-01")
    full_build(cfg, out, "2024-01", "2024-06")
    # a range over the end of data: every month before it is current -> all read from files
    res = full_build(cfg, out, "2024-05", "2024-06")
    assert res.stats.seeded_months == 3  # 2024-01, -02, -04 (2024-03 has no records)
    assert read_months(out) == reference([("b1.parquet", b1)])
    # a new batch touching 2024-02, and a range that does not cover it: 2024-02's file is
    # stale and must not be used; the months rebuilt still equal a full rebuild
    b2 = [(1, "2024-02", 20.0, 20, 5), (4, "2024-02", 9.0, 9, 5)]
    write_batch(inbox, "b2.parquet", b2)
    res = full_build(cfg, out, "2024-04", "2024-06")
    assert res.stats.seeded_months == 1  # only 2024-01 is still current
    want = reference([("b1.parquet", b1), ("b2.parquet", b2)])
    got = read_months(out)
    for m in ("2024-04", "2024-05", "2024-06"):
        assert got[m] == want[m]
    assert got["2024-04"][0]["balance_am_history"][:4] == [4.0, None, 20.0, 1.0]
    # a month file without fingerprint (older writer) or with another one is not trusted
    full_build(cfg, out, "2024-01", "2024-06")
    table = pq.read_table(out / "2024-02.parquet")
    pq.write_table(table.replace_schema_metadata(None), out / "2024-02.parquet")
    res = full_build(cfg, out, "2024-04", "2024-06")
    assert res.stats.seeded_months == 1
    assert read_months(out) == want
    # other settings (values typed differently) -> nothing is seeded
    res = full_build(cfg_for(inbox, first_month="2024-01", value_types={"balance_am": "FLOAT", "days_past_due": "INTEGER"}),
                     out, "2024-04", "2024-06")
    assert res.stats.seeded_months == 0


def test_month_file_codecs_and_fixed_length_lists(data_root, tmp_path):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    write_batch(inbox, "b1.parquet", [(1, "2024-01", 1.0, 1, 0), (1, "2024-03", 3.0, None, 0)])
    full_build(cfg_for(inbox, first_month="2024-01"), out, "2024-01", "2024-03")
    meta = pq.ParquetFile(out / "2024-03.parquet").metadata
    names = [meta.schema.column(i).path for i in range(meta.num_columns)]
    codecs = {meta.schema.column(i).path: meta.row_group(0).column(i).compression for i in range(meta.num_columns)}
    assert codecs["balance_am_history.list.element"] == "ZSTD" and codecs["cons_acct_key"] == "ZSTD"
    lists = meta.row_group(0).column(names.index("balance_am_history.list.element"))
    assert not lists.is_stats_set
    assert "BYTE_STREAM_SPLIT" in lists.encodings and "BYTE_STREAM_SPLIT" not in meta.row_group(0).column(0).encodings
    con = connect()
    rows = con.execute(
        f"SELECT len(balance_am_history), balance_am_history[1], balance_am_history[2], balance_am_history[3] "
        f"FROM read_parquet('{out / '2024-03.parquet'}')"
    ).fetchall()
    assert rows == [(36, 3.0, None, 1.0)], names


def test_accounts_rebuild_does_not_vouch_for_the_whole_month(data_root, tmp_path):
    """A file written by an accounts-only rebuild (no previous file) holds just those
    accounts: it must not carry the fingerprint, so later ranges read that month from
    the source."""
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    b1 = [(1, "2024-01", 1.0, 1, 0), (2, "2024-01", 2.0, 2, 0), (1, "2024-02", 3.0, 3, 0), (2, "2024-02", 4.0, 4, 0)]
    write_batch(inbox, "b1.parquet", b1)
    cfg = cfg_for(inbox, first_month="2024-01")
    full_build(cfg, out, "2024-01", "2024-01", accounts=[1])
    assert [r["cons_acct_key"] for r in read_months(out)["2024-01"]] == [1]
    res = full_build(cfg, out, "2024-02", "2024-02")
    assert res.stats.seeded_months == 0
    assert read_months(out)["2024-02"] == reference([("b1.parquet", b1)])["2024-02"]
