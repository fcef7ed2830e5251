"""Benchmark: account summary initial build and a 1.5M-record incremental batch.

    python -m bench.summary                    # 1M accounts x 36-60 months (~45M account-months)
    python -m bench.summary --accounts 300000  # any size
    python -m bench.summary --quick            # 20k accounts, a sanity run
    python -m bench.summary --only spark --spark-accounts 200000   # the Spark peer at 200k

Data (generated once into bench/out/summary/<accounts>/, reused): one parquet batch file
per month over 2021-01..2025-12 (monthly deliveries), each account 36-60 months with ~5%
random gaps; then a batch of forward records (2026-01 and 2026-02 for the active accounts,
~1.5M at full size), ~2% x accounts backfill corrections (newer base_ts) of months in 2025
and 0.1% x accounts new accounts.

Measurements, each in its own subprocess (peak RSS = that process's VmHWM, ``assets_pkg.obs.peak_rss_mb``):
- library initial: `rebuild_months` over every month, no checks
- library incremental: plan the new batch + rebuild its range, no checks
- dagster initial: one run (account_summary over the whole range + latest_summary), checks in-op
- dagster incremental: sensor tick (plan) + the one run it requests, checks in-op

- duckdb sql initial (peer): the straightforward DuckDB SQL a user would write instead, on
  the same inbox in the same run: winners per (account, month) by QUALIFY row_number(), a
  dense month grid per account (first..last month), a 36-row window building each history
  list (reversed, padded to 36), the rows with a record written with COPY ... PARTITION_BY
  month (plain ``duckdb.connect()`` with every core, its memory limit set to the library's
  4 GB RSS target: DuckDB's default, 80% of RAM, is not for a shared machine). After the timing
  its last month is compared with the library's file, row by row (the peer must compute
  the same thing); ratios are the library's speed over the peer's.

- spark initial (peer): PySpark ``local[2]`` with the library's algorithm (see
  ``_spark_peer``) at ``--spark-accounts`` (env BENCH_SPARK_ACCOUNTS, default 50k: Spark
  takes minutes where the library takes seconds), next to a library row at that size for
  the ratio. Peak RSS and CPU s are the driver Python plus the JVM, over the process tree.
  Without java or pyspark the row says so and why (skipped, never silently). The output is
  compared with the library's: per-month digests of every row and the last month row by row.

CPU s (user + system of the measuring process, imports excluded) is reported next to wall
seconds: on a shared machine it is the steadier number for before/after comparisons.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out" / "summary"
FIRST, LAST = "2021-01", "2025-12"


def generate(accounts: int, root: Path) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from assets_pkg.summary.months import month_index, month_str

    inbox = root / "inbox" / "accounts"
    pending = root / "pending"
    marker = root / "generated.json"
    if marker.exists():
        return json.loads(marker.read_text())
    shutil.rmtree(root, ignore_errors=True)
    inbox.mkdir(parents=True)
    pending.mkdir(parents=True)
    rng = np.random.default_rng(7)
    lo, hi = month_index(FIRST), month_index(LAST)
    span = hi - lo + 1
    keys = np.arange(10_000_000, 10_000_000 + accounts, dtype=np.int64)
    lens = rng.integers(36, 61, accounts)
    starts = np.where(rng.random(accounts) < 0.7, span - lens, (rng.random(accounts) * (span - lens + 1)).astype(int))
    base = np.datetime64("2021-01-01T00:00:00", "us")
    total = 0

    def table(k, month: str, n, ts_days):
        return pa.table(
            {
                "cons_acct_key": pa.array(k, pa.int64()),
                "rpt_as_of_mo": pa.array([month], pa.string()).take(np.zeros(n, dtype=np.int32)),
                "balance_am": pa.array(np.round(rng.normal(2500, 1800, n), 2)),
                "days_past_due": pa.array(rng.choice(np.array([0, 0, 0, 30, 60, 90], dtype=np.int32), n)),
                "base_ts": pa.array(base + (ts_days * 86400 + rng.integers(0, 86400, n)).astype("timedelta64[s]")),
            }
        )

    for t in range(span):
        mask = (starts <= t) & (t < starts + lens) & (rng.random(accounts) > 0.05)
        k = keys[mask]
        n = len(k)
        total += n
        pq.write_table(table(k, month_str(lo + t), n, (t + 1) * 31), inbox / f"accounts-{month_str(lo + t)}.parquet")
    active = keys[starts + lens == span]
    parts = []
    for extra in (1, 2):
        parts.append(table(active, month_str(hi + extra), len(active), (span + 2) * 31))
    n_back = max(accounts // 50, 10)
    back_keys = rng.choice(active, n_back)
    back_months = rng.integers(hi - 11, hi + 1, n_back)
    back = table(back_keys, LAST, n_back, (span + 2) * 31)
    back = back.set_column(1, "rpt_as_of_mo", pa.array([month_str(m) for m in back_months]))
    parts.append(back)
    n_new = max(accounts // 1000, 5)
    parts.append(table(np.arange(90_000_000, 90_000_000 + n_new, dtype=np.int64), month_str(hi + 1), n_new, (span + 2) * 31))
    batch = pa.concat_tables(parts)
    pq.write_table(batch, pending / "accounts-batch-2026-02.parquet")
    info = {"accounts": accounts, "account_months": total, "batch_records": batch.num_rows,
            "forward": 2 * len(active), "backfill": n_back, "new": n_new}
    # a build leaves out batches written less than INBOX_SETTLE_SECONDS ago (still being
    # copied in, for all it knows): measured at once, the first run after generating built
    # 48 of the 60 months
    from assets_pkg.inbox import settle_seconds

    time.sleep(settle_seconds())
    marker.write_text(json.dumps(info))
    return info


# -- measurements (each runs in a child process) ----------------------------------------
def _child(kind: str, root: Path) -> dict:
    os.environ["ASSETS_PKG_DATA_DIR"] = str(root / "data")
    os.environ["DAGSTER_HOME"] = str(root / "data" / ".dagster")
    os.environ["SUMMARY_CONFIG"] = ""
    from assets_pkg.obs import cpu_seconds, peak_rss_mb
    from assets_pkg.summary.config import load_summary_settings

    cfg = load_summary_settings(source_dir=str(root / "inbox" / "accounts"), first_month=FIRST)
    started = time.perf_counter()
    cpu0 = cpu_seconds()
    out: dict = {}
    if kind == "sql_initial":
        out.update(_sql_peer(cfg, root))
    elif kind == "spark_initial":
        with TreeMemory() as tree:
            out.update(_spark_peer(cfg, root, tree))
        out["seconds"] = round(time.perf_counter() - started, 2)
        out["peak_rss_mb"] = tree.peak_mb  # driver Python + the JVM, sampled over the process tree
        return out
    elif kind.startswith("library"):
        from assets_pkg.duck import connect
        from assets_pkg.summary import state
        from assets_pkg.summary.engine import rebuild_months
        from assets_pkg.summary.plan import plan_batches
        from assets_pkg.summary.source import list_batch_files

        lib = root / "library"
        lib.mkdir(exist_ok=True)
        state_file = lib / "_state.json"
        path = lambda m: lib / f"{m}.parquet"  # noqa: E731
        if kind == "library_initial":
            res = rebuild_months(cfg, FIRST, LAST, path, run_checks=False, state_file=state_file)
        else:
            files = list_batch_files(cfg.source_path)
            new, gone = state.pending_files(files, state.load_processed(state_file))
            plan = plan_batches(connect(), cfg, new, files, sorted(lib.glob("*.parquet")), gone)
            out["plan_seconds"] = round(time.perf_counter() - started, 2)
            out["range"] = f"{plan.start}..{plan.end}"
            out["cases"] = f"I={plan.case_new} II={plan.case_forward} III={plan.case_backfill}"
            res = rebuild_months(cfg, plan.start, plan.end, path, run_checks=False, state_file=state_file)
        out.update(rows=res.stats.rows, source_rows=res.stats.source_rows_read,
                   seeded_months=getattr(res.stats, "seeded_months", 0))
    else:
        import dagster as dg

        os.environ["SUMMARY_CONFIG"] = str(root / "summary.json")
        from assets_pkg.instance import open_instance
        from assets_pkg.io.parquet_io_manager import ShardedParquetIOManager
        from assets_pkg.resources.duckdb import DuckDBResource
        from assets_pkg.summary.assets import ACCOUNT_SUMMARY, LATEST_SUMMARY
        from assets_pkg.summary.definitions import defs as summary_defs

        # the summary code location alone, with the shared resources assets_pkg.definitions adds
        defs = dg.Definitions.merge(
            summary_defs,
            dg.Definitions(resources={"io_manager": ShardedParquetIOManager(), "duckdb": DuckDBResource()}),
        )

        job = defs.resolve_implicit_global_asset_job_def()
        with open_instance() as instance:
            if kind == "dagster_initial":
                tags = {"dagster/asset_partition_range_start": FIRST, "dagster/asset_partition_range_end": LAST}
            else:
                sensor = defs.resolve_sensor_def("summary_batch_sensor")
                ctx = dg.build_sensor_context(instance_ref=instance.get_ref(), definitions=defs,
                                              sensor_name="summary_batch_sensor")
                data = sensor.evaluate_tick(ctx)
                out["plan_seconds"] = round(time.perf_counter() - started, 2)
                tags = dict(data.run_requests[0].tags)
                out["range"] = f"{tags['dagster/asset_partition_range_start']}..{tags['dagster/asset_partition_range_end']}"
                out["cases"] = f"I={tags['summary/case_i_new']} II={tags['summary/case_ii_forward']} III={tags['summary/case_iii_backfill']}"
            result = job.execute_in_process(
                instance=instance, tags=tags, asset_selection=[ACCOUNT_SUMMARY, LATEST_SUMMARY],
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            )
            assert result.success
            evals = result.get_asset_check_evaluations()
            out["checks"] = f"{sum(e.passed for e in evals)}/{len(evals)} passed"
            rows = 0
            for ev in result.get_asset_materialization_events():
                mat = ev.event_specific_data.materialization
                if mat.asset_key == ACCOUNT_SUMMARY:
                    rows = mat.metadata["dagster/row_count"].value
                    out["build_seconds"] = mat.metadata["seconds"].value
            out["rows"] = rows
    out["seconds"] = round(time.perf_counter() - started, 2)
    out["cpu_seconds"] = round(cpu_seconds() - cpu0, 2)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


PEER_SQL = """
COPY (
  WITH src AS (
    SELECT {key} AS k, {month} AS mo, CAST(substr({month}, 1, 4) AS INT) * 12 + CAST(substr({month}, 6, 2) AS INT) - 1 AS mi,
           {ts} AS ts, {values}
    FROM read_parquet('{inbox}/*.parquet', filename = true)
    QUALIFY row_number() OVER (PARTITION BY {key}, {month} ORDER BY {ts} DESC, filename DESC) = 1
  ),
  span AS (SELECT k, min(mi) AS lo, max(mi) AS hi FROM src GROUP BY k),
  grid AS (SELECT k, unnest(range(lo, hi + 1)) AS mi FROM span),
  dense AS (
    SELECT g.k, g.mi, s.mo, s.ts, {dense_values}
    FROM grid g LEFT JOIN src s USING (k, mi)
  ),
  hist AS (
    SELECT *, {windows}
    FROM dense
    WINDOW w AS (PARTITION BY k ORDER BY mi ROWS BETWEEN {back} PRECEDING AND CURRENT ROW)
  )
  SELECT k AS {key}, mo AS {month}, ts AS {ts}, {values_out}, {lists}
  FROM hist WHERE mo IS NOT NULL
) TO '{out}' (FORMAT parquet, PARTITION_BY ({month}))
"""


def _sql_peer(cfg, root: Path) -> dict:
    """The DuckDB SQL peer (see the module docstring); returns rows written and the check."""
    import duckdb

    values = cfg.all_value_columns
    out_dir = root / "sql"
    shutil.rmtree(out_dir, ignore_errors=True)
    n = cfg.history_length
    sql = PEER_SQL.format(
        key=cfg.key_column, month=cfg.month_column, ts=cfg.timestamp_column, inbox=cfg.source_path, out=out_dir,
        values=", ".join(values), dense_values=", ".join(f"s.{c}" for c in values), back=n - 1,
        values_out=", ".join(values),
        # list() over the window is oldest first; reversed, [0] is this month; padded with NULL to n
        windows=", ".join(f"list({c}) OVER w AS {c}__w" for c in cfg.history_columns),
        lists=", ".join(f"list_resize(list_reverse({c}__w), {n}) AS {cfg.history_name(c)}" for c in cfg.history_columns),
    )
    con = duckdb.connect(config={"memory_limit": "4GB"})  # spills beyond it, like the library's target
    started = time.perf_counter()
    con.execute(sql)
    seconds = time.perf_counter() - started
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{out_dir}/**/*.parquet')").fetchone()[0]
    # same result as the library? its last month, every column, row by row (outside the timing)
    lib = root / "library" / f"{LAST}.parquet"
    check = "no library file"
    if lib.exists():
        cols = ", ".join([cfg.key_column, cfg.timestamp_column, *values, *map(cfg.history_name, cfg.history_columns)])
        diff = con.execute(
            f"SELECT count(*) FROM ((SELECT {cols} FROM read_parquet('{lib}') EXCEPT ALL "
            f"SELECT {cols} FROM read_parquet('{out_dir}/{cfg.month_column}={LAST}/*.parquet')) UNION ALL "
            f"(SELECT {cols} FROM read_parquet('{out_dir}/{cfg.month_column}={LAST}/*.parquet') EXCEPT ALL "
            f"SELECT {cols} FROM read_parquet('{lib}')))"
        ).fetchone()[0]
        check = f"{LAST} same as library" if diff == 0 else f"{LAST}: {diff} rows differ from the library"
    con.close()
    shutil.rmtree(out_dir, ignore_errors=True)
    return {"rows": rows, "sql_seconds": round(seconds, 2), "checks": check}


class TreeMemory:
    """Peak of the summed RSS of this process and its children (the Spark JVM), sampled
    every 50 ms while it runs; ``cpu_seconds`` is the tree's CPU (taken before the JVM exits)."""

    def __init__(self, every: float = 0.05):
        import threading

        import psutil

        self.proc, self.every, self.peak_mb, self._stop = psutil.Process(), every, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> tuple[float, float]:
        """(RSS MB, CPU s) of the tree now."""
        import psutil

        rss = cpu = 0.0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                rss += p.memory_info().rss
                t = p.cpu_times()
                cpu += t.user + t.system
            except psutil.Error:  # a child that just exited
                pass
        self.peak_mb = max(self.peak_mb, rss / 2**20)
        return rss / 2**20, cpu

    def _run(self):
        while not self._stop.wait(self.every):
            self.sample()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = round(self.peak_mb, 1)




