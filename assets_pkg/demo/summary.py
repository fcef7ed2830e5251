"""Sample account batches for `summary/*` and the demo: initial build, then a later batch
through the sensor path.

`generate` writes yearly batch files (the first year as CSV, read through the streaming
reader; the others parquet) and keeps a later batch aside in `pending/`: forward records for
the next month, backfill corrections of past months (newer base_ts) and new accounts.
`run` evaluates the batch sensor (every batch is new: one run over every month), drops the
pending batch into the inbox, evaluates the sensor again (one run over the affected range)
and reports the case counts.
"""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from assets_pkg.io import atomic_path
from assets_pkg.storage import as_path, is_remote, objects
from assets_pkg.run_tags import RANGE_END_TAG, RANGE_START_TAG
from assets_pkg.summary.months import month_index, month_str

INBOX = "accounts"
SCALES = {
    # accounts, first month, last month, backfill corrections, new accounts
    "demo": (2_000, "2016-01", "2025-12", 60, 25),
    "test": (30, "2023-01", "2025-12", 5, 3),
}
PENDING = "pending"


def _table(keys, months, balance, dpd, ts) -> pa.Table:
    return pa.table(
        {
            "cons_acct_key": pa.array(keys, pa.int64()),
            "rpt_as_of_mo": pa.array([month_str(m) for m in months], pa.string()),
            "balance_am": pa.array(balance, pa.float64()),
            "days_past_due": pa.array(dpd, pa.int32()),
            "base_ts": pa.array(ts, pa.timestamp("us")),
        }
    )


def _load_ts(month_idx: np.ndarray, rng, extra_days: int = 0) -> np.ndarray:
    """A load timestamp a few days after the month's end."""
    base = np.array([np.datetime64(f"{m // 12:04d}-{m % 12 + 1:02d}-01") for m in month_idx + 1], dtype="datetime64[s]")
    offset = rng.integers(0, 5 * 86400, len(month_idx)) + extra_days * 86400
    return (base + offset.astype("timedelta64[s]")).astype("datetime64[us]")


def _values(n: int, rng):
    balance = np.round(rng.normal(2_500, 1_800, n), 2)  # some negative (credit) balances
    dpd = rng.choice([0, 0, 0, 0, 30, 60, 90], n).astype(float)
    balance_null = rng.random(n) < 0.02
    dpd_null = rng.random(n) < 0.02
    return (
        [None if z else float(b) for b, z in zip(balance, balance_null)],
        [None if z else int(d) for d, z in zip(dpd, dpd_null)],
    )


def generate(inbox_dir: Path, scale: str = "demo") -> None:
    n_acc, first, last, n_backfill, n_new = SCALES[scale]
    rng = np.random.default_rng(20240601)
    lo, hi = month_index(first), month_index(last)
    inbox_dir = as_path(inbox_dir)
    keys = np.arange(100_001, 100_001 + n_acc, dtype=np.int64)
    starts = rng.integers(lo, hi - 5, n_acc)
    lengths = rng.integers(6, hi - lo + 2, n_acc)
    acc_rows, month_rows = [], []
    for key, start, length in zip(keys, starts, lengths):
        months = np.arange(start, min(start + length, hi + 1))
        months = months[rng.random(len(months)) > 0.06]  # random gaps
        acc_rows.append(np.full(len(months), key))
        month_rows.append(months)
    acc = np.concatenate(acc_rows)
    mon = np.concatenate(month_rows)
    balance, dpd = _values(len(acc), rng)
    ts = _load_ts(mon, rng)
    table = _table(acc, mon, balance, dpd, ts)
    years = mon // 12
    for year in np.unique(years):
        part = table.filter(pa.array(years == year))
        if year == years.min():
            with atomic_path(inbox_dir / f"accounts-{year}.csv") as tmp:
                pacsv.write_csv(part, tmp)
        else:
            with atomic_path(inbox_dir / f"accounts-{year}.parquet") as tmp:
                pq.write_table(part, tmp)
    # the later batch: forward (next month for accounts active in the last month),
    # backfill corrections (existing account-months, newer base_ts), new accounts
    active = np.unique(acc[mon == hi])
    fwd_m = np.full(len(active), hi + 1)
    pick = rng.choice(len(acc), n_backfill, replace=False)
    back_acc, back_m = acc[pick], mon[pick]
    new_keys = np.arange(900_001, 900_001 + n_new, dtype=np.int64)
    new_acc = np.repeat(new_keys, 3)
    new_m = np.tile(np.arange(hi - 1, hi + 2), n_new)
    b_acc = np.concatenate([active, back_acc, new_acc])
    b_mon = np.concatenate([fwd_m, back_m, new_m])
    b_bal, b_dpd = _values(len(b_acc), rng)
    b_ts = _load_ts(np.full(len(b_acc), hi + 1), rng, extra_days=3)
    pending = inbox_dir / PENDING
    with atomic_path(pending / f"accounts-{month_str(hi + 1)}-batch.parquet") as tmp:
        pq.write_table(_table(b_acc, b_mon, b_bal, b_dpd, b_ts), tmp)


