"""`assets-pkg summary run` parity with the original job: --config FILE, --backfill-filter SQL,
forward = the current month, incremental = new batches + the months after the last summarized one."""

import json

import pyarrow.parquet as pq
import pytest

from assets_pkg.summary.cli import resolve_range
from assets_pkg.summary.months import current_month, month_range
from assets_pkg.summary.record_filter import RecordFilterError, validate_filter
from assets_pkg_tests.test_summary_helpers import cfg_for, full_build, read_months, write_batch

BASE = [(k, m, float(k + i), i, 0) for k in (1, 2, 3) for i, m in enumerate(month_range("2024-01", "2024-04"))]
# late corrections of 2024-02: account 1 at minute 100, account 2 at minute 200
CORRECTIONS = [(1, "2024-02", 111.0, 1, 100), (2, "2024-02", 222.0, 2, 200)]


@pytest.fixture
def inbox(data_root):
    return data_root / "inbox" / "accounts"


def month_rows(folder, month):
    return {r["cons_acct_key"]: r for r in pq.read_table(folder / f"{month}.parquet").to_pylist()}


def summary_dir(data_root):
    return data_root / "warehouse" / "summary" / "account_summary"


def snapshot(data_root):
    return {p: p.stat().st_mtime_ns for p in (data_root / "warehouse").rglob("*") if p.is_file()}


# ---- the filter: a predicate over the source columns, or refused --------------------------------

def test_valid_filters_are_accepted(tmp_path):
    cfg = cfg_for(tmp_path)
    for text in ("cons_acct_key IN (1, 2)", "base_ts >= TIMESTAMP '2024-01-01 01:00:00' AND balance_am > 3",
                 "rpt_as_of_mo BETWEEN '2024-02' AND '2024-03' OR days_past_due IS NULL",
                 "lower(rpt_as_of_mo) LIKE '2024-%'"):
        assert validate_filter(cfg, f"  {text} ") == text


@pytest.mark.parametrize(("text", "why"), [
    ("1; DROP TABLE x", "semicolon"),
    ("cons_acct_key = 1 -- ", "comment"),
    ("read_csv('/etc/passwd') IS NOT NULL", "read_csv() is not allowed"),
    ("getenv('HOME') = 'x'", "getenv() is not allowed"),
    ("nope = 1", "only the source columns"),
    ("summary_src.key = 1", "only the source columns"),
    ("cons_acct_key IN (SELECT 1)", "subqueries are not allowed"),
    ("EXISTS (SELECT * FROM read_parquet('x.parquet'))", "subqueries are not allowed"),
    ("cons_acct_key = 1) OR (1 = 1", ""),  # balanced by the wrapper: a plain OR, still only source columns
    ("cons_acct_key = ", "not an SQL expression"),
    ("", "is empty"),
])
def test_invalid_filters_are_refused_naming_the_flag(tmp_path, text, why):
    cfg = cfg_for(tmp_path)
    if not why:
        assert validate_filter(cfg, text)
        return
    with pytest.raises(RecordFilterError, match="--backfill-filter") as err:
        validate_filter(cfg, text)
    assert why in str(err.value)


