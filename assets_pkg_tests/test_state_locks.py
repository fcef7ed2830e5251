"""One writer per domain state, end to end: the paused-run race of issue 14.

Run A is a real Dagster run in its own process that stops itself with SIGSTOP in the middle
of writing (after its Nth month file, or with the allocation computed but not yet
published): the child wraps one function of the engine to send itself the signal, which is
deterministic (the parent sees the stop with ``waitpid(WUNTRACED)``) and needs no hook in
the product. A newer batch (shard) lands, run B starts in another process, then A is
resumed (SIGCONT). Before the domain locks, B finished while A was stopped and A then
published stale months and dropped B's record from the state.
"""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets_pkg.cli import main as cli_main
from assets_pkg.summary import state as summary_state
from assets_pkg.summary.months import month_range
from assets_pkg_tests.test_summary_helpers import cfg_for, full_build, read_months, write_batch

WAIT_LINE = "waiting up to"  # what a run blocked on a domain lock logs (assets_pkg.io.locks)

# Run A's prelude: wrap each function PAUSE_TARGETS names (module.attr, comma separated) so
# that its PAUSE_AFTER-th call returns and then the process stops itself; a test-only
# instrument of the child, like a breakpoint: the run itself is unchanged.
PAUSE = textwrap.dedent(
    """
    import importlib, os, signal, sys
    calls = [0]

    def pausing(real):
        def wrapper(*args, **kwargs):
            out = real(*args, **kwargs)
            calls[0] += 1
            if calls[0] == int(os.environ["PAUSE_AFTER"]):
                os.kill(os.getpid(), signal.SIGSTOP)  # the test resumes us with SIGCONT
            return out
        return wrapper

    patched = {}
    for target in os.environ["PAUSE_TARGETS"].split(","):
        module_name, name = target.rsplit(".", 1)
        module = importlib.import_module(module_name)
        if hasattr(module, name):
            real = getattr(module, name)
            patched.setdefault(id(real), pausing(real))
            setattr(module, name, patched[id(real)])
    """
)

CLI = "import sys\nfrom assets_pkg.cli import main\nsys.exit(main(sys.argv[1:]))\n"

RUN_JOB = textwrap.dedent(
    """
    import sys
    import dagster as dg
    from assets_pkg.definitions import defs
    job_name, start, end = sys.argv[1:]
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance, raise_on_error=False,
            tags={"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end})
    sys.exit(0 if result.success else 1)
    """
)


def paused(script: str, targets: str, after: int, *args) -> subprocess.Popen:
    """Run A: ``script`` in a child that stops itself after the ``after``-th call of ``targets``."""
    proc = python(PAUSE + script, *args, PAUSE_TARGETS=targets, PAUSE_AFTER=str(after))
    wait_stopped(proc)
    return proc