def _spark_peer(cfg, root: Path, tree: TreeMemory) -> dict:
    """The PySpark peer, ``local[2]``: the library's algorithm in Spark SQL functions.

    Winners per (account, month) by row_number() (greatest base_ts, then later file; the
    bench data has no equal timestamps within a file); per account a month -> values map
    (the library's ring: every month of the account, keyed by month index); each winner's
    history arrays are ``[map[m - i] for i in 0..L-1]``, NULL where the month is missing;
    written partitioned by month. Driver memory 4 GB, the library's RSS target. Outside
    the timing, the output is compared with the library's files (:func:`_compare_with_library`)."""
    from pyspark.sql import SparkSession, Window
    from pyspark.sql import functions as F

    key, month, ts = cfg.key_column, cfg.month_column, cfg.timestamp_column
    values, hist, n = list(cfg.all_value_columns), list(cfg.history_columns), cfg.history_length
    out_dir = root / "spark"
    shutil.rmtree(out_dir, ignore_errors=True)
    started = time.perf_counter()
    spark = (
        SparkSession.builder.master("local[2]").appName("summary-peer")
        .config("spark.driver.memory", "4g").config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "8").config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.driver.extraJavaOptions", "-Dlog4j2.level=ERROR")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    startup = time.perf_counter() - started
    src = spark.read.parquet(str(cfg.source_path / "*.parquet")).withColumn("_file", F.input_file_name())
    mi = F.substring(month, 1, 4).cast("int") * 12 + F.substring(month, 6, 2).cast("int") - 1
    win = (
        src.withColumn("_rn", F.row_number().over(Window.partitionBy(key, month).orderBy(F.desc(ts), F.desc("_file"))))
        .where("_rn = 1").select(key, month, mi.alias("_mi"), ts, *values)
    )
    per_account = win.groupBy(key).agg(
        F.map_from_entries(F.collect_list(F.struct("_mi", F.struct(*hist)))).alias("_h"),
        F.collect_list(F.struct(month, "_mi", ts, *values)).alias("_rows"),
    )
    rows = per_account.select(key, "_h", F.explode("_rows").alias("_r"))

    def history(c: str):
        # [i] = the account's value at this month - i (NULL where it has no record); one
        # expression per position (Spark compiles them; a transform() lambda is interpreted)
        at = [F.try_element_at("_h", F.col("_r._mi") - i)[c] for i in range(n)]
        return F.array(*at).alias(cfg.history_name(c))

    lists = [history(c) for c in hist]
    result = rows.select(key, F.col(f"_r.{month}").alias(month), F.col(f"_r.{ts}").alias(ts),
                         *(F.col(f"_r.{c}").alias(c) for c in values), *lists)
    result.write.partitionBy(month).parquet(str(out_dir))
    seconds = time.perf_counter() - started
    _, cpu = tree.sample()
    spark.stop()
    check = _compare_with_library(cfg, root, out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)
    return {"spark_seconds": round(seconds, 2), "startup_seconds": round(startup, 2), "cpu_seconds": round(cpu, 2),
            **check}


