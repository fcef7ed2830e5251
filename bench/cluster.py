"""The cluster profile's overhead: the same work in process (embedded profile) and through
two Celery workers on a Postgres instance, interleaved rounds on the same inputs.

    python -m bench.cluster                         # every mode below (make bench)
    python -m bench.cluster --work demo [--domains timeseries ...] [--rounds 2]
    python -m bench.cluster --work splits summary   # splits 10M rows / 20 parquet shards; summary 1M accounts
    python -m bench.cluster --work summary --accounts 1000000 2000000   # summary steps when the accounts double
    python -m bench.cluster --quick                 # test-scale demo; 400k rows, 20k accounts; one round

On one 2-core machine no speed-up is possible: the tables show what the cluster's pieces
(task round trips, a process per step, Postgres event log, the summary's fan-out graph)
cost against one process.

demo: ``assets-pkg demo --only DOMAINS`` on both profiles; both timings include starting it
(imports, instance open). Default 2 rounds.

splits, summary (issue 18): the inputs of bench/splits.py (``--rows`` in 20 parquet shards)
and bench/summary.py (``--accounts``, months 2021-01..2025-12), generated once into bench/out
by their generators and linked into the inbox of two local data roots (temp folders), so the
ratio isolates the executor and the instance. Each measurement is one run of the code
location's named job (``splits_job`` over every shard; ``summary_job`` over every month)
launched by ``assets_pkg.location.execute_job`` in a child process: embedded = in_process
executor, SQLite instance under its root; cluster = Postgres instance (deploy/dagster.yaml),
Redis broker, two ``assets-pkg worker`` processes (``ASSETS_PKG_EXECUTOR=celery``: the summary
is its fan-out graph, buckets chosen by ``SUMMARY_STEP_MEMORY_MB``, default 1024). Default
1 round. Figures:
- seconds: wall time of the run (the child's imports and instance open excluded); CPU s:
  the run's process, plus the two workers' pool processes for the cluster;
- embedded peak RSS: the run's process (VmHWM); cluster: the run's (orchestrating) process
  and each worker's pool process, the one that executes its steps (VmHWM, reset before the
  run);
- per cluster step: the pool process's RSS sampled every 100 ms while the step ran, and the
  ``peak_rss_mb`` the step reports (bucket steps' output metadata, the combine's log event,
  read from the instance's event log). A pool process runs step after step, so what a step
  reports is its process's VmHWM since the run began, not the step's own.
Targets (issue 18): cluster at most 1.5x embedded; a summary step's peak RSS at most 1 GB at
1M accounts, and unchanged when the accounts double.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKS = ("demo", "splits", "summary")
CHILD_TIMEOUT_S = 6 * 3600
STEP_TARGET_MB = 1024
RATIO_TARGET = 1.5


def _clear_outputs(root: Path) -> None:
    for sub in ("warehouse", "exports", "cache"):
        shutil.rmtree(root / sub, ignore_errors=True)


# -- demo domains ----------------------------------------------------------------------------
def demo_overhead(args, pg, rd, base: Path) -> int:
    scale, rounds = ("test", 1) if args.quick else ("demo", args.rounds or 2)

    from assets_pkg.demo.splits import demo_env
    from assets_pkg_tests.services.cluster import start_cluster

    demo = [sys.executable, "-m", "assets_pkg.cli", "demo", "--scale", scale, "--only", *args.domains]
    times: dict[str, list[float]] = {"embedded": [], "celery": []}
    with start_cluster(base / "cluster", pg, rd, extra_env=demo_env()) as cluster:
        made = cluster.run([sys.executable, "-m", "assets_pkg.cli", "generate", "--scale", scale, *args.domains])
        if made.returncode:
            print(made.stderr[-3000:])
            return 1
        embedded = base / "embedded"
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
    print("| domains | scale | embedded s (median) | 2 Celery workers s (median) | ratio (range) |")
    print("|---|---|---:|---:|---|")
    print(f"| {' '.join(args.domains)} | {scale} | {statistics.median(times['embedded']):.1f} | "
          f"{statistics.median(times['celery']):.1f} | {statistics.median(ratios):.2f}x "
          f"({min(ratios):.2f}-{max(ratios):.2f}) |")
    return 0


# -- splits and summary: the child (one run of a named job) ----------------------------------
def _child(work: str) -> dict:
    """One run of ``work``'s named job on the instance and data root the environment names."""
    from assets_pkg.dagster_layer import with_console_level
    from assets_pkg.definitions import defs
    from assets_pkg.instance import open_instance
    from assets_pkg.location import execute_job
    from assets_pkg.obs import cpu_seconds, peak_rss_mb
    from assets_pkg.run_tags import RANGE_END_TAG, RANGE_START_TAG
    from assets_pkg.settings import executor_kind, get_settings

    settings = get_settings()
    with open_instance(settings) as instance:
        if work == "splits":
            from assets_pkg.splits.assets import PARTITIONS_NAME, inbox_dir
            from assets_pkg.splits.discovery import discover

            keys = [s.key for s in discover(inbox_dir()).shards]
            known = set(instance.get_dynamic_partitions(PARTITIONS_NAME))
            instance.add_dynamic_partitions(PARTITIONS_NAME, [k for k in keys if k not in known])
            job, first, last = "splits_job", keys[0], keys[-1]
        else:
            from bench.summary import FIRST, LAST

            job, first, last = "summary_job", FIRST, LAST
        started, cpu0 = time.perf_counter(), cpu_seconds()
        result = execute_job(defs, instance, job, tags={RANGE_START_TAG: first, RANGE_END_TAG: last},
                             run_config=with_console_level(None, "WARNING"), raise_on_error=False)
        out = {"executor": executor_kind(), "success": result.success,
               "seconds": round(time.perf_counter() - started, 2), "cpu_seconds": round(cpu_seconds() - cpu0, 2),
               "peak_rss_mb": peak_rss_mb(), "run_id": result.run_id, **_run_events(instance, result.run_id)}
    out["rows"] = _rows_written(work, settings) if result.success else 0
    return out


