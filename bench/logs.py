"""Log segment cache benchmark: `python -m bench.logs [--quick]`.

One log_id, 5M events in one UTC day (``--quick``: 500k):
1. a cache of 100 segments built through the real writer (fetch_window over 100 windows
   from an in-memory source);
2. summary of the full day over the 100 segments (DuckDB, one query)       target <= 1 s;
3. cache-hit re-run of the full day (scan, footer checks, plan, summary)   target <= 0.5 s;
4. cold fetch of the full day from the local JSONL source (the streaming reader), in a
   subprocess so its peak RSS is its own, at FLUSH_ROWS=100000            target >= 1M events/s,
                                                                          peak RSS <= 300 MB.
5. the HTTP source (``--http`` runs only this): pages/s of ``HttpLogSource.fetch`` over one
   window from the project's test server (assets_pkg_tests/fake_log_api.py, HTTP/1.1, on
   127.0.0.1, in this process) with the client in a subprocess, against the same server
   closing the connection after every page (one connection per page, as the source did
   before issue 20); ``--http-baseline DIR`` adds a row for the source importable from DIR
   (an older checkout's ``assets_pkg``). Rounds interleaved, median pages/s, ratio ranges.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

DAY = "2025-01-02"
TARGETS = {"summary_s": 1.0, "hit_s": 0.5, "cold_eps": 1_000_000, "cold_rss_mb": 300}


def _events_sql(n: int, start_ms: int) -> str:
    step = 86_400_000 / n
    return (
        f"SELECT CAST({start_ms} + floor(i * {step}) AS BIGINT) AS timestamp, 'e' || i AS event_id, "
        "['DEBUG','INFO','INFO','WARN','ERROR'][i % 5 + 1] AS level, 'request ' || i || ' served' AS message, "
        f"'h' || (i % 7) AS host, CAST((i * 37) % 1000 AS BIGINT) AS latency_ms FROM range({n}) t(i)"
    )


def generate_jsonl(folder: Path, n: int, start_ms: int, files: int = 10) -> int:
    """The local source's input: `files` JSONL files in time order, written by DuckDB."""
    from assets_pkg.duck import connect

    folder.mkdir(parents=True, exist_ok=True)
    con = connect()
    per = n // files
    for f in range(files):
        lo, hi = f * per, (n if f == files - 1 else (f + 1) * per)
        sql = _events_sql(n, start_ms).replace(f"range({n})", f"range({lo}, {hi})")
        con.execute(f"COPY ({sql}) TO '{folder / f'{DAY}-{f:02d}.jsonl'}' (FORMAT JSON)")
    con.close()
    return sum(p.stat().st_size for p in folder.iterdir())


def part_table(n: int, start_ms: int) -> pa.Table:
    from assets_pkg.duck import connect

    con = connect()
    sql = (
        "SELECT timestamp, event_id, level, message, "
        "CAST(to_json(struct_pack(host := host, latency_ms := latency_ms)) AS VARCHAR) AS attributes "
        f"FROM ({_events_sql(n, start_ms)}) ORDER BY timestamp"
    )
    table = con.sql(sql).to_arrow_table()
    con.close()
    return table


class TableSource:
    """An in-memory source over a timestamp-sorted PART_SCHEMA table (builds the 100-segment cache)."""

    name = "table"

    def __init__(self, table: pa.Table):
        self.table = table
        self.stamps = table.column("timestamp").to_numpy()

    def describe(self) -> str:
        return "table"

    def fetch(self, log_id, start_ms, end_ms):
        lo, hi = np.searchsorted(self.stamps, [start_ms, end_ms])
        yield from self.table.slice(lo, hi - lo).to_batches(max_chunksize=100_000)


class NoSource:
    name = "none"

    def describe(self) -> str:
        return "none"

    def fetch(self, log_id, start_ms, end_ms):
        raise AssertionError("a cache hit must not call the source")


