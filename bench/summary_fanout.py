"""Benchmark: peak memory of one summary fan-out step vs the one-step build.

    python -m bench.summary_fanout                         # 200k and 400k accounts, buckets 4 and 8
    python -m bench.summary_fanout --accounts 100000 --buckets 2 --chunk-months 24 --combine-months 12
    python -m bench.summary_fanout --full                  # also every step + combine, compared with the one-step files
    python -m bench.summary_fanout --accounts 1000000 --buckets 10 --plan-only   # the plan step alone, 1M then 2M

Data: bench/summary.py's generator (one batch per month 2021-01..2025-12, each account 36-60
months with gaps), reused from bench/out/summary/<accounts>/. For each size (the second
doubles the accounts and the buckets) each measurement runs in its own subprocess and
reports that process's peak RSS (VmHWM): the one-step build over every month, the plan,
one bucket step (bucket 0 of the last month chunk, which also reads the history_length-1
months before it when there are several chunks), and the combine step (merge, publish and
check) of the last group of months; with ``--full`` every step, then ``latest_summary``'s
write and check over the month files. The claim under test (DESIGN 8): the
step's peak stays about the same when accounts and buckets double; the one-step build's
grows with the accounts.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.summary import FIRST, LAST, OUT, generate


def _child(kind: str, root: Path, buckets: int, chunk_months: int, combine_months: int) -> dict:
    os.environ["ASSETS_PKG_DATA_DIR"] = str(root / "fanout-data")
    os.environ["SUMMARY_CONFIG"] = ""
    from assets_pkg.obs import cpu_seconds, peak_rss_mb
    from assets_pkg.summary import fanout
    from assets_pkg.summary.config import load_summary_settings

    cfg = load_summary_settings(source_dir=str(root / "inbox" / "accounts"), first_month=FIRST)
    plan_file = root / "fanout-plan.json"
    one, fan = root / "one-step", root / "fanout"
    started, cpu0 = time.perf_counter(), cpu_seconds()
    out: dict = {}
    if kind == "one_step":
        from assets_pkg.summary.engine import rebuild_months

        one.mkdir(exist_ok=True)
        res = rebuild_months(cfg, FIRST, LAST, lambda m: one / f"{m}.parquet", run_checks=False, update_state=False)
        out["rows"] = res.stats.rows
    elif kind == "plan":
        settings = fanout.FanoutSettings(buckets=buckets, chunk_months=chunk_months, combine_months=combine_months)
        plan = fanout.plan_fanout(cfg, FIRST, LAST, "bench", settings)
        plan_file.write_text(plan.to_json())
        out.update(buckets=plan.buckets, chunks=len(plan.chunks), groups=len(plan.groups), accounts_estimate=plan.accounts,
                   auto_buckets_1gb=fanout.choose_buckets(cfg, plan.accounts, fanout.FanoutSettings(step_memory_mb=1024)))
    else:
        plan = fanout.FanoutPlan.from_json(plan_file.read_text())
        if kind.startswith("step"):
            bucket, chunk = (int(x) for x in kind.split(":")[1:])
            lo, hi = plan.chunks[chunk]
            stats = fanout.build_bucket(cfg, plan, bucket, lo, hi)
            out.update(rows=stats.rows, source_rows=stats.source_rows_read, seeded_months=stats.seeded_months)
        elif kind.startswith("combine"):
            lo, hi = plan.groups[int(kind.split(":")[1])]
            fan.mkdir(exist_ok=True)
            done = fanout.combine_group(cfg, plan, lo, hi, lambda m: fan / f"{m}.parquet")
            out["rows"] = sum(done["rows_per_month"].values())
            out["checks_passed"] = all(o["passed"] for o in done["outcomes"])
        elif kind == "finish":
            fanout.finish(cfg, plan, update_state=False)
            out["equal_to_one_step"] = _same_files(one, fan)
        elif kind == "latest":  # the latest_summary asset's work over the month files
            from assets_pkg.duck import connect
            from assets_pkg.summary.latest import latest_reader
            from assets_pkg.summary.month_file import write_month_file
            from assets_pkg.summary.validate import check_one_row_per_account

            months = sorted(fan.glob("*.parquet"))
            con = connect()
            written = write_month_file(latest_reader(con, cfg, months), root / "latest.parquet")
            outcome = check_one_row_per_account(con, cfg, written.path, {p.stem: p for p in months})
            out.update(rows=written.rows, bytes=written.bytes, checks_passed=outcome.passed)
    out["seconds"] = round(time.perf_counter() - started, 2)
    out["cpu_seconds"] = round(cpu_seconds() - cpu0, 2)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def _same_files(a: Path, b: Path) -> bool:
    import pyarrow.parquet as pq

    names = sorted(p.name for p in a.glob("*.parquet"))
    if names != sorted(p.name for p in b.glob("*.parquet")):
        return False
    return all(pq.read_table(a / n).equals(pq.read_table(b / n)) for n in names)


def run_child(kind: str, root: Path, buckets: int, chunk_months: int, combine_months: int) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "bench.summary_fanout", "--child", kind, "--root", str(root),
                           "--buckets", str(buckets), "--chunk-months", str(chunk_months),
                           "--combine-months", str(combine_months)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(accounts: int, buckets: int, chunk_months: int, combine_months: int, full: bool,
            skip_one_step: bool = False, plan_only: bool = False) -> list[dict]:
    root = OUT / str(accounts)
    info = generate(accounts, root)
    for name in ("fanout-data", "fanout", "one-step"):
        shutil.rmtree(root / name, ignore_errors=True)
    rows = []

    def add(what: str, kind: str) -> dict:
        res = run_child(kind, root, buckets, chunk_months, combine_months)
        rows.append({"accounts": accounts, "account_months": info["account_months"], "buckets": buckets,
                     "what": what, **res})
        print(json.dumps(rows[-1]), flush=True)
        return res

    if not skip_one_step:
        add("one-step build", "one_step")
    plan = add("plan", "plan")
    if plan_only:
        return rows
    last = plan["chunks"] - 1
    add(f"bucket step (bucket 0, chunk {last})", f"step:0:{last}")
    if full:
        for chunk in range(plan["chunks"]):
            for bucket in range(plan["buckets"]):
                if (bucket, chunk) != (0, last):
                    add(f"bucket step ({bucket}, {chunk})", f"step:{bucket}:{chunk}")
        for group in range(plan["groups"]):
            add(f"combine group {group}", f"combine:{group}")
        add("finish", "finish")
        add("latest_summary (write + check)", "latest")
    else:
        for chunk in range(plan["chunks"]):  # the last group's months (and the month before)
            for bucket in range(plan["buckets"]):
                if (bucket, chunk) != (0, last):
                    run_child(f"step:{bucket}:{chunk}", root, buckets, chunk_months, combine_months)
        add(f"combine group {plan['groups'] - 1}", f"combine:{plan['groups'] - 1}")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=200_000, help="first size; the second doubles it")
    parser.add_argument("--buckets", type=int, default=4, help="buckets at the first size; doubled with the accounts")
    parser.add_argument("--chunk-months", type=int, default=0, help="0: the default (one chunk with 2+ buckets)")
    parser.add_argument("--combine-months", type=int, default=12)
    parser.add_argument("--full", action="store_true", help="run every step and compare the files")
    parser.add_argument("--single", action="store_true", help="only the first size")
    parser.add_argument("--no-one-step", action="store_true", help="measure the fan-out steps only")
    parser.add_argument("--plan-only", action="store_true",
                        help="measure the plan step alone (no one-step build, no bucket or combine step)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, Path(args.root), args.buckets, args.chunk_months, args.combine_months)))
        return 0
    sizes = [(args.accounts, args.buckets)] + ([] if args.single else [(2 * args.accounts, 2 * args.buckets)])
    rows = []
    for accounts, buckets in sizes:
        rows += measure(accounts, buckets, args.chunk_months, args.combine_months, args.full,
                        args.no_one_step or args.plan_only, args.plan_only)
    print()
    print(f"{'accounts':>9} {'buckets':>7}  {'what':<36} {'seconds':>8} {'cpu s':>7} {'peak RSS MB':>11}")
    for r in rows:
        print(f"{r['accounts']:>9} {r['buckets']:>7}  {r['what']:<36} {r['seconds']:>8} {r['cpu_seconds']:>7} "
              f"{r['peak_rss_mb']:>11}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