def python(script: str, *args, **env) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env}
    return subprocess.Popen([sys.executable, "-c", script, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def wait_stopped(proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, status = os.waitpid(proc.pid, os.WUNTRACED | os.WNOHANG)
        if pid:
            assert os.WIFSTOPPED(status), f"run A ended before it paused: {proc.stdout.read()}"
            return
        time.sleep(0.05)
    raise AssertionError("run A did not pause")


class Output:
    """A child's output collected on a thread; ``wait_for(text)`` returns when it appears
    or the child ends."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.lines, self.event = proc, [], threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            self.event.set()
        self.event.set()

    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return True
            if self.proc.poll() is not None:
                self.thread.join(5)
                return needle in self.text()
            self.event.wait(0.1)
            self.event.clear()
        return False


def race(proc_a: subprocess.Popen, proc_b: subprocess.Popen, timeout: float = 90) -> tuple[str, str]:
    """A is paused and B started: let B reach the lock (or finish, without locks), resume
    A, wait for both; their output."""
    out_b = Output(proc_b)
    out_b.wait_for(WAIT_LINE, timeout)
    os.kill(proc_a.pid, signal.SIGCONT)
    out_a = Output(proc_a)
    for proc in (proc_a, proc_b):
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    out_a.thread.join(5)
    out_b.thread.join(5)
    return out_a.text(), out_b.text()


@pytest.mark.slow
def test_paused_summary_run_and_a_newer_batch_end_as_a_full_rebuild(data_root, instance, tmp_path, capsys):
    inbox = data_root / "inbox" / "accounts"
    months = month_range("2020-01", "2024-12")  # 60 month files
    write_batch(inbox, "0001.parquet", [(k, m, float(k * 100 + i), i % 5, i) for k in range(1, 21)
                                        for i, m in enumerate(months)])
    # A: the initial build of every month, paused after its 10th month file
    proc_a = paused(CLI, "assets_pkg.summary.engine.write_month_file", 10, "summary", "run", "--mode", "initial")
    # a newer batch lands while A is paused: corrections in 2020-06 reach every later month
    write_batch(inbox, "0002.parquet", [(k, "2020-06", -1.0 * k, 9, 10_000) for k in range(1, 21)]
                + [(99, "2021-03", 5.0, 0, 10_000)])
    proc_b = python(CLI, "summary", "run")  # incremental: the new batch
    out_a, out_b = race(proc_a, proc_b)

    capsys.readouterr()
    assert cli_main(["check", "--group", "summary"]) == 0, capsys.readouterr().out
    full = tmp_path / "full"
    full_build(cfg_for(inbox), full, "2020-01", "2024-12")
    assert read_months(data_root / "warehouse" / "summary" / "account_summary") == read_months(full)
    assert set(summary_state.load_processed()) == {"0001.parquet", "0002.parquet"}
    assert proc_a.returncode == 0, out_a
    assert proc_b.returncode == 0, out_b
    assert WAIT_LINE in out_b and "summary state" in out_b, out_b  # B waited for A's lock
    assert cli_main(["summary", "plan"]) == 0
    assert "nothing to rebuild" in capsys.readouterr().out


@pytest.mark.slow
def test_paused_allocation_and_a_new_shard_keep_the_splits_consistent(data_root, instance):
    from assets_pkg.demo.splits import write_shard
    from assets_pkg.splits.checks import evaluate_materialized
    from assets_pkg.splits.hashing import side_of
    from assets_pkg.splits.pipeline import manifest_file, read_json

    inbox = data_root / "inbox" / "transactions"
    known_later = next(c for c in (f"T{i}" for i in range(100)) if side_of(42, 0.9, c) == "train")
    # shard 1: post-split rows of a customer that only shard 3 (pre-split row) makes known
    write_shard(pa.table({"customer_id": ["A", "B", known_later], "date": ["2023-01-01", "2024-03-01", "2024-04-01"],
                          "label": ["x", "y", "x"]}), inbox / "part-00001.parquet")
    write_shard(pa.table({"customer_id": ["C"], "date": ["2023-02-01"], "label": ["x"]}), inbox / "part-00002.parquet")
    instance.add_dynamic_partitions("splits_shards", ["00001", "00002"])
    # A: shards 1..2, paused with the allocation computed and not yet published
    proc_a = paused(RUN_JOB, "assets_pkg.splits.pipeline.compute_allocation,assets_pkg.splits.assets.compute_allocation",
                    1, "splits_job", "00001", "00002")
    write_shard(pa.table({"customer_id": [known_later], "date": ["2023-06-01"], "label": ["x"]}),
                inbox / "part-00003.parquet")
    instance.add_dynamic_partitions("splits_shards", ["00003"])
    proc_b = python(RUN_JOB, "splits_job", "00003", "00003")
    out_a, out_b = race(proc_a, proc_b)

    failed = [o.line() for o in evaluate_materialized() if o.severity == "ERROR" and not o.passed]
    assert not failed, failed
    manifest = read_json(manifest_file(data_root / "warehouse"))
    assert sorted(manifest["shards"]) == ["00001", "00002", "00003"]
    oot = pq.read_table(data_root / "warehouse/splits/oot/part-00001.parquet").column("customer_id")
    assert known_later not in oot.to_pylist()  # train customer: its post-split rows never reach OOT
    assert proc_a.returncode == 0, out_a
    assert proc_b.returncode == 0, out_b
    assert WAIT_LINE in out_b and "splits state" in out_b, out_b  # B waited for A's lock