def _rows_written(work: str, settings) -> int:
    if work == "splits":
        from assets_pkg.splits.pipeline import manifest_file, read_json

        return read_json(manifest_file(settings.warehouse))["rows"]["rows_in"]
    import pyarrow.parquet as pq

    from assets_pkg.summary.plan import existing_month_files

    return sum(pq.ParquetFile(p).metadata.num_rows for p in existing_month_files())


def _reported_peak(entry) -> float | None:
    """The ``peak_rss_mb`` an event carries: output or materialization metadata, or a
    structured log line (``assets_pkg.obs.log_event``)."""
    import dagster as dg

    event = entry.dagster_event
    if event is None:
        text = entry.user_message or ""
        if text.startswith("{") and "peak_rss_mb" in text:
            try:
                return float(json.loads(text)["peak_rss_mb"])
            except (ValueError, KeyError, TypeError):
                return None
        return None
    if event.event_type == dg.DagsterEventType.STEP_OUTPUT:
        metadata = event.step_output_data.metadata
    elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
        metadata = event.event_specific_data.materialization.metadata
    else:
        return None
    value = (metadata or {}).get("peak_rss_mb")
    return None if value is None else float(getattr(value, "value", value))


_MARKERS = {"celery_queue_wait": "queue", "resources": "resources"}


def _run_events(instance, run_id: str) -> dict:
    """Per step: pid, start and end (event timestamps), the peak RSS it reported; the
    ERROR checks that failed."""
    import dagster as dg

    steps: dict[str, dict] = {}
    failed_checks = []
    run_times = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        step = steps.setdefault(entry.step_key, {}) if entry.step_key else None
        if event is not None and event.event_type in (dg.DagsterEventType.RUN_START, dg.DagsterEventType.RUN_SUCCESS,
                                                      dg.DagsterEventType.RUN_FAILURE):
            run_times["run_start" if event.event_type == dg.DagsterEventType.RUN_START else "run_end"] = entry.timestamp
        if event is not None and step is not None:
            if event.event_type == dg.DagsterEventType.STEP_START:
                step.update(pid=event.pid, start=entry.timestamp)
            elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
                step.update(end=entry.timestamp, status=event.event_type.value)
            elif event.event_type == dg.DagsterEventType.ENGINE_EVENT:
                data = event.engine_event_data
                # the markers: submitted by the orchestrating loop / picked up by a worker
                # (dagster-celery's "celery_queue_wait"), resources initialized (Dagster's own)
                for marker, field in ((data.marker_start, "begin"), (data.marker_end, "end")):
                    if marker in _MARKERS:
                        step.setdefault(f"{_MARKERS[marker]}_{field}", entry.timestamp)
        if event is not None and event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            ev = event.event_specific_data
            if not ev.passed and ev.severity == dg.AssetCheckSeverity.ERROR:
                failed_checks.append(ev.check_name)
        reported = _reported_peak(entry)
        if reported is not None and step is not None:
            step["reported_peak_rss_mb"] = max(reported, step.get("reported_peak_rss_mb", 0))
    return {"steps": {k: v for k, v in steps.items() if "start" in v}, "failed_error_checks": failed_checks,
            **run_times}


