"""Shared helpers for the summary tests: hand-made batches and a naive reference model."""

from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from assets_pkg.summary.config import SummarySettings
from assets_pkg.summary.engine import rebuild_months
from assets_pkg.summary.months import month_index, month_str

T0 = datetime(2024, 1, 1)

SCHEMA = pa.schema(
    [
        ("cons_acct_key", pa.int64()),
        ("rpt_as_of_mo", pa.string()),
        ("balance_am", pa.float64()),
        ("days_past_due", pa.int32()),
        ("base_ts", pa.timestamp("us")),
    ]
)


def ts(n: int) -> datetime:
    return T0 + timedelta(minutes=int(n))


def write_batch(folder: Path, name: str, records) -> Path:
    """records: (key, month, balance, dpd, ts_minutes) tuples."""
    folder.mkdir(parents=True, exist_ok=True)
    cols = list(zip(*records)) if records else [[], [], [], [], []]
    table = pa.table(
        {
            "cons_acct_key": pa.array(cols[0], pa.int64()),
            "rpt_as_of_mo": pa.array(cols[1], pa.string()),
            "balance_am": pa.array(cols[2], pa.float64()),
            "days_past_due": pa.array(cols[3], pa.int32()),
            "base_ts": pa.array([ts(x) if x is not None else None for x in cols[4]], pa.timestamp("us")),
        },
        schema=SCHEMA,
    )
    path = folder / name
    pq.write_table(table, path)
    return path


def cfg_for(source: Path, **kw) -> SummarySettings:
    kw.setdefault("first_month", "2016-01")
    return SummarySettings(source_dir=str(source), **kw)


def full_build(cfg: SummarySettings, out: Path, start=None, end=None, **kw):
    out.mkdir(parents=True, exist_ok=True)
    return rebuild_months(
        cfg, start or cfg.first_month, end or "2025-12", lambda m: out / f"{m}.parquet",
        update_state=kw.pop("update_state", False), **kw
    )


def read_months(out: Path) -> dict[str, list[dict]]:
    data = {}
    for p in sorted(out.glob("*.parquet")):
        data[p.stem] = pq.read_table(p).to_pylist()
    return data


def reference(batches: list[tuple[str, list]], length: int = 36) -> dict[str, list[dict]]:
    """Naive model: winner per (key, month) by (ts, file name, row); arrays by lookup."""
    win: dict = {}
    for name, records in batches:
        for row, (k, m, bal, dpd, t) in enumerate(records):
            rank = (ts(t), name, row)
            cur = win.get((k, m))
            if cur is None or rank > cur[0]:
                win[(k, m)] = (rank, bal, dpd)
    out: dict[str, list[dict]] = {}
    for (k, m), (rank, bal, dpd) in win.items():
        mi = month_index(m)
        hist_b, hist_d = [], []
        for i in range(length):
            w = win.get((k, month_str(mi - i)))
            hist_b.append(w[1] if w else None)
            hist_d.append(w[2] if w else None)
        out.setdefault(m, []).append(
            {
                "cons_acct_key": k,
                "rpt_as_of_mo": m,
                "base_ts": rank[0],
                "balance_am": bal,
                "days_past_due": dpd,
                "balance_am_history": hist_b,
                "days_past_due_history": hist_d,
            }
        )
    for m in out:
        out[m].sort(key=lambda r: r["cons_acct_key"])
    return dict(sorted(out.items()))
