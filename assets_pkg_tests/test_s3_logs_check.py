"""The logs domain, the IO manager and `assets-pkg check` on an S3 data root (SeaweedFS):
the same rows as a local root, segments visible only through their commit, the log_id
lease across processes, uncommitted and corrupt objects reported by `assets-pkg check`, a
killed fetch re-run to a clean result, and the CLI's errors for an unusable bucket."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from assets_pkg.demo import logs as demo_logs
from assets_pkg.io.parquet_io_manager import ShardedParquetIOManager
from assets_pkg.logs.assets import log_events, log_summary
from assets_pkg.logs.fetch import fetch_window
from assets_pkg.logs.partitions import partition_key
from assets_pkg.logs.planner import day_window
from assets_pkg.logs.quality import segments_readable, window_outcomes
from assets_pkg.logs.resources import LogSourceResource
from assets_pkg.logs.sources import HttpLogSource
from assets_pkg.logs.store import SegmentStore
from assets_pkg.settings import get_settings
from assets_pkg.storage import as_path, is_remote
from assets_pkg.storage import objects
from assets_pkg_tests.fake_log_api import FakeLogApi, make_events

DAY = "2025-01-02"
D0, D1 = day_window(DAY)
REPO = Path(__file__).resolve().parent.parent


class SlowLogApi(FakeLogApi):
    """The fake log API answering each request after ``delay`` seconds: a fetch takes long
    enough for two processes' fetches to overlap in time."""

    def __init__(self, *args, delay: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.delay = delay

    def _handle(self, handler):
        time.sleep(self.delay)
        super()._handle(handler)


@pytest.fixture
def api(monkeypatch):
    events = make_events("app", D0, D1, 60_000)  # one per minute: 1440
    with FakeLogApi({"app": events}) as server:
        monkeypatch.setenv("LOG_SOURCE", "http")
        monkeypatch.setenv("LOG_API_URL", server.url)
        yield server


def run_cli(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "assets_pkg.cli", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=timeout)


def start_cli(*args, env=None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "assets_pkg.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def fetch_args(start, end, *extra) -> list[str]:
    return ["logs", "fetch", "--log-id", "app", "--start", str(start), "--end", str(end), "--source", "http",
            "--json", *extra]


def cached_rows(store: SegmentStore, log_id: str) -> list[tuple]:
    """Every cached event of ``log_id``, read back through the store's committed parts."""
    from assets_pkg.logs.summary import files_connection, segment_files

    files = segment_files(store.segments(log_id))
    if not files:
        return []
    con = files_connection(files)
    try:
        return con.execute("SELECT * FROM read_parquet(?) ORDER BY timestamp, event_id", [files]).fetchall()
    finally:
        con.close()


def log_prefix(log_id: str = "app") -> str:
    return SegmentStore().log_dir(log_id).path


def objects_under(fs, prefix: str) -> list[str]:
    fs.invalidate_cache()
    try:
        return sorted(k[len(prefix) + 1:] for k in fs.find(prefix, withdirs=False))
    except FileNotFoundError:
        return []


# -- the same outputs as a local root ------------------------------------------------------------


def _materialize_demo_logs(home: Path) -> dict:
    """Generate the demo logs inbox under the current root, materialize every (log, day) of
    it and return what a user sees: the rows, the summaries and the checks."""
    settings = get_settings()
    demo_logs.generate(settings.inbox / demo_logs.INBOX, scale="test")
    out = {"rows": {}, "summaries": {}, "checks": {}}
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        for log_id in demo_logs.DEMO_LOGS:
            for day in demo_logs.DEMO_DAYS[:2]:
                key = partition_key(log_id, day)
                result = dg.materialize([log_events, log_summary], partition_key=key, instance=instance,
                                        resources={"log_source": LogSourceResource(source="local")})
                assert result.success
                out["checks"][key] = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
                start_ms, end_ms = day_window(day)
                summary = settings.exports / "logs" / log_id / f"summary_{start_ms}_{end_ms}.json"
                out["summaries"][key] = json.loads(summary.read_text())
    store = SegmentStore()
    for log_id in demo_logs.DEMO_LOGS:
        out["rows"][log_id] = cached_rows(store, log_id)
    return out


@pytest.mark.slow
def test_logs_assets_on_s3_equal_a_local_root_row_for_row(s3_root, tmp_path, monkeypatch):
    monkeypatch.setenv("ASSETS_PKG_DATA_DIR", str(tmp_path / "local"))
    local = _materialize_demo_logs(tmp_path / "home_local")
    monkeypatch.setenv("ASSETS_PKG_DATA_DIR", s3_root)
    assert is_remote(SegmentStore().root)
    remote = _materialize_demo_logs(tmp_path / "home_s3")

    assert remote["rows"] == local["rows"] and len(local["rows"]["app"]) == 2 * demo_logs.EVENTS_PER_DAY["test"]
    assert remote["summaries"] == local["summaries"]
    assert all(all(checks.values()) and len(checks) == 4 for checks in remote["checks"].values()), remote["checks"]
    assert remote["checks"] == local["checks"]
    # every segment is a committed folder in the bucket, the inbox files are objects there too
    for log_id in demo_logs.DEMO_LOGS:
        for segment in SegmentStore().segments(log_id):
            assert objects.is_committed(segment.path) and objects.verify_commit(segment.path) == []
    assert (as_path(s3_root) / "inbox" / "logs" / "web" / f"{DAY}.jsonl.gz").exists()


# -- logs fetch and check through the CLI ----------------------------------------------------------


def test_logs_fetch_cli_and_check_on_an_s3_root(s3_root, api):
    first = run_cli(*fetch_args(D0, D1))
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["decision"] == "miss" and result["summary"]["row_count"] == 1440
    assert result["segments_written"] == [f"{s3_root}/cache/logs/app/from={D0}/to={D1}"]
    assert result["summary_output"] == f"{s3_root}/exports/logs/app/summary_{D0}_{D1}.json"
    assert json.loads(as_path(result["summary_output"]).read_text())["row_count"] == 1440
    again = json.loads(run_cli(*fetch_args(D0, D1)).stdout)
    assert again["decision"] == "hit" and again["rows_processed"] == 0
    check = run_cli("check", "--group", "logs")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "PASS  logs/log_events:segments_readable" in check.stdout
    assert "PASS  storage:commit_matches_parts  1 committed folder(s)" in check.stdout
    assert "WARN" not in check.stdout and "FAIL" not in check.stdout


@pytest.mark.slow
def test_two_fetch_processes_on_overlapping_windows_write_no_overlap(s3_root, monkeypatch):
    """The per-log_id lease: the second process waits, then fetches only what the first did
    not cache. Without it both plan a miss and publish overlapping segments."""
    events = make_events("app", D0, D1, 20_000)  # 4320 events in pages of 50: ~90 slow pages per window
    with SlowLogApi({"app": events}, max_limit=50, delay=0.02) as api:
        env = {"LOG_API_URL": api.url}
        early, late = (D0, D0 + 16 * 3_600_000), (D0 + 8 * 3_600_000, D1)
        procs = [start_cli(*fetch_args(*early), env=env), start_cli(*fetch_args(*late), env=env)]
        outs = [p.communicate(timeout=180) for p in procs]
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, err
    results = [json.loads(out) for out, _ in outs]
    assert sorted(r["decision"] for r in results) == ["miss", "partial"], "one waited and reused the other's segment"
    store = SegmentStore()
    segments = store.segments("app", check_overlaps=False)
    windows = [s.window for s in segments]
    assert all(a[1] <= b[0] for a, b in zip(windows, windows[1:])), f"overlapping segments {windows}"
    assert windows[0][0] == D0 and windows[-1][1] == D1 and len(segments) == 2
    rows = cached_rows(store, "app")
    assert [r[1] for r in rows] == [e["event_id"] for e in events], "every event exactly once"
    assert not store.log_dir("app").joinpath(".lock").exists(), "both released the lease"


def test_a_bucket_as_log_cache_beside_a_local_data_root(data_root, s3_env, seaweed, api, monkeypatch):
    """LOG_INGESTION_CACHE_DIR may be a URL of its own: segments in the bucket, DuckDB reads
    them there (the data root's connection knows no object store), exports stay local."""
    bucket = seaweed.make_bucket()
    monkeypatch.setenv("LOG_INGESTION_CACHE_DIR", f"s3://{bucket}/cache")
    result = fetch_window("app", D0, D1, HttpLogSource(api.url))
    assert result.segments_written == [f"s3://{bucket}/cache/logs/app/from={D0}/to={D1}"]
    assert result.summary["row_count"] == 1440
    assert result.summary_output == str(data_root / "exports" / "logs" / "app" / f"summary_{D0}_{D1}.json")
    assert all(o.passed for o in window_outcomes(SegmentStore(), "app", D0, D1))
    assert fetch_window("app", D0, D1, HttpLogSource(api.url)).decision == "hit"


# -- a lease lost while held ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_fetch_whose_lease_is_broken_while_stalled_fails_with_one_line_naming_it(s3_root, monkeypatch):
    """A fetch stalled (SIGSTOP) past its lease TTL: another process breaks the expired lease
    and takes it. When the fetch resumes it writes its segment's parts but, confirming the
    lease before the commit, finds it lost and publishes nothing (the new holder may be
    writing the same window): one line (exit 2, no traceback) naming the log id and the lease
    object, saying the cache is intact, and what to do; the next fetch fetches the window."""
    from assets_pkg.storage import lease as leases

    events = make_events("app", D0, D1, 60_000)
    with SlowLogApi({"app": events}, max_limit=50, delay=0.05) as api:  # ~29 slow pages
        env = {"LOG_API_URL": api.url, "ASSETS_PKG_LEASE_TTL_S": "1.5"}
        lease_path = SegmentStore().log_dir("app") / ".lock"
        proc = start_cli(*fetch_args(D0, D1), env=env)
        try:
            deadline = time.monotonic() + 60
            while objects.object_info(lease_path) is None and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proc.poll() is None and objects.object_info(lease_path) is not None, "the fetch holds the lease"
            proc.send_signal(signal.SIGSTOP)
            time.sleep(2.5)  # past the TTL: the stalled holder renewed nothing
            monkeypatch.setenv(leases.TTL_VAR, "30")  # this process's lease: held for the rest of the fetch
            other = leases.take(lease_path, "log cache of 'app'", None, time.monotonic() + 10)
            proc.send_signal(signal.SIGCONT)
            out, err = proc.communicate(timeout=120)
            other.release()
            assert not other.lost, "the other process kept the lease it took"
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.communicate()
    assert proc.returncode == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: the lease {lease_path} on the log cache of 'app' was broken or taken over"), err
    assert "the cache is intact: the 0 segment(s) this fetch published are committed whole" in err, err
    assert "Re-run the same fetch" in err and "ASSETS_PKG_LEASE_TTL_S" in err, err
    assert out == "", "no result is printed for a fetch that failed"
    assert SegmentStore().segments("app") == [], "the fetch that lost its lease published no segment"
    with SlowLogApi({"app": events}, max_limit=1000, delay=0) as api:
        rerun = run_cli(*fetch_args(D0, D1), env={"LOG_API_URL": api.url})
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["decision"] == "miss"
    assert len(cached_rows(SegmentStore(), "app")) == 1440


def test_an_emptied_log_folder_reads_as_an_empty_cache(s3_root, seaweed, api):
    """SeaweedFS keeps a folder whose objects were all deleted, and lists it as the folder
    itself: the scanner must see an empty cache there, not an unexpected object."""
    fetch_window("app", D0, D1, HttpLogSource(api.url))
    fs = seaweed.filesystem()
    prefix = log_prefix()
    fs.rm(fs.find(prefix + "/"))
    assert SegmentStore().segments("app") == []
    assert fetch_window("app", D0, D1, HttpLogSource(api.url)).decision == "miss"


# -- commit rules --------------------------------------------------------------------------------


def _plant_uncommitted_segment(seaweed, start_ms: int, end_ms: int) -> str:
    """What a fetch killed mid-upload leaves: a whole part, no commit."""
    fs = seaweed.filesystem()
    key = f"{log_prefix()}/from={start_ms}/to={end_ms}/part-00000.parquet"
    fs.pipe_file(key, b"PAR1 half of an upload")
    return key


def test_a_segment_without_commit_is_ignored_refetched_and_reported(s3_root, seaweed, api, monkeypatch):
    planted = _plant_uncommitted_segment(seaweed, D0, D1)
    store = SegmentStore()
    assert store.segments("app") == [], "the scanner ignores a folder without a commit"
    assert cached_rows(store, "app") == []

    check = run_cli("check", "--group", "logs", env={"ASSETS_PKG_UNCOMMITTED_GRACE_S": "0"})
    assert check.returncode == 0, "an uncommitted upload is a WARN, not a failure: " + check.stdout
    assert f"WARN  storage:no_uncommitted_objects  1 object(s) under {s3_root}/cache/logs/app/from={D0}/to={D1}" \
           in check.stdout and "part-00000.parquet" in check.stdout
    within_grace = run_cli("check", "--group", "logs")
    assert "WARN" not in within_grace.stdout, "a younger upload may be a live writer's: not reported"

    result = fetch_window("app", D0, D1, HttpLogSource(api.url))
    assert result.decision == "miss" and result.summary["row_count"] == 1440, "the planner ignored it: re-fetched"
    assert objects.verify_commit(store.segments("app")[0].path) == []
    assert len(cached_rows(store, "app")) == 1440
    after = run_cli("check", "--group", "logs", env={"ASSETS_PKG_UNCOMMITTED_GRACE_S": "0"})
    assert after.returncode == 0 and "WARN" not in after.stdout, "the re-fetch replaced the upload"
    assert seaweed.filesystem().cat_file(planted) != b"PAR1 half of an upload"


def test_leftovers_in_another_folder_are_removed_by_the_next_fetch_only_after_the_grace(
        s3_root, seaweed, api, monkeypatch):
    planted = _plant_uncommitted_segment(seaweed, D0 + 1000, D0 + 2000)  # a window nobody fetches again
    fetch_window("app", D0, D0 + 3_600_000, HttpLogSource(api.url))
    assert seaweed.filesystem().exists(planted), "within the grace (1 h by default) a writer may still be live"
    monkeypatch.setenv("ASSETS_PKG_UNCOMMITTED_GRACE_S", "0")
    result = fetch_window("app", D0 + 3_600_000, D0 + 7_200_000, HttpLogSource(api.url))
    assert result.decision == "miss"
    fs = seaweed.filesystem()
    fs.invalidate_cache()
    assert not fs.exists(planted), "the next fetch of that log removed the killed upload"
    assert [s.window for s in SegmentStore().segments("app")] == [(D0, D0 + 3_600_000), (D0 + 3_600_000, D0 + 7_200_000)]


def test_a_corrupt_committed_part_fails_the_checks_naming_it(s3_root, seaweed, api):
    fetch_window("app", D0, D1, HttpLogSource(api.url), flush_rows=500)
    store = SegmentStore()
    (segment,) = store.segments("app")
    part = segment.parts[1]
    fs = seaweed.filesystem()
    original = fs.cat_file(part.path)

    # the same size, bytes flipped in a data page: only reading it finds it
    flipped = original[:200] + bytes(b ^ 0xFF for b in original[200:260]) + original[260:]
    fs.pipe_file(part.path, flipped)
    outcome = segments_readable(store, "app", D0, D1)
    assert not outcome.passed and str(part) in outcome.description

    # another size: the commit no longer matches
    fs.pipe_file(part.path, original[:-100])
    outcome = segments_readable(store, "app", D0, D1)
    assert not outcome.passed and f"{part} has {len(original) - 100} bytes, its commit lists {len(original)}" \
        in outcome.description
    check = run_cli("check", "--group", "logs")
    assert check.returncode == 1, check.stdout
    assert f"FAIL  storage:commit_matches_parts  {part} has" in check.stdout
    assert "FAIL  logs/log_events:segments_readable" in check.stdout and str(part) in check.stdout


@pytest.mark.slow
def test_kill_9_mid_upload_then_a_rerun_equals_a_clean_run(s3_root, seaweed, monkeypatch):
    """A fetch killed while its parts are being uploaded leaves parts and its lease, never a
    commit: the segment does not exist. The re-run (after the lease TTL) fetches it again,
    equal to a clean run, and deletes the leftovers (grace 0 here)."""
    events = make_events("app", D0, D1, 5_000)  # 17280 events
    with FakeLogApi({"app": events}, max_limit=10_000) as api:
        env = {"LOG_API_URL": api.url, "FLUSH_ROWS": "200", "ASSETS_PKG_LEASE_TTL_S": "3"}
        fs = seaweed.filesystem()
        prefix = log_prefix()
        proc = start_cli(*fetch_args(D0, D1), env=env)
        deadline = time.monotonic() + 120
        seen: list[str] = []
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                seen = objects_under(fs, prefix)
                if sum(name.endswith(".parquet") for name in seen) >= 3:
                    break
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL, "killed mid-fetch"
        left = objects_under(fs, prefix)
        assert any(name.endswith(".parquet") for name in left) and not any(n.endswith("_commit.json") for n in left)
        store = SegmentStore()
        assert store.segments("app") == [], "no commit: nothing cached"

        rerun = run_cli(*fetch_args(D0, D1), env={**env, "ASSETS_PKG_UNCOMMITTED_GRACE_S": "0"})
        assert rerun.returncode == 0, rerun.stderr
        rerun_result = json.loads(rerun.stdout)
        assert rerun_result["decision"] == "miss" and rerun_result["summary"]["row_count"] == len(events)
        rows = cached_rows(store, "app")
        assert [(r[0], r[1]) for r in rows] == [(e["timestamp"], e["event_id"]) for e in events], (
            store.segments("app"), objects_under(fs, prefix)[:5], rerun.stderr[-2000:])
        (segment,) = store.segments("app")
        commit = objects.read_commit(segment.path)
        assert objects.verify_commit(segment.path) == []
        remaining = [n for n in objects_under(fs, prefix) if n != ".lock"]
        listed = {f"from={D0}/to={D1}/{name}" for name in commit["parts"]} | {f"from={D0}/to={D1}/_commit.json"}
        assert set(remaining) == listed, "the killed upload's leftovers were removed"
        assert len(commit["parts"]) == 17280 // 200 + 1 + 1  # the parts plus segment.json


# -- the IO manager, the instance, the CLI's storage errors ---------------------------------------------


@dg.asset(partitions_def=dg.StaticPartitionsDefinition(["1", "2"]), key_prefix=["t"])
def numbers(context: dg.AssetExecutionContext) -> pa.Table:
    """A small partitioned table."""
    n = int(context.partition_key)
    return pa.table({"n": list(range(n * 10)), "p": [n] * (n * 10)})


@dg.asset(key_prefix=["t"], ins={"numbers": dg.AssetIn(key=["t", "numbers"])})
def total(numbers: pa.Table) -> pa.Table:
    """Every partition of ``numbers`` loaded through the IO manager."""
    return pa.table({"rows": [numbers.num_rows]})


def test_io_manager_writes_and_reads_partitions_in_the_bucket(s3_root, tmp_path):
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        for key in ("1", "2"):
            assert dg.materialize([numbers], partition_key=key, instance=instance,
                                  resources={"io_manager": ShardedParquetIOManager()}).success
        result = dg.materialize([numbers, total], selection=[total], instance=instance,
                                resources={"io_manager": ShardedParquetIOManager()})
        assert result.success
    from assets_pkg.io.formats import count_rows
    from assets_pkg.storage.arrow import read_table

    warehouse = as_path(s3_root) / "warehouse" / "t"
    assert count_rows(warehouse / "numbers" / "part-00001.parquet") == 10
    assert count_rows(warehouse / "numbers" / "part-00002.parquet") == 20
    assert read_table(warehouse / "total.parquet").column("rows").to_pylist() == [30]


def test_dagster_home_stays_local_with_an_s3_root(s3_root, tmp_path, monkeypatch):
    from assets_pkg.instance import ensure_dagster_home

    monkeypatch.delenv("DAGSTER_HOME")
    monkeypatch.chdir(tmp_path)
    home = ensure_dagster_home()
    assert home == tmp_path / ".dagster" and home.is_dir() and not is_remote(home)
    assert os.environ["DAGSTER_HOME"] == str(tmp_path / ".dagster")


def test_cli_names_a_missing_bucket(s3_env):
    out = run_cli("check", env={"ASSETS_PKG_DATA_DIR": "s3://no-such-bucket-here/data"})
    assert out.returncode == 2
    assert "s3://no-such-bucket-here/data" in out.stderr and "does not exist" in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_refused_credentials_never_print_the_secret(s3_root):
    secret = "wrong-secret-do-not-print-1234"
    out = run_cli("logs", "fetch", "--log-id", "app", "--start", str(D0), "--end", str(D1),
                  env={"AWS_SECRET_ACCESS_KEY": secret})
    assert out.returncode == 2, out.stderr
    assert s3_root in out.stderr and "refused the credentials" in out.stderr
    assert secret not in out.stderr + out.stdout and "Traceback" not in out.stderr


def test_cli_unreachable_endpoint_fails_after_a_bounded_retry(s3_root):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    out = run_cli("check", env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "ASSETS_PKG_S3_ATTEMPTS": "2"})
    assert out.returncode == 2
    assert f"cannot reach the object store at http://127.0.0.1:{port} for {s3_root}" in out.stderr
    assert time.monotonic() - started < 60 and "Traceback" not in out.stderr


def test_stored_folder_outcomes_are_nothing_for_a_local_root(data_root):
    from assets_pkg.checking import stored_folder_outcomes

    assert stored_folder_outcomes(get_settings().data_root) == []
    assert window_outcomes(SegmentStore(), "app", D0, D1)[0].passed