# -- splits and summary: the parent ----------------------------------------------------------
def _proc_status_mb(pid: int, field: str) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


class PoolMemory:
    """The cluster's Celery pool processes (the ones executing steps) while a run goes:
    VmHWM reset on entry and read on exit, RSS sampled every ``every`` seconds, CPU seconds
    used in between."""

    def __init__(self, cluster, every: float = 0.1):
        self.cluster, self.every = cluster, every
        self.samples: dict[int, list[tuple[float, float]]] = {}
        self.workers: dict[int, str] = {}
        self.cpu_seconds = 0.0
        self.peak_mb: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def pools(self) -> dict:
        import psutil

        found = {}
        for worker in self.cluster.workers:
            try:
                for child in psutil.Process(worker.process.pid).children(recursive=True):
                    found[child.pid] = (worker.name, child)
            except psutil.Error:
                pass
        return found

    def _cpu(self, pools) -> float:
        import psutil

        total = 0.0
        for _, proc in pools.values():
            try:
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        pools, refreshed = self._pools, time.monotonic()
        while not self._stop.wait(self.every):
            if time.monotonic() - refreshed > 1:  # a pool process that died is replaced by Celery
                pools, refreshed = self.pools(), time.monotonic()
                self.workers.update({pid: name for pid, (name, _) in pools.items()})
                self._cpu_seen.update({pid: self._cpu({pid: p}) for pid, p in pools.items()})
            now = time.time()
            for pid in pools:
                rss = _proc_status_mb(pid, "VmRSS")
                if rss is not None:
                    self.samples.setdefault(pid, []).append((now, rss))

    def __enter__(self) -> "PoolMemory":
        self._pools = self.pools()
        self.workers = {pid: name for pid, (name, _) in self._pools.items()}
        for pid in self._pools:
            try:  # "5": reset the peak resident set (VmHWM) to the current RSS
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            except OSError:
                pass
        self._cpu_start = {pid: self._cpu({pid: p}) for pid, p in self._pools.items()}
        self._cpu_seen = dict(self._cpu_start)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        pools = self.pools()
        self._cpu_seen.update({pid: self._cpu({pid: p}) for pid, p in pools.items()})
        self.cpu_seconds = round(sum(v - self._cpu_start.get(pid, 0.0) for pid, v in self._cpu_seen.items()), 2)
        for pid, (name, _) in pools.items():
            hwm = _proc_status_mb(pid, "VmHWM")
            if hwm is not None:
                self.peak_mb[name] = max(hwm, self.peak_mb.get(name, 0.0))

    def step_peak(self, pid: int, start: float, end: float) -> float | None:
        seen = [rss for t, rss in self.samples.get(pid, ()) if start <= t <= end]
        return max(seen) if seen else None


def _measure(work: str, profile: str, env: dict | None, cluster) -> dict:
    argv = [sys.executable, "-m", "bench.cluster", "--child", work]
    if profile == "embedded":
        done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True)
        pools = None
    else:
        with PoolMemory(cluster) as pools:
            done = cluster.run(argv, timeout=CHILD_TIMEOUT_S)
    if done.returncode:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-5:]}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    if not out["success"]:
        failed = [k for k, s in out["steps"].items() if s.get("status") == "STEP_FAILURE"]
        out["error"] = f"run {out['run_id']} failed (steps: {', '.join(failed) or 'none; see the run'})"
    if pools is not None:
        out["cpu_seconds"] = round(out["cpu_seconds"] + pools.cpu_seconds, 2)
        out["pool_peak_rss_mb"] = pools.peak_mb
        for step in out["steps"].values():
            step["worker"] = pools.workers.get(step["pid"], "?")
            if "end" in step:
                step["sampled_peak_rss_mb"] = pools.step_peak(step["pid"], step["start"], step["end"])
    return out


