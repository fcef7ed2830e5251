"""Time-series demo: three sensor datasets over fixed days, and the chain run over them.

- ``power``   1 s rate, CSV (through the streaming reader), naive timestamps in UTC
- ``meters``  1 min rate, Parquet, key column ``meter_id`` (3 meters), timestamps offset by
  +10 s (inside the 30 s tolerance: the merge aligns them to the minute)
- ``weather`` 15 min rate, CSV.gz, tz-aware timestamps (+01:00), forward filled to 1 min
Target resolution 1 min. ``scale="test"``: 2 days, one meter-hour of rows per dataset
kept small; ``scale="demo"``: 3 full days.
"""

import datetime as dt
import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from assets_pkg.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from assets_pkg.storage import as_path

INBOX = "timeseries"
FIRST_DAY = dt.date(2024, 1, 1)
DAYS = {"demo": 3, "test": 2}

CATALOG = """\
# Time-series catalog (assets_pkg.timeseries.catalog documents every field).
target_resolution: 1min
tolerance: 30s
join: outer
coverage_threshold: {coverage}
max_reject_share: 0.05
export:
  formats: [parquet, csv]
  csv_compression: gzip
datasets:
  power:
    file: power.csv
    time_column: timestamp
    timezone: UTC
    value_columns: [kw, volts]
    resolution: 1s
    aggregation: {{kw: mean, volts: max}}
  meters:
    file: meters.parquet
    time_column: time
    key_columns: [meter_id]
    value_columns: [reading]
    resolution: 1min
    aggregation: last
  weather:
    file: weather.csv.gz
    time_column: observed_at
    timezone: Europe/Berlin
    value_columns: [temp_c, wind]
    resolution: 15min
    aggregation: mean
    upsampling: {{method: ffill, limit: 15}}
"""


def day_keys(scale: str = "demo") -> list[str]:
    return [(FIRST_DAY + dt.timedelta(days=i)).isoformat() for i in range(DAYS.get(scale, 3))]


def generate(inbox_dir: Path, scale: str = "demo") -> None:
    """Write the three datasets and ``datasets.yaml`` (deterministic)."""
    inbox_dir = as_path(inbox_dir)
    rng = np.random.default_rng(6)
    n_days = DAYS.get(scale, 3)
    start = np.datetime64(FIRST_DAY.isoformat(), "s")
    # test scale keeps whole days (coverage is about full days) but a coarser power feed
    power_step = 1 if scale == "demo" else 20
    secs = np.arange(0, n_days * 86_400, power_step)
    ts = start + secs.astype("timedelta64[s]")
    phase = 2 * np.pi * (secs % 86_400) / 86_400
    kw = np.round(50 + 20 * np.sin(phase) + rng.normal(0, 2, secs.size), 3)
    volts = np.round(230 + rng.normal(0, 1.5, secs.size), 2)
    _write_csv(
        inbox_dir / "power.csv",
        ["timestamp", "kw", "volts"],
        [np.datetime_as_string(ts, unit="s"), kw.astype(str), volts.astype(str)],
    )
    minutes = np.arange(0, n_days * 1440)
    meter_ids = ["m1", "m2", "m3"]
    rows_t, rows_id, rows_v = [], [], []
    for i, meter in enumerate(meter_ids):
        base = 1000.0 * (i + 1)
        rows_t.append(start + (minutes * 60 + 10).astype("timedelta64[s]"))
        rows_id.append(np.full(minutes.size, meter))
        rows_v.append(np.round(base + np.cumsum(rng.uniform(0, 0.5, minutes.size)), 3))
    with atomic_path(inbox_dir / "meters.parquet") as tmp:
        pq.write_table(
            pa.table(
                {
                    "time": pa.array(np.concatenate(rows_t).astype("datetime64[us]")),
                    "meter_id": pa.array(np.concatenate(rows_id)),
                    "reading": pa.array(np.concatenate(rows_v)),
                }
            ),
            tmp,
        )
    quarters = np.arange(0, n_days * 96)
    wt = start + (quarters * 900).astype("timedelta64[s]") + np.timedelta64(3600, "s")  # local time (+01:00)
    temp = np.round(5 + 4 * np.sin(2 * np.pi * quarters / 96) + rng.normal(0, 0.3, quarters.size), 2)
    wind = np.round(np.abs(rng.normal(4, 1.5, quarters.size)), 2)
    stamps = np.char.add(np.datetime_as_string(wt, unit="s").astype(str), "+01:00")
    _write_csv(inbox_dir / "weather.csv.gz", ["observed_at", "temp_c", "wind"], [stamps, temp.astype(str), wind.astype(str)])
    coverage = "0.9"
    atomic_write_text(inbox_dir / "datasets.yaml", CATALOG.format(coverage=coverage))


