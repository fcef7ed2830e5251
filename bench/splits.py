"""Benchmark: the temporal split, four ways side by side on the same generated shards.

    python -m bench.splits            # 10M rows in 20 shards (parquet and csv), plus 2M of each for flatness,
                                      # and 10M parquet rows in 100 shards (the 2M run's shard size)
    python -m bench.splits --quick    # 400k rows in 20 shards, a sanity run

Variants (each in its own subprocess, so its peak RSS is its own):
  (a) logic    ``assets_pkg.splits.pipeline.run_all``: profile, allocation, split (no Dagster)
  (b) dagster  the splits job in ONE in-process run over all 20 partitions (range tags),
               real sqlite instance, IO manager, in-op checks; consolidation not in the job
      dagster-mem  the same run on an in-memory instance (shows what the sqlite event log costs)
  (c) copy     bare pyarrow read + parquet write of every shard: the practical limit
      copy-2   the same copy two shards at a time (both cores; information, not a ratio base)
  (d) pandas   the original algorithm: every shard read twice with pandas, customers
               shuffled into train/val, rows assigned with ``DataFrame.apply(axis=1)``
               (d-apply) or with vectorized ``isin``/``np.where`` (d-vec)
Ratios are wall time relative to (c) on the same input; CPU s is the child's user + system
time (all threads), a steadier figure than wall time on a loaded, shared machine. Inputs
are reused from bench/out/ and read once before the variants (a warm page cache for all).
Like with like: (a), (b) and (c) all write Parquet with the zstd codec at level 1 (DuckDB's
COPY with COMPRESSION_LEVEL 1 for the splits, pyarrow's ParquetWriter default for the copy);
the inputs hold one row group per shard, so each shard is scanned by one thread in every
variant. (a) and (b) work on two shards at once (Parquet shards, and in pass 2 text shards
staged by pass 1; (a) also profiles text shards two at a time): the CPU columns and copy-2
show what that buys over the one-core copy.
``--rows N --formats parquet csv --variants logic dagster`` runs a subset (the copy always
runs: it is the ratios' base); ``--rounds 3`` runs each variant three times, interleaved,
and reports medians with the range of the per-round ratios. ``--customers N ...`` sets the
customer pool of the generated shards.
``--memory-formula`` runs (a) alone over rows per shard and customers and fits its peak RSS
as base + k x rows per shard + c x known customers (least squares); measured (2 rounds):
209 MB + 165 MB per 1M rows per shard + 305 MB per 1M customers, max residual 9 MB
(README, splits; bench/NOTES.md).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

from assets_pkg.obs import cpu_seconds, peak_rss_mb

OUT = Path(__file__).resolve().parent / "out" / "splits"
SHARDS = 20
SPLIT_DATE = "2024-01-01"


# -- data ------------------------------------------------------------------------------------
def shard_numbers(shards: int) -> list[int]:
    """The demo's numbers (with gaps), continued with every other number past them."""
    from assets_pkg.demo.splits import DEMO_SHARDS

    extra = [DEMO_SHARDS[-1] + 2 * (i + 1) for i in range(max(0, shards - len(DEMO_SHARDS)))]
    return (DEMO_SHARDS + extra)[:shards]