def _compare_with_library(cfg, root: Path, out_dir: Path) -> dict:
    """Rows written by a peer (hive-partitioned by month under ``out_dir``) against the
    library's month files: every month by (rows, sum of a hash of every column of every
    row), and the last month row by row (multiset difference both ways)."""
    import duckdb

    con = duckdb.connect(config={"memory_limit": "4GB"})
    m = cfg.month_column
    peer = f"read_parquet('{out_dir}/**/*.parquet', hive_partitioning = true, hive_types = {{'{m}': 'VARCHAR'}})"
    rows = con.execute(f"SELECT count(*) FROM {peer}").fetchone()[0]
    libs = sorted((root / "library").glob("*.parquet"))
    if not libs:
        return {"rows": rows, "checks": "no library file"}
    lib_files = f"read_parquet({[str(p) for p in libs]})"
    cols = ", ".join([cfg.key_column, m, cfg.timestamp_column, *cfg.all_value_columns,
                      *map(cfg.history_name, cfg.history_columns)])
    digest = f"SELECT {m}, count(*) AS n, sum(hash({cols})) AS h FROM {{}} GROUP BY 1"
    months_differ = con.execute(
        f"SELECT count(*) FROM ({digest.format(lib_files)}) a FULL JOIN ({digest.format(peer)}) b USING ({m}) "
        "WHERE a.n IS DISTINCT FROM b.n OR a.h IS DISTINCT FROM b.h"
    ).fetchone()[0]
    last = libs[-1].stem
    lib = f"(SELECT {cols} FROM read_parquet('{libs[-1]}'))"
    other = f"(SELECT {cols} FROM {peer} WHERE {m} = '{last}')"
    rows_differ = con.execute(
        f"SELECT count(*) FROM (({lib} EXCEPT ALL {other}) UNION ALL ({other} EXCEPT ALL {lib}))").fetchone()[0]
    con.close()
    if months_differ == 0 and rows_differ == 0:
        check = f"same as library: {len(libs)} month digests, {last} row by row"
    else:
        check = f"DIFFERS from library: {months_differ} month digests, {rows_differ} rows of {last}"
    return {"rows": rows, "checks": check}


