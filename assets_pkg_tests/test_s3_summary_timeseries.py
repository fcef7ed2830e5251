"""The summary and time-series domains on an S3 data root (SeaweedFS, a real S3 server): the
same files as on a local root, row for row, every partition, with every ERROR check green;
`summary plan` on the S3 root; a corrupt committed object fails the check that names it;
a summary writer killed with SIGKILL mid-run, then a re-run, equals a clean run."""

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from assets_pkg import layout
from assets_pkg.demo.framework import DemoContext, DemoReport
from assets_pkg.settings import get_settings
from assets_pkg.storage import as_path, is_remote, objects
from assets_pkg.storage.arrow import read_table
from assets_pkg_tests.test_summary_helpers import cfg_for, write_batch

ROOT = Path(__file__).resolve().parents[1]


def _demo(domain: str, home: Path) -> DemoReport:
    """Generate the domain's test-scale inputs into the current root's inbox and run its demo
    (summary: initial build, then the later batch of forward records, late corrections, new
    accounts and a new month through the sensor; time series: every day in one run)."""
    from assets_pkg.definitions import defs
    from assets_pkg.demo import summary, timeseries

    module = {"summary": summary, "timeseries": timeseries}[domain]
    module.generate(layout.inbox_dir(module.INBOX), scale="test")
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        ctx = DemoContext(settings=get_settings(), instance=instance, defs=defs, report=DemoReport(), scale="test")
        module.run(ctx)
    assert not ctx.report.errors, ctx.report.render()
    assert not ctx.report.failed_error_checks, ctx.report.render()
    return ctx.report


def _files(folder, pattern: str = "*") -> dict[str, object]:
    """{name: path} of the files directly in ``folder`` (remote: listed now)."""
    import fnmatch

    folder = as_path(folder)
    if is_remote(folder):
        names = [n for n in objects.list_objects(folder) if "/" not in n]
        return {n: folder / n for n in sorted(names) if fnmatch.fnmatch(n, pattern)}
    return {p.name: p for p in sorted(folder.glob(pattern)) if p.is_file()} if folder.is_dir() else {}


def _rows(path) -> list[dict]:
    return read_table(path).replace_schema_metadata(None).to_pylist()


def _snapshot(domain: str) -> dict:
    """Every output file of the domain under the current root, decoded (rows; csv.gz as text)."""
    warehouse = get_settings().warehouse
    out = {}
    if domain == "summary":
        for name, path in _files(warehouse / "summary" / "account_summary", "*.parquet").items():
            out[f"account_summary/{name}"] = _rows(path)
        out["latest_summary"] = _rows(warehouse / "summary" / "latest_summary.parquet")
        state = json.loads((warehouse / "summary" / "_state" / "processed_batches.json").read_text())
        out["processed"] = sorted(state["batches"])
        return out
    for asset in ("resampled", "merged"):
        for name, path in _files(warehouse / "timeseries" / asset, "*.parquet").items():
            out[f"{asset}/{name}"] = _rows(path)
    for name, path in _files(get_settings().exports / "timeseries").items():
        if name.endswith(".parquet"):
            out[f"export/{name}"] = _rows(path)
        elif name.endswith(".gz"):
            out[f"export/{name}"] = gzip.decompress(path.read_bytes()).decode()
        else:  # the statistics name their source file: relative to the root
            stats = json.loads(path.read_text())
            stats["source"] = stats["source"].removeprefix(str(get_settings().data_root))
            out[f"export/{name}"] = stats
    return out


def _local_then_s3(domain: str, s3_root: str, tmp_path: Path, monkeypatch) -> tuple[dict, dict]:
    local_root = tmp_path / "local"
    monkeypatch.setenv("ASSETS_PKG_DATA_DIR", str(local_root))
    _demo(domain, tmp_path / "home-local")
    local = _snapshot(domain)
    monkeypatch.setenv("ASSETS_PKG_DATA_DIR", s3_root)
    _demo(domain, tmp_path / "home-s3")
    assert is_remote(get_settings().data_root)
    return local, _snapshot(domain)


@pytest.mark.slow
def test_summary_on_s3_equals_local_row_for_row(s3_root, tmp_path, monkeypatch):
    local, remote = _local_then_s3("summary", s3_root, tmp_path, monkeypatch)
    months = [k for k in local if k.startswith("account_summary/")]
    assert len(months) >= 30 and local["processed"] == remote["processed"]
    assert "accounts-2026-01-batch.parquet" in remote["processed"], "the later batch went through the sensor"
    assert sorted(remote) == sorted(local)
    for key in local:
        assert remote[key] == local[key], key
    # nothing but the published files: no temp objects, no lease left behind
    summary = as_path(s3_root) / "warehouse" / "summary"
    leftovers = [n for n in objects.list_objects(summary)
                 if not n.startswith("account_summary/") and n not in ("latest_summary.parquet", "_state/processed_batches.json")]
    assert leftovers == []