def _fresh_inbox(root: Path, domain: str, files: list[Path]) -> None:
    """``root``'s inbox of ``domain`` = links to ``files``, and no outputs."""
    _clear_outputs(root)
    inbox = root / "inbox" / domain
    shutil.rmtree(inbox, ignore_errors=True)
    inbox.mkdir(parents=True)
    for f in files:
        (inbox / f.name).symlink_to(f)


def _inputs(args) -> list[tuple[str, int, str, list[Path]]]:
    """(work, size, inbox domain, input files) per workload, generated where missing."""
    from bench import splits as bench_splits
    from bench import summary as bench_summary

    workloads = []
    if "splits" in args.work:
        rows = 400_000 if args.quick else args.rows
        inbox = bench_splits.generate(rows, "parquet")
        bench_splits.warm_page_cache(inbox)
        workloads.append(("splits", rows, "transactions", sorted(inbox.iterdir())))
    if "summary" in args.work:
        for accounts in [20_000] if args.quick else args.accounts:
            root = bench_summary.OUT / str(accounts)
            info = bench_summary.generate(accounts, root)
            print(f"summary data: {info}", flush=True)
            inbox = root / "inbox" / "accounts"
            bench_splits.warm_page_cache(inbox)
            # the monthly batches only: bench/summary.py's later batch may sit in the inbox
            months = [p for p in sorted(inbox.iterdir()) if re.fullmatch(r"accounts-\d{4}-\d{2}\.parquet", p.name)]
            workloads.append(("summary", accounts, "accounts", months))
    return workloads


def work_overhead(args, pg, rd, base: Path) -> int:
    from assets_pkg.demo.splits import demo_env
    from assets_pkg_tests.services.cluster import start_cluster

    from bench.summary import FIRST

    workloads = _inputs(args)
    rounds = 1 if args.quick else args.rounds or 1
    base.mkdir(parents=True)
    summary_config = base / "summary.json"
    summary_config.write_text(json.dumps({"first_month": FIRST}))
    settings_env = {**demo_env(), "SUMMARY_CONFIG": str(summary_config)}
    results = []
    with start_cluster(base / "cluster-work", pg, rd, extra_env=settings_env) as cluster:
        embedded = base / "embedded-work"
        (embedded / ".dagster").mkdir(parents=True)
        # the cluster's environment, but the embedded profile's instance, executor and root
        env = {k: v for k, v in cluster.env.items() if k not in ("DAGSTER_POSTGRES_URL", "CELERY_BROKER_URL")}
        env.update(ASSETS_PKG_DATA_DIR=str(embedded), DAGSTER_HOME=str(embedded / ".dagster"),
                   ASSETS_PKG_EXECUTOR="in_process")
        for rnd in range(rounds):
            for work, size, domain, files in workloads:
                pair = {}
                for profile in ("embedded", "cluster"):
                    root = embedded if profile == "embedded" else cluster.data_root
                    _fresh_inbox(root, domain, files)
                    pair[profile] = _measure(work, profile, env, cluster)
                    _clear_outputs(root)  # month files of 1M accounts take gigabytes
                    print(json.dumps({"work": work, "size": size, "round": rnd + 1, "profile": profile,
                                      **pair[profile]}), flush=True)
                results.append((work, size, pair))
    print()
    print(table(results))
    print()
    print(steps_table(results))
    print()
    for line in verdicts(results):
        print(line)
    return 1 if any("error" in r for *_, pair in results for r in pair.values()) else 0


# -- report ----------------------------------------------------------------------------------
def _largest_step(run: dict, only: str = "") -> tuple[str, float]:
    """(step, sampled peak RSS MB) of the run's largest step whose key contains ``only``."""
    peaks = [(s.get("sampled_peak_rss_mb") or 0.0, k) for k, s in run.get("steps", {}).items() if only in k]
    peak, key = max(peaks, default=(0.0, "-"))
    return key, peak