def measure(kind: str, root: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.summary", "--child", kind, "--root", str(root)],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def prepare(accounts: int) -> tuple[Path, dict]:
    """The data for ``accounts`` (generated once), fresh outputs and inbox state."""
    root = OUT / str(accounts)
    t = time.perf_counter()
    info = generate(accounts, root)
    print(f"data: {info} (generated/reused in {time.perf_counter() - t:.0f} s) under {root}", flush=True)
    # fresh outputs and a fresh inbox state every time: the batch starts aside
    for name in ("library", "data"):
        shutil.rmtree(root / name, ignore_errors=True)
    inbox = root / "inbox" / "accounts"
    for f in inbox.glob("accounts-batch-*"):
        os.replace(f, root / "pending" / f.name)
    (root / "data" / ".dagster").mkdir(parents=True)
    (root / "data" / ".dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (root / "summary.json").write_text(json.dumps({"source_dir": str(inbox), "first_month": FIRST}))
    return root, info


def spark_missing() -> str | None:
    """Why the Spark peer cannot run here, or None."""
    import importlib.util

    if importlib.util.find_spec("pyspark") is None:
        return "pyspark not installed (pip install -e '.[bench]')"
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and Path(java_home, "bin", "java").is_file()) and shutil.which("java") is None:
        return "java not found (Debian: apt-get install openjdk-17-jre-headless)"
    return None


def _ratios(rows: list, peer_kind: str, label: str, target: str) -> str | None:
    """The library's speed and memory against a peer's: each peer row against the library
    row measured last before it at the same size (one pair per round)."""
    pairs, last = [], {}
    for kind, r in rows:
        if kind == "library_initial":
            last[r["accounts"]] = r
        elif kind == peer_kind and "skipped" not in r and r["accounts"] in last:
            pairs.append((last[r["accounts"]], r))
    if not pairs:
        return None
    speed = [p["seconds"] / lib["seconds"] for lib, p in pairs]
    rss = [lib["peak_rss_mb"] / p["peak_rss_mb"] for lib, p in pairs]
    return (f"library vs {label} at {pairs[0][0]['accounts']:,} accounts, {len(pairs)} round(s): "
            f"{min(speed):.2f}-{max(speed):.2f}x faster ({target}), "
            f"peak RSS {min(rss):.2f}-{max(rss):.2f}x the peer's (target <= 1)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.summary")
    parser.add_argument("--quick", action="store_true", help="20k accounts")
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--spark-accounts", type=int, default=int(os.environ.get("BENCH_SPARK_ACCOUNTS", 50_000)),
                        help="accounts for the Spark peer and its library row (env BENCH_SPARK_ACCOUNTS; "
                             "default 50000: Spark local[2] takes about 80 CPU s per 1M account-months)")
    kinds = ["library", "dagster", "sql", "spark"]
    parser.add_argument("--only", nargs="*", choices=kinds, default=kinds)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the initial builds this many times, interleaved (ratios per round)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, Path(args.root))))
        return 0
    accounts = 20_000 if args.quick else args.accounts
    spark_accounts = 20_000 if args.quick else args.spark_accounts
    rows = []

    def run(kind: str, root: Path, n: int):
        rows.append((kind, {"accounts": n, **measure(kind, root)}))
        print(f"  {kind} ({n:,} accounts): {rows[-1][1]}", flush=True)

    root, info = prepare(accounts)
    main_kinds = [k for k in ("library", "sql", "dagster") if k in args.only]
    spark_here = "spark" in args.only and spark_accounts == accounts
    skip_spark = spark_missing() if "spark" in args.only else None
    if skip_spark:
        print(f"  spark_initial skipped: {skip_spark}", flush=True)
    for _ in range(max(1, args.rounds)):
        for kind in main_kinds:
            run(f"{kind}_initial", root, accounts)
        if spark_here and not skip_spark:
            if "library" not in main_kinds:
                run("library_initial", root, accounts)
            run("spark_initial", root, accounts)
    infos = {accounts: info}
    if "spark" in args.only and not spark_here and not skip_spark:
        # the Spark peer at its own size, with a library row at that size for the ratio
        sroot, infos[spark_accounts] = prepare(spark_accounts)
        for _ in range(max(1, args.rounds)):
            run("library_initial", sroot, spark_accounts)
            run("spark_initial", sroot, spark_accounts)
    if skip_spark:
        rows.append(("spark_initial", {"accounts": spark_accounts, "skipped": skip_spark}))
    inbox = root / "inbox" / "accounts"
    for f in (root / "pending").glob("*"):
        os.replace(f, inbox / f.name)
    for kind in [k for k in ("library_incremental", "dagster_incremental") if k.split("_")[0] in args.only]:
        run(kind, root, accounts)
    print()
    for n, i in infos.items():
        print(f"accounts {n:,}, account-months {i['account_months']:,}, batch {i['batch_records']:,} records "
              f"(forward {i['forward']:,}, backfill {i['backfill']:,}, new {i['new']:,})")
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print()
    print("| measurement | accounts | months | rows written | seconds | account-months/s | CPU s | peak RSS MB "
          "| plan s | cases | checks |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for kind, r in rows:
        if "skipped" in r:
            print(f"| {kind} | {r['accounts']:,} | | | | | | | | | skipped: {r['skipped']} |")
            continue
        months = r.get("range", f"{FIRST}..{LAST}")
        rate = r["rows"] / r["seconds"] if r["seconds"] else 0
        print(f"| {kind} | {r['accounts']:,} | {months} | {r['rows']:,} | {r['seconds']:.1f} | {rate / 1e6:.2f}M "
              f"| {r.get('cpu_seconds', 0):.1f} | {r['peak_rss_mb']:.0f} | "
              f"{r.get('plan_seconds', '')} | {r.get('cases', '')} | {r.get('checks', 'not run')} |")
    print()
    for line in (_ratios(rows, "sql_initial", "DuckDB SQL peer", "target >= 1.2x"),
                 _ratios(rows, "spark_initial", "Spark local[2] peer", "target >= 3x")):
        if line:
            print(line)
    dag = _ratios(rows, "dagster_initial", "the Dagster run with every ERROR check", "target: dagster <= 1.4x library")
    if dag:
        print(dag.replace("faster", "faster than the run").split(", peak RSS")[0])
    print()
    print("Targets: initial >= 1.5M account-months/s, peak RSS <= 4096 MB, 1.5M-record batch <= 30 s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