def test_filter_rebuilds_only_the_accounts_with_matching_records(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    write_batch(src, "0001.parquet", BASE)
    cfg = cfg_for(src)
    full_build(cfg, out, "2024-01", "2024-04")
    write_batch(src, "0002.parquet", CORRECTIONS)
    result = full_build(cfg, out, "2024-02", "2024-04", record_filter="base_ts >= TIMESTAMP '2024-01-01 03:00:00'")
    assert result.filter_accounts == 1 and result.metadata()["backfill_filter_accounts"] == 1
    feb, mar = month_rows(out, "2024-02"), month_rows(out, "2024-03")
    assert feb[2]["balance_am"] == 222.0 and mar[2]["balance_am_history"][1] == 222.0  # the matched correction
    assert feb[1]["balance_am"] == 2.0 and mar[1]["balance_am_history"][1] == 2.0  # not matched: not read
    assert feb[3]["balance_am"] == 4.0  # untouched accounts keep their rows
    # an account's rows are computed from all of its records: equal to a full rebuild for it
    reference = tmp_path / "ref"
    full_build(cfg, reference, "2024-01", "2024-04")
    assert all(month_rows(out, m)[2] == month_rows(reference, m)[2] for m in month_range("2024-02", "2024-04"))


def test_filter_matching_nothing_changes_no_row(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    write_batch(src, "0001.parquet", BASE)
    cfg = cfg_for(src)
    full_build(cfg, out, "2024-01", "2024-04")
    before = read_months(out)
    result = full_build(cfg, out, "2024-01", "2024-04", record_filter="cons_acct_key = 99")
    assert result.filter_accounts == 0 and read_months(out) == before


# ---- forward / incremental ----------------------------------------------------------------------

def test_forward_without_start_month_is_the_current_month(data_root, inbox):
    write_batch(inbox, "0001.parquet", BASE)
    assert resolve_range("forward", None, None)[:2] == (current_month(), current_month())
    assert resolve_range("forward", None, None, now_month="2024-03")[:2] == ("2024-03", "2024-03")
    assert resolve_range("forward", "2024-02", "2024-04")[:2] == ("2024-02", "2024-04")
    with pytest.raises(ValueError, match="--end-month 2024-01 is before --start-month 2024-02"):
        resolve_range("forward", "2024-02", "2024-01")


def test_incremental_catches_up_the_months_after_the_last_summarized_one(data_root, inbox):
    from assets_pkg.summary import state
    from assets_pkg.summary.plan import month_file
    from assets_pkg.summary.source import list_batch_files

    write_batch(inbox, "0001.parquet", BASE)
    # months 2024-01..02 summarized, the batch recorded as processed: no new batch, two months to do
    cfg = cfg_for(inbox)
    out = month_file("2024-01").parent
    full_build(cfg, out, "2024-01", "2024-02", update_state=True)
    state.record_without_rebuild([f for f in list_batch_files(inbox)])  # as if processed
    start, end, note = resolve_range("incremental", None, None)
    assert (start, end) == ("2024-03", "2024-04") and "after the last summarized one" in note
    full_build(cfg, out, "2024-03", "2024-04")
    assert resolve_range("incremental", None, None)[0] is None


def test_backfill_filter_only_with_backfill(data_root, inbox):
    write_batch(inbox, "0001.parquet", BASE)
    with pytest.raises(ValueError, match="--backfill-filter applies to --mode backfill only"):
        resolve_range("initial", None, None, record_filter="cons_acct_key = 1")
    with pytest.raises(ValueError, match="needs --start-month"):
        resolve_range("backfill", None, None)
    # no --start-month: the first month with a matching record, for history_length months
    assert resolve_range("backfill", None, None, record_filter="balance_am >= 4")[:2] == ("2024-02", "2024-04")
    assert resolve_range("backfill", None, None, record_filter="balance_am > 1000")[0] is None


# ---- the CLI end to end (real Dagster runs on the instance at DAGSTER_HOME) ------------------------

@pytest.mark.slow
def test_cli_config_file_and_backfill_filter(data_root, inbox, tmp_path, capsys):
    from assets_pkg.cli import main

    write_batch(inbox, "0001.parquet", BASE)
    config = tmp_path / "summary.json"
    config.write_text(json.dumps({"history_length": 3}))
    assert main(["summary", "run", "--mode", "initial", "--config", str(config)]) == 0
    rows = month_rows(summary_dir(data_root), "2024-04")
    # the run (not only the CLI) used the file: arrays of 3, not the built-in 36
    assert {len(r["balance_am_history"]) for r in rows.values()} == {3}
    capsys.readouterr()

    write_batch(inbox, "0002.parquet", CORRECTIONS[1:])  # account 2's late correction of 2024-02
    for bad in ("1; DROP TABLE x", "read_csv('/etc/passwd') IS NOT NULL", "nope = 1",
                "cons_acct_key IN (SELECT 1)"):
        before = snapshot(data_root)
        assert main(["summary", "run", "--mode", "backfill", "--config", str(config), "--backfill-filter", bad]) == 2
        assert "--backfill-filter" in capsys.readouterr().err
        assert snapshot(data_root) == before
    assert main(["summary", "run", "--mode", "backfill", "--config", str(config),
                 "--backfill-filter", "base_ts > TIMESTAMP '2024-01-01 00:00:00'"]) == 0
    out = capsys.readouterr().out
    # no --start-month: from the first matching month, history_length months; every check passes
    assert "months 2024-02..2024-04 succeeded" in out and "FAIL" not in out, out
    feb = month_rows(summary_dir(data_root), "2024-02")
    assert feb[2]["balance_am"] == 222.0 and feb[1]["balance_am"] == 2.0
    assert len(feb[2]["balance_am_history"]) == 3


def test_config_file_missing_is_a_clear_error(data_root, capsys):
    from assets_pkg.cli import main

    assert main(["summary", "run", "--mode", "initial", "--config", str(data_root / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err

