"""Benchmark: the time-series chain on three datasets totalling ~10M rows over 10 days.

    python -m bench.timeseries            # 10 days, ~10.4M input rows (about 2 minutes)
    python -m bench.timeseries --quick    # 2 days, a sanity run
    python -m bench.timeseries --days 5   # any number of days

Datasets (Parquet, under bench/out/timeseries/, reused when present), target 1 s:
``power`` 500 ms unkeyed (downsampled: max / last), ``meters`` 1 s with 10 meters and a
+200 ms offset (passthrough, aligned within the 500 ms tolerance), ``weather`` 1 min
(forward filled to 1 s). Values carry sensor precision (1-3 decimals): CSV cost is mostly
number formatting, and 17-digit random doubles would measure that, not the pipeline. Every measurement runs in its own subprocess over all days, one day (one
partition) at a time, so its peak RSS (VmHWM, ``assets_pkg.obs.peak_rss_mb``) is the peak of a partition run:

- ``resample+merge``: :func:`resample_day` + :func:`merge_day` per day (rows/s of input rows)
- ``export parquet`` / ``export csv.gz`` / ``export csv``: :func:`export_day` of each merged day
- ``duckdb COPY parquet`` / ``duckdb COPY csv.gz``: DuckDB's own COPY of the same merged files
The ratio column compares each export with DuckDB's COPY of the same format (time ratio
for Parquet: ours / DuckDB, target <= 1.2; speed-up for gzip CSV, target >= 6x) .
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from assets_pkg.obs import cpu_seconds, peak_rss_mb

OUT = Path(__file__).resolve().parent / "out" / "timeseries"
FIRST_DAY = "2024-01-01"
METERS = 10

CATALOG = """\
target_resolution: 1s
tolerance: 500ms
join: outer
export:
  formats: [parquet, csv]
  csv_compression: gzip
datasets:
  power:
    file: power.parquet
    time_column: ts
    value_columns: [kw, volts]
    resolution: 500ms
    aggregation: {kw: max, volts: last}
  meters:
    file: meters.parquet
    time_column: ts
    key_columns: [meter_id]
    value_columns: [reading]
    resolution: 1s
    aggregation: last
  weather:
    file: weather.parquet
    time_column: ts
    value_columns: [temp_c]
    resolution: 1min
    upsampling: {method: ffill, limit: 60}
"""


def days_list(n: int) -> list[str]:
    import datetime as dt

    first = dt.date.fromisoformat(FIRST_DAY)
    return [(first + dt.timedelta(days=i)).isoformat() for i in range(n)]


def generate(folder: Path, days: int) -> int:
    """Write the three datasets, one row group per day; return the total input rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    inbox = folder / "inbox"
    marker = inbox / f".complete-v2-{days}"
    if marker.exists():
        return int(marker.read_text())
    inbox.mkdir(parents=True, exist_ok=True)
    for stale in inbox.glob(".complete-*"):
        stale.unlink()
    rng = np.random.default_rng(42)
    start = np.datetime64(FIRST_DAY, "ms")
    total = 0
    writers = {}
    schemas = {
        "power": pa.schema([("ts", pa.timestamp("ms")), ("kw", pa.float64()), ("volts", pa.float64())]),
        "meters": pa.schema([("ts", pa.timestamp("ms")), ("meter_id", pa.string()), ("reading", pa.float64())]),
        "weather": pa.schema([("ts", pa.timestamp("ms")), ("temp_c", pa.float64())]),
    }
    try:
        for name, schema in schemas.items():
            writers[name] = pq.ParquetWriter(inbox / f"{name}.parquet", schema, compression="zstd")
        for d in range(days):
            day0 = start + np.timedelta64(d * 86_400_000, "ms")
            ms = np.arange(0, 86_400_000, 500, dtype="int64")
            t = pa.array(day0 + ms.astype("timedelta64[ms]"))
            writers["power"].write_table(pa.table({"ts": t, "kw": np.round(rng.normal(50, 5, ms.size), 3),
                                                   "volts": np.round(rng.normal(230, 2, ms.size), 1)}, schema=schemas["power"]))
            total += ms.size
            sec = np.arange(0, 86_400_000, 1000, dtype="int64") + 200
            ts = np.tile(day0 + sec.astype("timedelta64[ms]"), METERS)
            ids = np.repeat(np.array([f"m{i:02d}" for i in range(METERS)]), sec.size)
            writers["meters"].write_table(pa.table({"ts": pa.array(ts), "meter_id": pa.array(ids),
                                                    "reading": np.round(rng.uniform(0, 1000, ts.size), 2)}, schema=schemas["meters"]))
            total += ts.size
            mins = np.arange(0, 86_400_000, 60_000, dtype="int64")
            writers["weather"].write_table(pa.table({"ts": pa.array(day0 + mins.astype("timedelta64[ms]")),
                                                     "temp_c": np.round(rng.normal(5, 3, mins.size), 1)}, schema=schemas["weather"]))
            total += mins.size
    finally:
        for w in writers.values():
            w.close()
    (inbox / "datasets.yaml").write_text(CATALOG)
    marker.write_text(str(total))
    return total