@pytest.mark.slow
def test_timeseries_on_s3_equals_local_row_for_row(s3_root, tmp_path, monkeypatch):
    local, remote = _local_then_s3("timeseries", s3_root, tmp_path, monkeypatch)
    assert {k.split("/")[0] for k in local} == {"resampled", "merged", "export"}
    days = sum(k.startswith("merged/") for k in local)
    assert days >= 2 and sum(k.startswith("export/") for k in local) == 3 * days  # parquet, csv.gz, analysis.json
    assert sorted(remote) == sorted(local)
    for key in local:
        assert remote[key] == local[key], key


def _build_on_root(batches: list[tuple[str, list]]):
    """Publish batches into the current root's accounts inbox and materialize every month of
    them the way the asset does (state recorded, under the summary's lock)."""
    from assets_pkg.io.atomic import atomic_path
    from assets_pkg.summary.config import load_summary_settings
    from assets_pkg.summary.engine import rebuild_months
    from assets_pkg.summary.plan import month_file

    inbox = layout.inbox_dir("accounts")
    for name, records in batches:
        with atomic_path(inbox / name) as tmp:
            write_batch(tmp.parent, tmp.name, records)
    return rebuild_months(load_summary_settings(), "2024-01", "2024-06", month_file)


BASE = [(k, f"2024-0{m}", float(k * 10 + m), 0, m) for k in (1, 2, 3) for m in range(1, 6)]
LATE = [(2, "2024-02", 999.0, 30, 500), (7, "2024-05", 1.0, 0, 501), (1, "2024-06", 5.0, 0, 502)]


def test_summary_plan_on_s3_root_classifies_and_writes_nothing(s3_root, capsys):
    from assets_pkg.cli import main
    from assets_pkg.io.atomic import atomic_path

    result = _build_on_root([("0001.parquet", BASE)])
    assert result.stats.rows == 15 and all(o.passed for o in result.outcomes)
    with atomic_path(layout.inbox_dir("accounts") / "0002.parquet") as tmp:
        write_batch(tmp.parent, tmp.name, LATE)
    root = as_path(s3_root)
    before = {n: i["ETag"] for n, i in objects.list_objects(root).items()}
    assert main(["summary", "plan"]) == 0
    out = capsys.readouterr().out
    assert "new batch files: 1 ['0002.parquet']" in out
    assert "Case I   new accounts : 1 records, 1 accounts" in out
    assert "Case II  forward      : 1 records, 1 accounts" in out
    assert "Case III backfill     : 1 records, 1 accounts" in out
    assert "months to rebuild: 2024-02..2024-06" in out
    after = {n: i["ETag"] for n, i in objects.list_objects(root).items()}
    assert after == before, "plan writes nothing"


def test_a_batch_published_by_another_process_is_seen_at_once(s3_root):
    """s3fs caches listings per process: a sensor in a long-lived daemon must list the inbox
    from the store, or a batch another machine publishes would never be seen."""
    from assets_pkg.summary.source import list_batch_files

    _build_on_root([("0001.parquet", BASE)])
    inbox = layout.inbox_dir("accounts")
    assert [f.name for f in list_batch_files(inbox)] == ["0001.parquet"]
    inbox.fs.ls(objects.object_key(inbox))  # this process's cached listing, as a sensor's would be
    fresh_client = _other_client()
    fresh_client.pipe_file(objects.object_key(inbox / "0002.parquet"), (inbox / "0001.parquet").read_bytes())
    assert [f.name for f in list_batch_files(inbox)] == ["0001.parquet", "0002.parquet"]


def _other_client():
    import s3fs

    from assets_pkg.storage.root import s3_options

    return s3fs.S3FileSystem(skip_instance_cache=True, **s3_options())


def test_corrupt_month_object_fails_the_check_naming_it(s3_root, seaweed):
    from assets_pkg.summary.checks import evaluate_materialized
    from assets_pkg.summary.plan import month_file

    _build_on_root([("0001.parquet", BASE)])
    assert all(o.passed for o in evaluate_materialized() if o.name != "one_row_per_account")
    bad = month_file("2024-03")
    seaweed.filesystem().pipe_file(objects.object_key(bad), b"not a parquet file at all")
    failed = [o for o in evaluate_materialized() if not o.passed]
    assert failed and all(o.severity == "ERROR" for o in failed)
    assert any(str(bad) in o.description for o in failed), [o.description for o in failed]