COLD_CHILD = """
import json, sys, time
from assets_pkg.logs.fetch import fetch_window
from assets_pkg.logs.planner import day_window
from assets_pkg.logs.sources import LocalLogSource
from assets_pkg.obs import peak_rss_mb
s, e = day_window(sys.argv[2])
t = time.perf_counter()
r = fetch_window("bench", s, e, LocalLogSource(sys.argv[1]), flush_rows=100_000, now_ms=10**13)
secs = time.perf_counter() - t
rss = peak_rss_mb()  # VmHWM: this process's own peak, not the bench parent's
# the ceiling: the same files through the streaming reader alone (after the RSS reading)
import pyarrow as pa
from pathlib import Path
from assets_pkg.reader import StreamingReader
t = time.perf_counter()
n = 0
for p in sorted((Path(sys.argv[1]) / "bench").iterdir()):
    for chunk in StreamingReader(p, file_format="jsonl", chunk_size=100_000, column_types={"timestamp": pa.int64()}):
        n += chunk.rows
reader_secs = time.perf_counter() - t
print(json.dumps({"rows": r.rows_processed, "seconds": secs, "parts": r.parts_written, "reader_rows": n,
                  "reader_seconds": reader_secs, "peak_rss_mb": rss, "summary_rows": r.summary["row_count"]}))
"""