def run(ctx) -> None:
    from assets_pkg.summary.config import load_summary_settings
    from assets_pkg.summary.engine import source_months
    from assets_pkg.summary.plan import plan_pending
    from assets_pkg.summary.sensors import SENSOR_NAME

    report = ctx.report
    cfg = load_summary_settings()
    inbox = cfg.source_path
    months = source_months(cfg)
    if not months:
        report.line(f"no account records in {inbox}")
        return
    # the batch sensor does the initial build too: every batch is new to it, so it asks
    # for one run over every month; once processed, a second demo asks for nothing
    report.line(f"source months {months[0]}..{months[-1]} ({len(months)} months)")
    for result in ctx.evaluate_sensor(SENSOR_NAME):
        _report_run(report, result, "initial")
    for path in _pending_batches(inbox / PENDING):
        # published whole into the inbox (the sensor never sees a partial batch), then
        # removed from pending/
        with atomic_path(inbox / path.name) as tmp:
            tmp.write_bytes(path.read_bytes())
        path.unlink()
        report.line(f"dropped the later batch {path.name} into {inbox}")
    plan = plan_pending()[0]
    for text in plan.lines():
        report.line(f"plan: {text}")
    results = ctx.evaluate_sensor(SENSOR_NAME)
    if not results:
        report.line("sensor: nothing to do (no new batch files)")
    for res in results:
        _report_run(report, res, "incremental (sensor)")


def _pending_batches(folder) -> list[Path]:
    if is_remote(folder):
        return [folder / name for name in sorted(objects.list_objects(folder)) if "/" not in name]
    return sorted(folder.glob("*")) if folder.is_dir() else []


def _report_run(report, result, label: str) -> None:
    tags = result.dagster_run.tags
    cases = {k.split("/", 1)[1]: v for k, v in tags.items() if k.startswith("summary/case")}
    rng = (tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG))
    status = "succeeded" if result.success else "FAILED"
    report.line(f"{label} run {result.run_id[:8]} {status}: months {rng[0]}..{rng[1]}" + (f", cases {cases}" if cases else ""))
    # each partition carries its own row count; seconds are the run's (run/seconds in a range)
    rows: dict = {}
    seconds: dict = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        name = mat.asset_key.to_user_string()
        value = mat.metadata.get("dagster/row_count")
        rows[name] = rows.get(name, 0) + (getattr(value, "value", value) or 0)
        secs = mat.metadata.get("run/seconds", mat.metadata.get("seconds"))
        seconds[name] = getattr(secs, "value", secs)
    for name in rows:
        report.line(f"  {name}: rows={rows[name]} seconds={seconds[name]}")