def test_check_on_s3_holds_one_month_on_local_disk_at_a_time(s3_root, tmp_path, monkeypatch, capsys):
    """`assets-pkg check` scans every month of an object-store summary: local scratch holds at
    most the one month being scanned (not a copy of every month at once), and it passes."""
    from assets_pkg import duck
    from assets_pkg.cli import main
    from assets_pkg.io import write_table
    from assets_pkg.summary.config import load_summary_settings
    from assets_pkg.summary.latest import latest_reader
    from assets_pkg.summary.month_scan import MonthScanner
    from assets_pkg.summary.months import LATEST_ASSET_PATH
    from assets_pkg.summary.plan import existing_month_files

    scratch = tmp_path / "scratch"
    monkeypatch.setenv("ASSETS_PKG_SCRATCH_DIR", str(scratch))
    _build_on_root([("0001.parquet", BASE + LATE)])
    months = existing_month_files()
    assert len(months) == 6 and all(is_remote(p) for p in months)
    con = duck.connect()
    write_table(latest_reader(con, load_summary_settings(), months), layout.asset_file(LATEST_ASSET_PATH))
    con.close()

    before = set(scratch.rglob("*.parquet"))
    present: list[int] = []  # local month copies present each time a month is scanned
    scan = MonthScanner.add

    def counting(self, month, path, report=True):
        present.append(len(set(scratch.rglob("*.parquet")) - before))
        return scan(self, month, path, report)

    monkeypatch.setattr(MonthScanner, "add", counting)
    capsys.readouterr()
    assert main(["check", "--group", "summary"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "PASS  summary/account_summary:history_consistency" in out, out
    assert "PASS  summary/latest_summary:one_row_per_account" in out, out
    assert len(present) == 6, "every month scanned once"
    assert max(present) == 1, f"local month copies present during the scans: {present}"
    assert set(scratch.rglob("*.parquet")) - before == set(), "no copy left behind"


def test_build_on_s3_deletes_each_local_month_copy_once_scanned(s3_root, tmp_path, monkeypatch):
    """The build's checks scan each month it wrote from a local copy of the upload: once a
    month is scanned its copy is gone (local disk is the months not yet scanned, not every
    month of the run), nothing is left behind, and the checks still pass."""
    from assets_pkg.summary.month_scan import MonthScanner

    scratch = tmp_path / "scratch"
    monkeypatch.setenv("ASSETS_PKG_SCRATCH_DIR", str(scratch))
    left_over: dict[str, set[str]] = {}  # month scanned -> copies of earlier months still on disk
    scan = MonthScanner.add

    def watching(self, month, path, report=True):
        copies = {p.stem for p in scratch.rglob("summary-checks/*/*.parquet")}
        left_over[month] = {m for m in copies if m < month}
        return scan(self, month, path, report)

    monkeypatch.setattr(MonthScanner, "add", watching)
    result = _build_on_root([("0001.parquet", BASE + LATE)])
    assert sorted(left_over) == ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06"]
    assert all(not earlier for earlier in left_over.values()), f"copies kept after their scan: {left_over}"
    assert list(scratch.rglob("summary-checks/*/*.parquet")) == [], "no copy left behind"
    assert result.outcomes and all(o.passed for o in result.outcomes), [o for o in result.outcomes if not o.passed]


@pytest.mark.slow
def test_corrupt_export_object_fails_the_check_naming_it(s3_root, seaweed, tmp_path):
    from assets_pkg.timeseries.checks import evaluate_materialized

    _demo("timeseries", tmp_path / "home")
    assert all(o.passed for o in evaluate_materialized() if o.severity == "ERROR")
    exports = get_settings().exports / "timeseries"
    for name in ("2024-01-02.parquet", "2024-01-01.csv.gz"):
        seaweed.filesystem().pipe_file(objects.object_key(exports / name), b"garbage")
    failed = [o for o in evaluate_materialized() if not o.passed]
    text = " ".join(o.description for o in failed)
    # the ERROR check that compares the export with merged fails naming both objects (coverage,
    # a WARN check reading the same export, may fail with it)
    assert {o.name for o in failed if o.severity == "ERROR"} == {"export_matches_merged"}
    text = " ".join(o.description for o in failed if o.name == "export_matches_merged")
    assert str(exports / "2024-01-02.parquet") in text and str(exports / "2024-01-01.csv.gz") in text


KILLED_WRITER = """
import sys, time
from assets_pkg.summary.config import load_summary_settings
from assets_pkg.summary.engine import rebuild_months
from assets_pkg.summary.plan import month_file

def on_month(month, rows):
    print(month, flush=True)
    time.sleep(0.5)  # slow enough for the parent to kill it between two months

rebuild_months(load_summary_settings(), "2024-01", "2024-06", month_file, on_month=on_month)
print("finished", flush=True)
"""


@pytest.mark.slow
def test_summary_writer_killed_mid_run_then_rerun_equals_clean_run(s3_root, tmp_path, monkeypatch):
    from assets_pkg.io.atomic import atomic_path
    from assets_pkg.summary import state

    monkeypatch.setenv("ASSETS_PKG_LEASE_TTL_S", "2")  # the killed writer's lease expires soon
    inbox = layout.inbox_dir("accounts")
    for name, records in (("0001.parquet", BASE), ("0002.parquet", LATE)):
        with atomic_path(inbox / name) as tmp:
            write_batch(tmp.parent, tmp.name, records)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER], env=env, stdout=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline().strip()
        assert first.startswith("2024-"), first
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    months = as_path(s3_root) / "warehouse" / "summary" / "account_summary"
    assert len(_files(months)) < 6, "killed before the last month"
    assert state.load_processed() == {}, "a killed run marks no batch processed"
    started = time.monotonic()
    result = _build_on_root([])  # the re-run: waits out the dead writer's lease, then rebuilds
    assert all(o.passed for o in result.outcomes)
    assert time.monotonic() - started < 30
    assert sorted(state.load_processed()) == ["0001.parquet", "0002.parquet"]
    rerun = {name: _rows(p) for name, p in _files(months).items()}
    # a clean run from the same batches on a local root
    clean_root = tmp_path / "clean"
    monkeypatch.setenv("ASSETS_PKG_DATA_DIR", str(clean_root))
    for name, records in (("0001.parquet", BASE), ("0002.parquet", LATE)):
        write_batch(clean_root / "inbox" / "accounts", name, records)
    from assets_pkg.summary.config import load_summary_settings
    from assets_pkg.summary.engine import rebuild_months

    rebuild_months(load_summary_settings(), "2024-01", "2024-06", lambda m: clean_root / "out" / f"{m}.parquet",
                   update_state=False)
    clean = {name: _rows(p) for name, p in _files(clean_root / "out").items()}
    assert rerun == clean and len(clean) == 6
    leftovers = [n for n in objects.list_objects(as_path(s3_root) / "warehouse" / "summary")
                 if not n.startswith("account_summary/") and n != "_state/processed_batches.json"]
    assert leftovers == [], "no lease or temp object left behind"


def test_local_root_keeps_plain_paths_for_batches(data_root):
    """The local profile copies no batch: a local parquet batch is scanned through a hard link
    (the same bytes, pinned as listed), never a downloaded or copied file."""
    import os

    from assets_pkg.duck import connect
    from assets_pkg.summary.source import Source, list_batch_files

    inbox = data_root / "inbox" / "accounts"
    write_batch(inbox, "0001.parquet", BASE)
    cfg = cfg_for(inbox)
    with Source(connect(), cfg, list_batch_files(inbox)) as source:
        assert source.profile().rows == 15
        scanned = list(source._tmp.rglob("*.parquet"))
        assert len(scanned) == 1 and os.path.samefile(scanned[0], inbox / "0001.parquet"), "a link, not a copy"


def test_timeseries_sensor_on_s3_sees_new_and_rewritten_objects(s3_root, tmp_path):
    """The sensor knows a dataset object by its size, LastModified and ETag, asked of the
    store at each tick: a file another process rewrites is requested again."""
    from assets_pkg.demo import timeseries as demo
    from assets_pkg_tests.test_timeseries_sensor import DAY1, DAY2, DAY3, day_range, tick

    demo.generate(layout.inbox_dir(demo.INBOX), scale="test")
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        first = tick(instance)
        [request] = first.run_requests
        assert day_range(request) == (DAY1, DAY3)
        assert not tick(instance, first.cursor).run_requests
        meters = layout.inbox_dir(demo.INBOX) / "meters.parquet"
        data = meters.read_bytes()
        time.sleep(1.1)  # LastModified has whole seconds
        _other_client().pipe_file(objects.object_key(meters), data)  # the same bytes, a new PUT
        [again] = tick(instance, first.cursor).run_requests
        assert day_range(again) == (DAY1, DAY2)  # the meters feed: its own days