def _write_csv(path: Path, header: list[str], columns: list) -> None:
    lines = [",".join(header)]
    lines += [",".join(row) for row in zip(*[np.asarray(c).astype(str) for c in columns])]
    data = ("\n".join(lines) + "\n").encode()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=1, mtime=0)
    atomic_write_bytes(path, data)


def run(ctx) -> None:
    """Materialize resampled -> merged -> export -> analysis over every day with data (one
    run over the day range) and report rows, coverage and checks."""
    import json

    from assets_pkg.duck import connect
    from assets_pkg.storage.objects import file_exists
    from assets_pkg.timeseries.catalog import catalog_path, load_catalog
    from assets_pkg.timeseries.export import target_paths
    from assets_pkg.timeseries.assets import DAILY
    from assets_pkg.timeseries.load import data_days
    from assets_pkg.timeseries.sensors import SENSOR_NAME

    catalog = load_catalog(catalog_path())

    valid = set(DAILY.get_partition_keys())
    days = [d for d in data_days(catalog) if d in valid]
    if not days:
        ctx.report.line("no time-series data in the inbox")
        return
    first, last = days[0], days[-1]
    ctx.report.line(f"days {first} .. {last}: {len(days)} partitions")
    # the file sensor asks for one run over the days of the new or changed files (all of
    # them the first time, none when nothing changed)
    results = ctx.evaluate_sensor(SENSOR_NAME)
    ctx.report.line(f"sensor {SENSOR_NAME} launched {len(results)} run(s)")
    if any(not result.success for result in results):
        raise RuntimeError("time-series run failed")
    # each day's materialization carries that day's own numbers
    totals: dict = {}
    for event in (e for result in results for e in result.get_asset_materialization_events()):
        mat = event.event_specific_data.materialization
        if mat.asset_key.to_user_string() == "timeseries/resampled":
            for key in ("rows", "rejects", "duplicates_aggregated"):
                if key in mat.metadata:
                    totals[key] = totals.get(key, 0) + mat.metadata[key].value
    if totals:
        ctx.report.line(
            f"resampled: {totals.get('rows', 0)} rows; rejects {totals.get('rejects', 0)}, "
            f"duplicates aggregated {totals.get('duplicates_aggregated', 0)}"
        )
    from assets_pkg.timeseries import analysis as ana

    out_dir = ctx.settings.exports / "timeseries"
    merged_dir = ctx.settings.warehouse / "timeseries" / "merged"
    con = connect()
    try:
        for day in days:
            files = target_paths(out_dir, day, catalog.export_formats, catalog.csv_compression)
            names = ", ".join(p.name for p in files.values() if file_exists(p))
            analysis_path = out_dir / f"{day}.analysis.json"
            summary = json.loads(analysis_path.read_text()) if file_exists(analysis_path) else {}
            cover = ana.coverage(con, [merged_dir / f"{day}.parquet"], catalog)
            cov = ", ".join(f"{d} {s:.1%}" for d, s in cover.items())
            ctx.report.line(f"{day}: {summary.get('rows', 0)} merged rows -> {names or 'no files'}; coverage: {cov}")
    finally:
        con.close()

