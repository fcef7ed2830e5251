"""The cluster profile's overhead: the same demo domains in process (embedded profile) and
through two Celery workers on a Postgres instance, interleaved rounds on the same inputs.

    python -m bench.cluster [--quick] [--domains timeseries ...] [--rounds 2]

On one 2-core machine no speed-up is possible: the table shows what the cluster's pieces
(task round trips, a process per step, Postgres event log) cost against one process. Both
timings include starting `assets-pkg demo` (imports, instance open).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _clear_outputs(root: Path) -> None:
    for sub in ("warehouse", "exports", "cache"):
        shutil.rmtree(root / sub, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="test-scale inputs, one round")
    parser.add_argument("--domains", nargs="*", default=["timeseries", "ingest"], help="demo domains to run")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    scale, rounds = ("test", 1) if args.quick else ("demo", args.rounds)

    from assets_pkg.demo.splits import demo_env
    from assets_pkg_tests.services.cluster import start_cluster
    from assets_pkg_tests.services.postgres import start_postgres
    from assets_pkg_tests.services.redis import start_redis

    demo = [sys.executable, "-m", "assets_pkg.cli", "demo", "--scale", scale, "--only", *args.domains]
    times: dict[str, list[float]] = {"embedded": [], "celery": []}
    with tempfile.TemporaryDirectory(prefix="bench_cluster_") as tmp, start_postgres() as pg, start_redis() as rd, \
            start_cluster(Path(tmp) / "cluster", pg, rd, extra_env=demo_env()) as cluster:
        made = cluster.run([sys.executable, "-m", "assets_pkg.cli", "generate", "--scale", scale, *args.domains])
        if made.returncode:
            print(made.stderr[-3000:])
            return 1
        embedded = Path(tmp) / "embedded"
        (embedded / ".dagster").mkdir(parents=True)
        shutil.copytree(cluster.data_root / "inbox", embedded / "inbox", copy_function=shutil.copy2)
        env = {**os.environ, **demo_env(), "ASSETS_PKG_DATA_DIR": str(embedded),
               "DAGSTER_HOME": str(embedded / ".dagster"), "ASSETS_PKG_EXECUTOR": "in_process"}
        for rnd in range(rounds):
            for name in ("embedded", "celery"):
                _clear_outputs(embedded if name == "embedded" else cluster.data_root)
                started = time.perf_counter()
                if name == "embedded":
                    done = subprocess.run(demo, env=env, capture_output=True, text=True)
                else:
                    done = cluster.run(demo, timeout=1800)
                if done.returncode:
                    print(f"{name} round {rnd + 1} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
                    return 1
                times[name].append(time.perf_counter() - started)
                print(f"  round {rnd + 1} {name}: {times[name][-1]:.1f} s", flush=True)
    ratios = [c / e for c, e in zip(times["celery"], times["embedded"])]
    print(f"| domains | scale | embedded s (median) | 2 Celery workers s (median) | ratio (range) |")
    print("|---|---|---:|---:|---|")
    print(f"| {' '.join(args.domains)} | {scale} | {statistics.median(times['embedded']):.1f} | "
          f"{statistics.median(times['celery']):.1f} | {statistics.median(ratios):.2f}x "
          f"({min(ratios):.2f}-{max(ratios):.2f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