def generate(rows: int, fmt: str, shards: int = SHARDS, customers: int | None = None) -> Path:
    """``shards`` shards of ``rows`` rows in total, numbered with gaps; reused when present.
    Customers: ``customers`` (default one per 50 rows in total, at least 1000), drawn by every shard."""
    from assets_pkg.demo.splits import make_rows, write_shard

    name = f"rows_{rows}_{fmt}" if shards == SHARDS else f"rows_{rows}_{shards}_shards_{fmt}"
    if customers is not None:
        name += f"_{customers}_customers"
    inbox = OUT / name / "inbox" / "transactions"
    done = inbox.parent / ".complete"
    if done.exists():
        return inbox
    shutil.rmtree(inbox, ignore_errors=True)
    per_shard = rows // shards
    for i, number in enumerate(shard_numbers(shards)):
        table = make_rows(per_shard, seed=number, n_customers=customers or max(1000, rows // 50), start_id=i * per_shard)
        write_shard(table, inbox / f"part-{number:05d}.{fmt}")
    done.write_text("ok\n")
    return inbox


def warm_page_cache(inbox: Path) -> None:
    """Read every input once before the variants run, so none of them (the first one in
    particular) pays for reading from disk what the others get from the page cache."""
    for f in sorted(inbox.iterdir()):
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass


# -- variants (run in a child process) -------------------------------------------------------
def _workdir(tag: str) -> Path:
    work = OUT / "work" / tag
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work


def variant_logic(inbox: Path, work: Path) -> int:
    from assets_pkg.demo.splits import SETTINGS
    from assets_pkg.splits.params import make_params
    from assets_pkg.splits.pipeline import run_all

    summary = run_all(inbox, work / "warehouse", None, make_params(**{**SETTINGS, "split_date": SPLIT_DATE}))
    return summary["manifest"]["rows"]["rows_in"]


def variant_dagster(inbox: Path, work: Path, persistent: bool = True) -> int:
    import warnings

    warnings.filterwarnings("ignore")
    import dagster as dg

    from assets_pkg.demo.splits import use_demo_settings

    use_demo_settings()  # DATE_COLUMN, GROUP_ID_COLUMN, SPLIT_DATE are required
    from assets_pkg.io.parquet_io_manager import ShardedParquetIOManager
    from assets_pkg.resources.duckdb import DuckDBResource
    from assets_pkg.splits.definitions import build_defs
    from assets_pkg.splits.discovery import discover
    from assets_pkg.splits.pipeline import manifest_file, read_json

    (work / "inbox").mkdir(parents=True, exist_ok=True)
    (work / "inbox" / "transactions").symlink_to(inbox)
    defs = dg.Definitions.merge(
        dg.Definitions(resources={"io_manager": ShardedParquetIOManager(), "duckdb": DuckDBResource()},
                       executor=dg.in_process_executor),
        build_defs(consolidate=False),
    )
    keys = [s.key for s in discover(inbox).shards]
    (work / ".dagster").mkdir()
    import contextlib

    instance_cm = (dg.instance_for_test(temp_dir=str(work / ".dagster")) if persistent
                   else contextlib.nullcontext(dg.DagsterInstance.ephemeral()))
    with instance_cm as instance:
        instance.add_dynamic_partitions("splits_shards", keys)
        result = defs.resolve_job_def("splits_job").execute_in_process(
            instance=instance,
            tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
        )
        if not result.success:
            raise RuntimeError("dagster run failed")
        failed = [e.check_name for e in result.get_asset_check_evaluations()
                  if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
        if failed:
            raise RuntimeError(f"ERROR checks failed: {failed}")
    return read_json(manifest_file(work / "warehouse"))["rows"]["rows_in"]


def _copy_one(f: Path, work: Path) -> int:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rows = 0
    out = work / (f.name.split(".")[0] + ".parquet")
    if f.suffix == ".parquet":
        source = pq.ParquetFile(f)
        batches, schema = source.iter_batches(batch_size=131_072), source.schema_arrow
    else:
        reader = pacsv.open_csv(f)
        batches, schema = reader, reader.schema
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def variant_copy(inbox: Path, work: Path) -> int:
    return sum(_copy_one(f, work) for f in sorted(inbox.iterdir()))


def variant_copy_two_at_once(inbox: Path, work: Path) -> int:
    """The same copy, two shards at a time: what a copy can do with both cores (the split
    variants also work on two Parquet shards at once)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        return sum(pool.map(lambda f: _copy_one(f, work), sorted(inbox.iterdir())))


def _pandas_read(path: Path):
    import pandas as pd

    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


def variant_pandas(inbox: Path, work: Path, apply: bool) -> int:
    """The original script: pass 1 over all shards, shuffled customer split, pass 2."""
    import numpy as np
    import pandas as pd

    split = pd.Timestamp(SPLIT_DATE)
    files = sorted(inbox.iterdir())
    known: set = set()
    for f in files:  # pass 1: read every shard
        df = _pandas_read(f)
        dates = pd.to_datetime(df["date"])
        known.update(df.loc[dates < split, "customer_id"].unique().tolist())
    customers = sorted(known)
    rng = np.random.RandomState(42)
    rng.shuffle(customers)
    train = set(customers[: int(len(customers) * 0.9)])
    rows, counter = 0, 0
    for f in files:  # pass 2: read every shard again
        df = _pandas_read(f)
        df["date"] = pd.to_datetime(df["date"])
        label_map = {v: i for i, v in enumerate(sorted(df["label"].dropna().unique()))}  # per shard, as the original
        df["label"] = df["label"].map(label_map)
        if apply:
            def assign(row):
                if row["date"] < split:
                    return "train" if row["customer_id"] in train else "val"
                return "drop" if row["customer_id"] in train else "oot"

            df["split"] = df.apply(assign, axis=1)
        else:
            pre = (df["date"] < split).to_numpy()
            in_train = df["customer_id"].isin(train).to_numpy()
            df["split"] = np.where(pre, np.where(in_train, "train", "val"), np.where(in_train, "drop", "oot"))
        for name in ("train", "val", "oot"):
            part = df[df["split"] == name].drop(columns=["split"])
            if len(part):
                (work / name).mkdir(exist_ok=True)
                part.to_parquet(work / name / f"part-{counter:05d}.parquet", index=False)
        counter += 1
        rows += len(df)
    return rows


VARIANTS = {
    "logic": variant_logic,
    "dagster": variant_dagster,
    "dagster-mem": lambda inbox, work: variant_dagster(inbox, work, persistent=False),
    "copy": variant_copy,
    "copy-2": variant_copy_two_at_once,
    "pandas-vec": lambda inbox, work: variant_pandas(inbox, work, apply=False),
    "pandas-apply": lambda inbox, work: variant_pandas(inbox, work, apply=True),
}


def child(variant: str, inbox: str) -> None:
    work = _workdir(f"{variant}-{Path(inbox).parent.parent.name}")
    os.environ["ASSETS_PKG_DATA_DIR"] = str(work)
    # the project's knob for bounded memory (DESIGN 5): DuckDB spills beyond it
    os.environ.setdefault("DUCKDB_MEMORY_LIMIT", "256MB")
    started = time.perf_counter()
    cpu_started = cpu_seconds()
    rows = VARIANTS[variant](Path(inbox), work)
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    cpu = cpu_seconds() - cpu_started
    print(json.dumps({"variant": variant, "rows": rows, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
                      "peak_rss_mb": round(peak)}))
    shutil.rmtree(work, ignore_errors=True)


def measure(variant: str, inbox: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.splits", "--child", variant, str(inbox)],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent,
    )
    if proc.returncode != 0:
        return {"variant": variant, "error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- memory formula --------------------------------------------------------------------------
# Peak RSS of (a) = base + k x rows per shard + c x known customers (README, splits): rows per
# shard varied with the customers fixed, then the customers varied with the rows fixed.
FORMULA_SHARDS = 4
FORMULA_POINTS = [(rps, 20_000) for rps in (50_000, 100_000, 200_000, 400_000)] + \
                 [(200_000, customers) for customers in (5_000, 50_000, 100_000, 200_000)]


def known_customers(inbox: Path) -> int:
    from assets_pkg.duck import connect

    con = connect()
    try:
        return con.execute(f"SELECT count(DISTINCT customer_id) FROM read_parquet('{inbox}/*.parquet')").fetchone()[0]
    finally:
        con.close()


def memory_formula(rounds: int) -> tuple[str, dict]:
    """Peak RSS of the logic variant over FORMULA_POINTS (max of ``rounds``), and the least
    squares fit of base, k and c over those points."""
    import numpy as np

    points = []
    for rows_per_shard, pool in FORMULA_POINTS:
        inbox = generate(rows_per_shard * FORMULA_SHARDS, "parquet", FORMULA_SHARDS, pool)
        warm_page_cache(inbox)
        runs = [measure("logic", inbox) for _ in range(max(1, rounds))]
        failed = [r for r in runs if "error" in r]
        if failed:
            raise RuntimeError(f"memory formula point {rows_per_shard} rows/shard, {pool} customers: {failed[0]}")
        points.append((rows_per_shard, known_customers(inbox), max(r["peak_rss_mb"] for r in runs)))
        print(f"  formula point {points[-1]}", file=sys.stderr, flush=True)
    a = np.array([[1.0, rps, cust] for rps, cust, _ in points])
    y = np.array([peak for *_, peak in points], dtype=float)
    (base, k, c), *_ = np.linalg.lstsq(a, y, rcond=None)
    fitted = a @ np.array([base, k, c])
    lines = [f"Peak RSS of (a) logic, parquet, {FORMULA_SHARDS} shards (2 in flight), max of {rounds} round(s)", "",
             "| rows per shard | known customers | peak RSS MB | fitted MB |", "|---:|---:|---:|---:|"]
    lines += [f"| {rps:,} | {cust:,} | {peak} | {fit:.0f} |" for (rps, cust, peak), fit in zip(points, fitted)]
    lines += ["", f"peak RSS MB ~= {base:.0f} + {k * 1e6:.0f} x rows per shard / 1M + {c * 1e6:.0f} x known customers / 1M "
              f"(max residual {np.max(np.abs(y - fitted)):.0f} MB)"]
    return "\n".join(lines), {"base_mb": base, "k_mb_per_row": k, "c_mb_per_customer": c}


# -- report ----------------------------------------------------------------------------------
def _spread(ratios: list[float]) -> str:
    """The median ratio, and its range when there were several rounds."""
    if not ratios:
        return "-"
    if len(ratios) == 1:
        return f"{ratios[0]:.2f}"
    return f"{median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"


def table(results: list[tuple[str, int, int, int, dict]]) -> str:
    """One row per input (format, rows, shards) and variant. With several rounds: median
    seconds and CPU, the range of the per-round ratios (each round's copy is its base:
    side by side), max RSS."""
    lines = ["| input | rows | shards | variant | seconds | x copy | rows/s | CPU s | CPU x copy | peak RSS MB |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    copies = {(fmt, rows, shards, k): r for fmt, rows, shards, k, r in results
              if r.get("variant") == "copy" and "seconds" in r}
    grouped: dict[tuple, list[tuple[int, dict]]] = {}
    for fmt, rows, shards, k, r in results:
        grouped.setdefault((fmt, rows, shards, r["variant"]), []).append((k, r))
    for (fmt, rows, shards, variant), runs in grouped.items():
        failed = [r for _, r in runs if "error" in r]
        if failed:
            lines.append(f"| {fmt} | {rows:,} | {shards} | {variant} | failed: {failed[0]['error']} | | | | | |")
            continue
        pairs = [(r, copies[(fmt, rows, shards, k)]) for k, r in runs if (fmt, rows, shards, k) in copies]
        ratios = [r["seconds"] / c["seconds"] for r, c in pairs]
        cpu_ratios = [r["cpu_seconds"] / c["cpu_seconds"] for r, c in pairs if c["cpu_seconds"]]
        seconds = median(r["seconds"] for _, r in runs)
        cpu = median(r["cpu_seconds"] for _, r in runs)
        peak = max(r["peak_rss_mb"] for _, r in runs)
        lines.append(f"| {fmt} | {rows:,} | {shards} | {variant} | {seconds:.2f} | {_spread(ratios)} | "
                     f"{runs[0][1]['rows'] / seconds:,.0f} | {cpu:.2f} | {_spread(cpu_ratios)} | {peak} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.splits", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="400k rows, a sanity run")
    parser.add_argument("--rows", type=int, nargs="*", help="total sizes to run (default 10M, plus 2M for flatness)")
    parser.add_argument("--no-apply", action="store_true", help="skip the slow pandas apply variant")
    parser.add_argument("--formats", nargs="*", choices=("parquet", "csv"),
                        help="with --rows: input formats to run (default parquet)")
    parser.add_argument("--variants", nargs="*", choices=list(VARIANTS),
                        help="only these variants (the copy always runs: it is the ratio's base)")
    parser.add_argument("--shards", type=int, nargs="*",
                        help=f"with --rows: shard counts to run (default {SHARDS}); more shards of the same "
                             "size show how memory follows the shard size, not the total")
    parser.add_argument("--customers", type=int, nargs="*",
                        help="with --rows: customer pool sizes to run (default one per 50 rows); with --shards "
                             "this measures the memory formula's k and c (see bench/NOTES.md)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every variant this many times, interleaved (median and ratio range)")
    parser.add_argument("--memory-formula", action="store_true",
                        help="only the memory formula: peak RSS over rows per shard and customers, and its fit")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "INBOX"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    if args.memory_formula:
        print(memory_formula(args.rounds)[0])
        return 0
    if args.quick:
        plan = [("parquet", 400_000, SHARDS, list(VARIANTS), None), ("csv", 400_000, SHARDS, ["logic", "copy"], None)]
    elif args.rows:
        plan = [(fmt, n, shards, list(VARIANTS), customers) for fmt in (args.formats or ["parquet"])
                for n in args.rows for shards in (args.shards or [SHARDS]) for customers in (args.customers or [None])]
    else:
        plan = [
            ("parquet", 2_000_000, SHARDS, ["logic", "dagster", "dagster-mem", "copy"], None),
            ("csv", 2_000_000, SHARDS, ["logic", "dagster", "copy"], None),
            ("parquet", 10_000_000, SHARDS, list(VARIANTS), None),
            ("csv", 10_000_000, SHARDS, ["logic", "dagster", "copy", "copy-2"], None),
            # 10M rows in 100 shards: the 2M run's shard size, five times the shards
            ("parquet", 10_000_000, 100, ["logic", "dagster", "copy"], None),
        ]
    results = []
    for fmt, rows, shards, variants, customers in plan:
        inbox = generate(rows, fmt, shards, customers)
        if customers is not None:
            fmt = f"{fmt}, {customers:,} customers"  # the table's input label
        warm_page_cache(inbox)
        for k in range(max(1, args.rounds)):
            for variant in variants:
                if args.no_apply and variant == "pandas-apply":
                    continue
                if args.variants and variant not in args.variants and variant != "copy":
                    continue
                r = measure(variant, inbox)
                print(f"  {fmt} {rows:,} in {shards} shards, round {k + 1} {variant}: {r}", file=sys.stderr, flush=True)
                results.append((fmt, rows, shards, k, r))
    print(table(results))
    if not args.quick and not args.rows:  # make bench: the memory bound the README states, re-measured
        print("\n" + memory_formula(args.rounds)[0])
    failed = [r for *_, r in results if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