def table(results) -> str:
    lines = ["| work | size | rows (embedded / cluster) | embedded s | cluster s | cluster / embedded | "
             "CPU s (embedded / cluster) | embedded peak RSS MB | cluster peak RSS MB: run process, worker pools |",
             "|---|---:|---|---:|---:|---:|---|---:|---|"]
    for work in dict.fromkeys((w, s) for w, s, _ in results):
        pairs = [p for w, s, p in results if (w, s) == work]
        size = f"{work[1]:,} {'rows' if work[0] == 'splits' else 'accounts'}"
        errors = [r["error"] for p in pairs for r in p.values() if "error" in r]
        if errors:
            lines.append(f"| {work[0]} | {size} | failed: {errors[0]} | | | | | | |")
            continue
        emb = [p["embedded"] for p in pairs]
        clu = [p["cluster"] for p in pairs]
        ratios = [c["seconds"] / e["seconds"] for e, c in zip(emb, clu)]
        spread = f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""
        rows = f"{emb[-1]['rows']:,} / {clu[-1]['rows']:,}" + ("" if emb[-1]["rows"] == clu[-1]["rows"] else " DIFFER")
        pools = ", ".join(f"{n} {mb:.0f}" for n, mb in sorted(clu[-1]["pool_peak_rss_mb"].items()))
        lines.append(
            f"| {work[0]} | {size} | {rows} | {statistics.median(e['seconds'] for e in emb):.1f} | "
            f"{statistics.median(c['seconds'] for c in clu):.1f} | {statistics.median(ratios):.2f}x{spread} | "
            f"{statistics.median(e['cpu_seconds'] for e in emb):.1f} / "
            f"{statistics.median(c['cpu_seconds'] for c in clu):.1f} | {max(e['peak_rss_mb'] for e in emb):.0f} | "
            f"{max(c['peak_rss_mb'] for c in clu):.0f}, {pools} |")
    return "\n".join(lines)


def _span(step: dict, a: str, b: str) -> float | None:
    return step[b] - step[a] if a in step and b in step else None


def step_overheads(run: dict) -> dict[str, dict]:
    """Per step of a cluster run, where its time went between "ready" and "done" (seconds,
    from the event log's timestamps): ``queued`` submitted by the orchestrating loop until a
    worker's task began (broker, a free pool process, the instance opened and the plan built
    in it: dagster-celery's engine event comes after those), ``setup`` that event until
    STEP_START (the run's resources), ``body`` STEP_START to STEP_SUCCESS/FAILURE (inputs
    read, the op, outputs written), ``handoff`` its end until the orchestrating loop
    submitted the next step (or the run ended): the task's return and the loop's poll."""
    submits = sorted(s["queue_begin"] for s in run.get("steps", {}).values() if "queue_begin" in s)
    out = {}
    for key, step in run.get("steps", {}).items():
        end = step.get("end")
        later = [t for t in submits if end is not None and t >= end]
        handoff = (later[0] if later else run.get("run_end", end)) - end if end is not None else None
        out[key] = {"queued": _span(step, "queue_begin", "queue_end"), "setup": _span(step, "queue_end", "start"),
                    "body": _span(step, "start", "end"), "handoff": handoff}
    return out


