"""SIGKILL of `dagster dev`'s run worker in the middle of a step: the run is marked failed,
the next run of the same asset clears the killed writer's temps, and its output equals a
clean run's.

Who notices: `dagster dev`'s default run launcher starts each run in a child process of the
code server, and the code server's cleanup thread (every 0.5 s) marks a run whose process
died as FAILURE with an engine event saying so. The daemon's run monitoring (enabled by the
instance the project writes) adds no worker health check for that launcher, so it is the
code server this test relies on, within seconds.

Where the kill lands: the run worker is held (``assets_pkg_tests.hold``) once its step has
written the first shard into its temp folder, so the kill always finds the step mid-write,
never after a fast machine has finished the file; the second run is not held.
"""

import os
import signal
import time

import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from assets_pkg.ingest.stream import stream_file_to_shards
from assets_pkg.instance import open_instance
from assets_pkg_tests.hold import hold_env, held_pid, release
from assets_pkg_tests.ui_session import dagster_dev, demo_env, wait_for

PARTITION = "big.csv"
ROWS = 100_000
CHUNK_ROWS, SHARD_ROWS = 5_000, 20_000  # five shards; the step is held inside the second
RUN_CONFIG = {"ops": {"ingest__files": {"config": {"chunk_size": CHUNK_ROWS, "shard_rows": SHARD_ROWS}}}}
HELD_AFTER_CHUNKS = SHARD_ROWS // CHUNK_ROWS + 1

# the reader given to _write_shards, held before its chunk HELD_AFTER_CHUNKS: the first
# shard written and closed in the temp folder, the second one open
HOLD_IN_SECOND_SHARD = f"""
    def patch(module):
        write = module._write_shards

        def held(reader):
            for n, chunk in enumerate(reader):
                if n == {HELD_AFTER_CHUNKS}:
                    hold()
                yield chunk

        module._write_shards = lambda reader, work, shard_rows: write(held(reader), work, shard_rows)
"""


def _write_big_csv(path):
    ids = pa.array(range(ROWS), pa.int64())
    table = pa.table({"id": ids, "amount": pc.multiply(ids.cast(pa.float64()), 1.5),
                      "note": pa.array(["x" * 12] * ROWS)})
    pacsv.write_csv(table, path)
    old = time.time() - 60  # settled: nothing is still writing it
    os.utime(path, (old, old))


def _launch(server, partition: str) -> str:
    data = server.gql(
        "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename"
        " ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }"
        " ... on RunConfigValidationInvalid { errors { message } } } }",
        {"p": {"selector": {"repositoryLocationName": "assets_pkg", "repositoryName": "__repository__",
                            "jobName": "ingest_job"},
               "runConfigData": RUN_CONFIG,
               "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]}}},
    )
    result = data["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", f"launching ingest_job failed: {result}"
    return result["run"]["runId"]


def _step_pid(run_id: str) -> int | None:
    """The pid of the process running the run's step (its STEP_START event says it)."""
    with open_instance() as instance:
        for record in instance.all_logs(run_id):
            event = record.dagster_event
            if event is not None and event.event_type_value == "STEP_START":
                return event.pid
    return None


def _temps(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.is_dir() else []


def _rows(folder) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted(folder.glob("part-*.parquet"))])


@pytest.mark.slow
def test_sigkill_of_the_run_worker_fails_the_run_and_the_next_run_cleans_up(data_root, tmp_path):
    hold = tmp_path / "hold"
    env = hold_env({**demo_env(data_root), "ASSETS_PKG_AUTOMATION": "off", "INBOX_SETTLE_SECONDS": "0"}, hold,
                   "assets_pkg.ingest.stream", HOLD_IN_SECOND_SHARD)
    inbox = data_root / "inbox" / "files"
    inbox.mkdir(parents=True)
    _write_big_csv(inbox / PARTITION)
    with open_instance() as instance:  # the project's instance (run monitoring on), partition known
        instance.add_dynamic_partitions("ingest_files", [PARTITION])
    out = data_root / "warehouse" / "ingest" / "files"
    log = tmp_path / "dagster-dev.log"
    with dagster_dev(env, log) as server:
        try:
            first = _launch(server, PARTITION)
            pid = wait_for(f"run {first}'s step to start", lambda: _step_pid(first), 120, interval=0.5)
            family = {p.pid for p in psutil.Process(server.proc.pid).children(recursive=True)}
            assert pid in family, f"pid {pid} ({psutil.Process(pid).cmdline()}) is not a process of dagster dev"
            # mid-step: held in its second shard, its first one written into the temp folder
            assert wait_for(f"run {first}'s step held mid-write", lambda: held_pid(hold), 120, interval=0.2) == pid
            temps = _temps(out)
            assert len(temps) == 1 and (out / temps[0] / "part-00000.parquet").is_file(), temps
            assert not (out / "big").exists()  # nothing published yet
            assert server.run(first)["status"] == "STARTED"
            os.kill(pid, signal.SIGKILL)
            failed = server.finished_run(first, 60)
            assert failed["status"] == "FAILURE", failed
            left = _temps(out)
            assert left and f"-{pid}-" in left[0], left  # the killed writer's temp, named by its pid
            assert not (out / "big").exists()  # nothing that looks complete

            release(hold)  # the next run streams straight through
            second = _launch(server, PARTITION)
            done = server.finished_run(second, 150)
            assert done["status"] == "SUCCESS", done
        except BaseException:
            print(f"dagster dev log ({log}):\n{server.log_tail()}")
            raise
    assert _temps(out) == []  # the next materialization of the asset removed them
    clean = tmp_path / "clean"
    stream_file_to_shards(inbox / PARTITION, clean, shard_rows=SHARD_ROWS, chunk_size=CHUNK_ROWS)
    assert sorted(p.name for p in (out / "big").glob("part-*")) == sorted(p.name for p in clean.glob("part-*"))
    assert _rows(out / "big").equals(_rows(clean))