def run(n: int, segments: int, workdir: Path) -> list[tuple]:
    from assets_pkg.logs.fetch import fetch_window
    from assets_pkg.logs.planner import day_window
    from assets_pkg.logs.store import SegmentStore
    from assets_pkg.logs.summary import summarize_window

    os.environ["ASSETS_PKG_DATA_DIR"] = str(workdir / "data")
    start_ms, end_ms = day_window(DAY)

    # 1. 100 segments through the real writer
    t = time.perf_counter()
    table = part_table(n, start_ms)
    store = SegmentStore(workdir / "cache100")
    source = TableSource(table)
    bounds = [start_ms + (end_ms - start_ms) * i // segments for i in range(segments + 1)]
    for lo, hi in zip(bounds, bounds[1:]):
        fetch_window("bench", lo, hi, source, store=store, flush_rows=100_000, now_ms=10**13, summarize=False,
                     write_outputs=False)
    build_s = time.perf_counter() - t
    del table, source

    segs = store.segments("bench")
    assert len(segs) == segments
    # 2. summary of the full day (best of 3: shared machine)
    summary_times = []
    for _ in range(3):
        t = time.perf_counter()
        summary = summarize_window("bench", start_ms, end_ms, store.intersecting("bench", start_ms, end_ms))
        summary_times.append(time.perf_counter() - t)
    assert summary["row_count"] == n, summary["row_count"]
    # 3. cache-hit re-run (library level: fetch_window with a source that must not be called)
    hit_times = []
    for _ in range(3):
        t = time.perf_counter()
        hit = fetch_window("bench", start_ms, end_ms, NoSource(), store=store, now_ms=10**13, write_outputs=False)
        hit_times.append(time.perf_counter() - t)
    assert hit.decision == "hit" and hit.summary["row_count"] == n

    # 4. cold fetch from local JSONL in a subprocess
    inbox = workdir / "inbox"
    jsonl_bytes = generate_jsonl(inbox / "bench", n, start_ms)
    env = dict(os.environ, ASSETS_PKG_DATA_DIR=str(workdir / "cold"), PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    proc = subprocess.run([sys.executable, "-c", COLD_CHILD, str(inbox), DAY], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"cold fetch child failed: {proc.stderr[-2000:]}")
    cold = json.loads(proc.stdout.strip().splitlines()[-1])
    assert cold["rows"] == n and cold["summary_rows"] == n
    eps = cold["rows"] / cold["seconds"]
    return [
        ("build cache: 100 windows through the writer", f"{build_s:.2f} s", "-", "-"),
        (f"summary, full day, {segments} segments, {n:,} events", f"{min(summary_times):.3f} s",
         f"<= {TARGETS['summary_s']} s", min(summary_times) <= TARGETS["summary_s"]),
        ("cache-hit re-run, full day (library level)", f"{min(hit_times):.3f} s", f"<= {TARGETS['hit_s']} s",
         min(hit_times) <= TARGETS["hit_s"]),
        (f"cold fetch from local JSONL ({jsonl_bytes / 2**20:.0f} MiB, {cold['parts']} parts)",
         f"{eps / 1e6:.2f} M events/s ({cold['seconds']:.2f} s)", f">= {TARGETS['cold_eps'] / 1e6:.0f} M/s",
         eps >= TARGETS["cold_eps"]),
        ("  ceiling: the streaming reader alone on the same files",
         f"{cold['reader_rows'] / cold['reader_seconds'] / 1e6:.2f} M events/s ({cold['reader_seconds']:.2f} s)", "-", "-"),
        ("cold fetch peak RSS (FLUSH_ROWS=100000)", f"{cold['peak_rss_mb']:.0f} MB", f"<= {TARGETS['cold_rss_mb']} MB",
         cold["peak_rss_mb"] <= TARGETS["cold_rss_mb"]),
    ]


HTTP_CHILD = """
import json, sys, time
from assets_pkg.logs.sources import HttpLimits, HttpLogSource
url, events, page_limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
src = HttpLogSource(url, page_limit=page_limit, limits=HttpLimits.from_settings())
list(src.fetch("bench", 0, page_limit * 10))  # warm-up: one page, one connection (imports, first batch)
src.requests = 0
t = time.perf_counter()
rows = sum(batch.num_rows for batch in src.fetch("bench", 0, events * 10))
secs = time.perf_counter() - t
print(json.dumps({"rows": rows, "pages": src.requests, "seconds": secs}))
"""


def run_http(events: int, page_limit: int, rounds: int, baseline: str | None) -> str:
    """Pages/s of the HTTP source, keep-alive against one connection per page (see 5. above)."""
    from statistics import median

    from assets_pkg_tests.fake_log_api import FakeLogApi, make_events

    here = str(Path(__file__).resolve().parent.parent)
    variants = [("keep-alive (this source)", here, False),
                ("one connection per page (server: Connection: close)", here, True)]
    if baseline:
        variants.append((f"source at {baseline}, keep-alive server", f"{baseline}{os.pathsep}{here}", False))
    data = make_events("bench", 0, events * 10, 10)
    results: dict[str, list[dict]] = {name: [] for name, *_ in variants}
    servers = {close: FakeLogApi({"bench": data}, max_limit=page_limit, close_connections=close).start()
               for close in (False, True)}
    try:
        for _ in range(rounds):
            for name, path, close in variants:
                api = servers[close]
                api.connections = 0
                env = dict(os.environ, PYTHONPATH=path)
                # cwd: `python -c` puts it first on sys.path, ahead of PYTHONPATH
                proc = subprocess.run([sys.executable, "-c", HTTP_CHILD, api.url, str(events), str(page_limit)],
                                      env=env, capture_output=True, text=True, cwd=path.split(os.pathsep)[0])
                if proc.returncode != 0:
                    raise RuntimeError(f"http child ({name}) failed: {proc.stderr[-2000:]}")
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                assert r["rows"] == events, r
                r["connections"] = api.connections - 1  # the warm-up page's
                results[name].append(r)
    finally:
        for api in servers.values():
            api.stop()
    base = results[variants[1][0]]
    out = [f"HTTP log source, one window of {events:,} events in pages of {page_limit} "
           f"({events // page_limit} pages), 127.0.0.1, {rounds} rounds", "",
           "| client | pages/s (median) | x one connection per page (range) | connections per window |",
           "|---|---:|---:|---:|"]
    for name, *_ in variants:
        runs = results[name]
        rates = [r["pages"] / r["seconds"] for r in runs]
        ratios = [a / (b["pages"] / b["seconds"]) for a, b in zip(rates, base)]
        out.append(f"| {name} | {median(rates):,.0f} | {median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) | "
                   f"{max(r['connections'] for r in runs)} |")
    return "\n".join(out)


def render(rows, n) -> str:
    out = [f"Log segment cache, {n:,} events, one log_id, one day", "",
           "| measure | result | target | met |", "|---|---|---|---|"]
    for name, value, target, ok in rows:
        met = "-" if ok == "-" else ("yes" if ok else "NO")
        out.append(f"| {name} | {value} | {target} | {met} |")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.logs")
    parser.add_argument("--quick", action="store_true", help="500k events instead of 5M")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--http", action="store_true", help="only the HTTP source's pages/s (section 5)")
    parser.add_argument("--http-baseline", metavar="DIR", default=None,
                        help="also measure the HTTP source of the assets_pkg under DIR (an older checkout)")
    parser.add_argument("--http-rounds", type=int, default=5)
    parser.add_argument("--http-page-limit", type=int, default=100, help="events per page (smaller: request costs show)")
    args = parser.parse_args(argv)
    pages = 20 if args.quick else 200
    http_table = run_http(pages * args.http_page_limit, args.http_page_limit, args.http_rounds, args.http_baseline)
    if args.http:
        print(http_table, flush=True)
        return 0
    n = args.events or (500_000 if args.quick else 5_000_000)
    workdir = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    try:
        rows = run(n, 100, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(render(rows, n), flush=True)
    print("\n" + http_table, flush=True)
    return 0 if all(ok in ("-", True) for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