def overhead_summary(run: dict) -> str:
    """One line: the run's wall time (RUN_START to its end) against the sum of its step
    bodies and of each overhead part."""
    parts = step_overheads(run).values()
    total = {name: sum(p[name] or 0.0 for p in parts) for name in ("queued", "setup", "body", "handoff")}
    wall = run["run_end"] - run["run_start"] if "run_end" in run and "run_start" in run else float("nan")
    return (f"{len(run.get('steps', {}))} steps, run {wall:.1f} s; summed over steps: body {total['body']:.1f} s, "
            f"queued {total['queued']:.1f} s, setup {total['setup']:.1f} s, handoff {total['handoff']:.1f} s")


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def steps_table(results) -> str:
    """Every step of each workload's last cluster run."""
    lines = ["Steps of the last cluster run of each workload (RSS sampled every 100 ms in the worker's pool "
             "process; reported: the step's peak_rss_mb, its process's VmHWM since the run began; queued, setup, "
             "body, handoff: bench.cluster.step_overheads)", "",
             "| work | size | step | worker | queued s | setup s | body s | handoff s | "
             "sampled peak RSS MB | reported peak_rss_mb |",
             "|---|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    last = {(w, s): p["cluster"] for w, s, p in results}
    for (work, size), run in last.items():
        overheads = step_overheads(run)
        for key, step in sorted(run.get("steps", {}).items(), key=lambda kv: kv[1]["start"]):
            sampled, reported = step.get("sampled_peak_rss_mb"), step.get("reported_peak_rss_mb")
            o = overheads[key]
            lines.append(f"| {work} | {size:,} | {key} | {step.get('worker', '?')} | "
                         f"{_secs(o['queued'])} | {_secs(o['setup'])} | {_secs(o['body'])} | {_secs(o['handoff'])} | "
                         f"{'-' if sampled is None else f'{sampled:.0f}'} | "
                         f"{'-' if reported is None else f'{reported:.0f}'} |")
    lines += ["", "Per kind of step (same runs): where the cluster's step time goes", "",
              "| work | size | step kind | steps | step seconds (sum) | longest s | largest sampled peak RSS MB |",
              "|---|---:|---|---:|---:|---:|---:|"]
    for (work, size), run in last.items():
        kinds: dict[str, list] = {}
        for key, step in run.get("steps", {}).items():
            if "end" in step:
                kind = key.split("[", 1)[0].rsplit(".", 1)[-1]
                kinds.setdefault(kind, []).append((step["end"] - step["start"], step.get("sampled_peak_rss_mb") or 0.0))
        for kind, found in sorted(kinds.items(), key=lambda kv: -sum(s for s, _ in kv[1])):
            lines.append(f"| {work} | {size:,} | {kind} | {len(found)} | {sum(s for s, _ in found):.1f} | "
                         f"{max(s for s, _ in found):.1f} | {max(r for _, r in found):.0f} |")
    for (work, size), run in last.items():
        if "steps" in run:
            lines.append(f"\n{work} {size:,}: {overhead_summary(run)}")
    return "\n".join(lines)


def verdicts(results) -> list[str]:
    lines = []
    for work in dict.fromkeys((w, s) for w, s, _ in results):
        pairs = [p for w, s, p in results if (w, s) == work and not any("error" in r for r in p.values())]
        if not pairs:
            continue
        ratio = statistics.median(p["cluster"]["seconds"] / p["embedded"]["seconds"] for p in pairs)
        line = (f"{work[0]} {work[1]:,}: cluster {ratio:.2f}x embedded "
                f"({'within' if ratio <= RATIO_TARGET else 'OVER'} the {RATIO_TARGET}x target)")
        if work[0] == "summary":
            for label, only in (("largest bucket step", "summary_bucket_step"), ("largest step", "")):
                key, peak = max((_largest_step(p["cluster"], only) for p in pairs), key=lambda kp: kp[1])
                line += (f"; {label} {peak:.0f} MB sampled, {key.rsplit('.', 1)[-1]} "
                         f"({'within' if peak <= STEP_TARGET_MB else 'OVER'} {STEP_TARGET_MB} MB)")
        failed = sorted({c for p in pairs for r in p.values() for c in r["failed_error_checks"]})
        if failed:
            line += f"; ERROR checks failed: {', '.join(failed)}"
        lines.append(line)
    for label, only in (("bucket step", "summary_bucket_step"), ("step", "")):
        peaks = {}  # summary accounts -> its largest step over the rounds
        for work, size, pair in results:
            if work == "summary" and "error" not in pair["cluster"]:
                peaks[size] = max(peaks.get(size, 0.0), _largest_step(pair["cluster"], only)[1])
        sizes = sorted(peaks)
        for small, big in zip(sizes, sizes[1:]):
            if peaks[small] and peaks[big]:
                lines.append(f"summary largest {label}, {small:,} -> {big:,} accounts: {peaks[small]:.0f} -> "
                             f"{peaks[big]:.0f} MB ({peaks[big] / peaks[small]:.2f}x; target: unchanged)")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="test-scale demo, 400k split rows, 20k summary accounts, one round")
    parser.add_argument("--work", nargs="+", choices=WORKS, default=list(WORKS), help="what to run (default: all)")
    parser.add_argument("--domains", nargs="*", default=["timeseries", "ingest"], help="demo: domains to run")
    parser.add_argument("--rows", type=int, default=10_000_000, help="splits: rows (20 parquet shards)")
    parser.add_argument("--accounts", type=int, nargs="+", default=[1_000_000], help="summary: accounts (each size)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default: 2 for demo, 1 for splits/summary)")
    parser.add_argument("--child", choices=("splits", "summary"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child)))
        return 0

    from assets_pkg_tests.services.postgres import start_postgres
    from assets_pkg_tests.services.redis import start_redis

    code = 0
    with tempfile.TemporaryDirectory(prefix="bench_cluster_") as tmp, start_postgres() as pg, start_redis() as rd:
        if "demo" in args.work:
            code |= demo_overhead(args, pg, rd, Path(tmp) / "demo")
        if "splits" in args.work or "summary" in args.work:
            code |= work_overhead(args, pg, rd, Path(tmp) / "work")
    return code


if __name__ == "__main__":
    sys.exit(main())