# -- measurements (each in its own subprocess) --------------------------------------------------
def measure(name: str, folder: Path, days: int) -> dict:
    os.environ["ASSETS_PKG_DATA_DIR"] = str(folder / "data")
    import pyarrow.parquet as pq

    from assets_pkg.duck import connect
    from assets_pkg.timeseries.catalog import load_catalog
    from assets_pkg.timeseries.export import export_day

    catalog = load_catalog(folder / "inbox" / "datasets.yaml")
    merged_dir = folder / "merged"
    out_dir = folder / "export" / name.replace(" ", "_")
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds, cpu, rows, out_bytes = 0.0, 0.0, 0, 0
    con = connect()
    for day in days_list(days):
        merged_path = merged_dir / f"{day}.parquet"
        if name == "resample+merge":
            from assets_pkg.timeseries.merge import merge_day
            from assets_pkg.timeseries.resample import resample_day

            t0, c0 = time.perf_counter(), cpu_seconds()
            stacked, results = resample_day(con, catalog, day)
            merged, _ = merge_day(con, catalog, stacked, day)
            seconds += time.perf_counter() - t0
            cpu += cpu_seconds() - c0
            rows += sum(r.load.rows_in_window for r in results)
            merged_dir.mkdir(parents=True, exist_ok=True)
            pq.write_table(merged, merged_path, compression="zstd")  # the IO manager's part, not timed
            del stacked, merged
            continue
        n = pq.ParquetFile(merged_path).metadata.num_rows
        t0, c0 = time.perf_counter(), cpu_seconds()
        if name.startswith("export"):
            fmt = name.split()[1]
            formats = ("parquet",) if fmt == "parquet" else ("csv",)
            files = export_day([merged_path], out_dir, day, formats, "gzip" if fmt == "csv.gz" else "none",
                               progress_interval=1e9)
            out_bytes += sum(f.bytes for f in files)
        else:
            fmt = name.split()[-1]
            target = out_dir / f"{day}.{fmt}"
            options = "FORMAT parquet, COMPRESSION zstd" if fmt == "parquet" else "FORMAT csv, HEADER, COMPRESSION gzip"
            # COPY takes no bound parameters; the paths are the benchmark's own folder.
            con.execute(f"COPY (SELECT * FROM read_parquet('{merged_path}')) TO '{target}' ({options})")
            out_bytes += target.stat().st_size
        seconds += time.perf_counter() - t0
        cpu += cpu_seconds() - c0
        rows += n
    con.close()
    import shutil

    shutil.rmtree(out_dir, ignore_errors=True)  # sizes are recorded; the files are not needed
    peak = peak_rss_mb()
    return {"name": name, "rows": rows, "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
            "peak_rss_mb": round(peak, 1), "bytes": out_bytes}


MEASUREMENTS = (
    "resample+merge",
    "export parquet",
    "duckdb COPY parquet",
    "export csv.gz",
    "duckdb COPY csv.gz",
    "export csv",
)


def run_child(name: str, folder: Path, days: int) -> dict:
    cmd = [sys.executable, "-m", "bench.timeseries", "--measure", name, "--folder", str(folder), "--days", str(days)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(results: dict) -> str:
    lines = [
        "| measurement | rows | seconds | rows/s | CPU s | peak RSS MB | output MB | vs DuckDB COPY |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in results.items():
        rate = r["rows"] / r["seconds"] if r["seconds"] else 0
        ratio = ""
        if name == "export parquet" and "duckdb COPY parquet" in results:
            ratio = f"time {r['seconds'] / results['duckdb COPY parquet']['seconds']:.2f}x DuckDB's (target <= 1.2x)"
        elif name == "export csv.gz" and "duckdb COPY csv.gz" in results:
            ratio = f"{results['duckdb COPY csv.gz']['seconds'] / r['seconds']:.1f}x faster (target >= 6x)"
        lines.append(
            f"| {name} | {r['rows']:,} | {r['seconds']:.2f} | {rate / 1e6:.2f}M | {r['cpu_seconds']:.2f} | {r['peak_rss_mb']:.0f} | "
            f"{r['bytes'] / 2**20:.1f} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.timeseries", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 days instead of 10")
    parser.add_argument("--days", type=int, default=None)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    days = args.days or (2 if args.quick else 10)
    folder = Path(args.folder) if args.folder else OUT / f"days_{days}"
    if args.measure:
        print(json.dumps(measure(args.measure, folder, days)))
        return 0
    started = time.perf_counter()
    total = generate(folder, days)
    print(f"time series: {days} days, {total:,} input rows (power 500 ms, meters 1 s x {METERS}, weather 1 min), "
          f"target 1 s; data generated/reused in {time.perf_counter() - started:.1f} s", flush=True)
    results = {}
    for name in MEASUREMENTS:
        results[name] = run_child(name, folder, days)
        print(f"  {name}: {results[name]['seconds']:.2f} s", flush=True)
    print()
    print(table(results))
    ok_gzip = results["duckdb COPY csv.gz"]["seconds"] / results["export csv.gz"]["seconds"] >= 6 and \
        results["export csv.gz"]["rows"] / results["export csv.gz"]["seconds"] >= 2e6
    ok_parquet = results["export parquet"]["seconds"] <= 1.2 * results["duckdb COPY parquet"]["seconds"]
    ok_rss = all(r["peak_rss_mb"] <= 1024 for r in results.values())
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(the machine is shared: wall times grow with it, CPU seconds much less)")
    print(f"\ntargets: gzip CSV >= 2M rows/s and >= 6x DuckDB: {'met' if ok_gzip else 'NOT met'}; "
          f"Parquet within 1.2x DuckDB: {'met' if ok_parquet else 'NOT met'}; "
          f"peak RSS <= 1 GB per partition run: {'met' if ok_rss else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
