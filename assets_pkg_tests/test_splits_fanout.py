"""The splits fan-out (cluster executors): pass 1 and pass 2 in batches of shards, each a
step of its own, give the files, rows and checks of the one-step embedded run. A pass-2
writer killed mid-write, fan-out or one-step, leaves nothing a re-run keeps."""

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from assets_pkg.demo.splits import make_rows, write_shard
from assets_pkg.io.atomic import is_temp_name, temp_sibling
from assets_pkg.run_tags import RANGE_END_TAG, RANGE_START_TAG
from assets_pkg.splits.assets import PARTITIONS_NAME
from assets_pkg_tests.hold import hold_env, held_pid, release
from assets_pkg_tests.test_cluster import _data_files, assert_same_outputs
from assets_pkg_tests.test_splits_assets import checks_of, make_defs
from assets_pkg_tests.ui_session import wait_for

REPO = Path(__file__).resolve().parent.parent
SHARDS = {1: "parquet", 2: "csv", 3: "parquet", 7: "tsv.gz", 9: "parquet"}
KEYS = [f"{n:05d}" for n in SHARDS]
TAGS = {RANGE_START_TAG: KEYS[0], RANGE_END_TAG: KEYS[-1]}
ERROR_CHECKS = {("splits/train", "shard_mapping"), ("splits/train", "row_accounting"),
                ("splits/oot", "no_customer_leakage"), ("splits/consolidated", "consolidated_matches_shards")}


def write_inbox(root: Path, rows: int = 400) -> None:
    inbox = root / "inbox" / "transactions"
    for number, fmt in SHARDS.items():
        write_shard(make_rows(rows, seed=number, n_customers=120, dirty=True), inbox / f"part-{number:05d}.{fmt}")


def clear_outputs(root: Path) -> None:
    for sub in ("warehouse", "exports"):
        shutil.rmtree(root / sub, ignore_errors=True)


def embedded_outputs(data_root: Path, instance, into: Path) -> Path:
    """The one-step path in process (the embedded default), its outputs copied to ``into``."""
    result = make_defs().resolve_job_def("splits_job").execute_in_process(instance=instance, tags=TAGS)
    assert result.success
    assert checks_of(result) == dict.fromkeys(ERROR_CHECKS, True)
    for sub in ("warehouse", "exports"):
        shutil.copytree(data_root / sub, into / sub)
    clear_outputs(data_root)
    return into


@pytest.fixture
def shards(data_root, instance):
    write_inbox(data_root)
    instance.add_dynamic_partitions(PARTITIONS_NAME, KEYS)
    return data_root


@pytest.fixture
def fanout_modules(monkeypatch):
    """The code location as a cluster executor loads it: the splits as fan-out graphs. The
    embedded modules are restored afterwards (other tests of this process import them)."""
    import assets_pkg.definitions as top
    import assets_pkg.splits.definitions as splits_definitions

    def load(executor: str):
        monkeypatch.setenv("ASSETS_PKG_EXECUTOR", executor)
        importlib.reload(splits_definitions)
        return importlib.reload(top).defs

    try:
        yield load
    finally:
        monkeypatch.delenv("ASSETS_PKG_EXECUTOR", raising=False)
        importlib.reload(splits_definitions)
        importlib.reload(top)


def fanout_defs_in_process() -> dg.Definitions:
    """The fan-out graphs run by the in-process executor (the steps are the same; this only
    saves the process start-up of each)."""
    from assets_pkg.splits import definitions as splits_definitions
    from assets_pkg.splits.fanout_assets import shard_profile_fanout, split_shards_fanout
    from assets_pkg.splits.assets import consolidated, customer_allocation

    assets = [shard_profile_fanout, customer_allocation, split_shards_fanout, consolidated]
    defs = make_defs()
    job = dg.define_asset_job("splits_job", selection=dg.AssetSelection.assets(*assets))
    assert splits_definitions.fanout_enabled() is False  # the embedded default stays one step
    return dg.Definitions(assets=assets, jobs=[job], resources=defs.resources, executor=dg.in_process_executor)


@pytest.mark.slow
def test_fanout_on_the_multiprocess_executor_equals_the_one_step_run(shards, instance, tmp_path, monkeypatch,
                                                                     fanout_modules):
    from assets_pkg.cluster import execute_selection

    want = embedded_outputs(shards, instance, tmp_path / "embedded")
    monkeypatch.setenv("SPLITS_SHARDS_PER_STEP", "2")
    defs = fanout_modules("multiprocess")
    result = execute_selection(defs, instance, tags=TAGS, job_name="splits_job")
    assert result.success
    events = result.all_events
    done = [e.step_key for e in events if e.event_type_value == "STEP_SUCCESS"]
    assert sum("splits_profile_batch[" in s for s in done) == 3  # 5 shards, 2 per step
    assert sum("splits_split_batch[" in s for s in done) == 3
    assert sum(s == "splits__customer_allocation" for s in done) == 1
    assert sum(s == "splits__consolidated" for s in done) == 1
    checks = {(e.event_specific_data.asset_key.to_user_string(), e.event_specific_data.check_name):
              e.event_specific_data.passed
              for e in events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert {k: v for k, v in checks.items() if k in ERROR_CHECKS} == dict.fromkeys(ERROR_CHECKS, True)
    assert set(checks) == ERROR_CHECKS | {("splits/customer_allocation", "split_ratio")}
    assert_same_outputs(shards, want)
    # the steps ran in processes of their own, and left no staging behind
    assert len({e.pid for e in events if e.event_type_value == "STEP_START"}) >= 8
    assert not any((shards / "warehouse" / "splits" / "_staging").glob("*/*"))
    # each partition's own row count and bytes, as the one-step run records them
    for name in ("shard_profile", "train", "oot"):
        key = dg.AssetKey(["splits", name])
        records = instance.fetch_materializations(key, limit=100).records
        by_partition = {r.partition_key: r.asset_materialization.metadata for r in records
                        if r.run_id == result.run_id}
        assert set(by_partition) == set(KEYS)
        for partition, meta in by_partition.items():
            path = next((shards / "warehouse" / "splits" / name).glob(f"part-{partition}.*"), None)
            assert meta["bytes"].value == (path.stat().st_size if path else 0)
            assert meta["dagster/row_count"].value >= 0


@pytest.mark.slow
def test_outputs_do_not_depend_on_the_batch_size(shards, instance, tmp_path, monkeypatch):
    want = embedded_outputs(shards, instance, tmp_path / "embedded")
    for per_step in (1, 2, len(KEYS)):
        monkeypatch.setenv("SPLITS_SHARDS_PER_STEP", str(per_step))
        job = fanout_defs_in_process().resolve_job_def("splits_job")
        result = job.execute_in_process(instance=instance, tags=TAGS)
        assert result.success
        steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
        batches = -(-len(KEYS) // per_step)
        assert sum("splits_profile_batch[" in s for s in steps) == batches, per_step
        assert sum("splits_split_batch[" in s for s in steps) == batches, per_step
        assert checks_of(result) == dict.fromkeys(ERROR_CHECKS, True)
        assert_same_outputs(shards, want)
        # one materialization per partition of each shard asset, as the one-step run records
        for name in ("shard_profile", "train", "val", "oot"):
            mats = [m for m in result.get_asset_materialization_events()
                    if m.asset_key == dg.AssetKey(["splits", name])]
            assert sorted(m.partition for m in mats) == KEYS, (per_step, name)
        clear_outputs(shards)


def test_a_new_allocation_between_plan_and_batch_stops_the_step_naming_the_manifest(data_root):
    from assets_pkg.splits import fanout
    from assets_pkg.splits.pipeline import manifest_file, read_json

    warehouse = data_root / "warehouse"
    manifest_file(warehouse).parent.mkdir(parents=True)
    manifest_file(warehouse).write_text(json.dumps({"labels": ["a", "b"], "shards": {"00001": {"fingerprint": "f"}}}))
    manifest = read_json(manifest_file(warehouse))
    pin = fanout.allocation_pin(manifest)
    assert fanout.pinned_manifest(warehouse, pin) == manifest
    manifest["label_rate"] = {"train": {"1": 0.5}}  # pass 2's finish rewrites only this: still pinned
    manifest_file(warehouse).write_text(json.dumps(manifest))
    assert fanout.pinned_manifest(warehouse, pin)["label_rate"] == {"train": {"1": 0.5}}
    manifest["shards"]["00002"] = {"fingerprint": "g"}  # another run's allocation
    manifest_file(warehouse).write_text(json.dumps(manifest))
    with pytest.raises(fanout.FanoutError, match="split_manifest.json changed since this run planned pass 2"):
        fanout.pinned_manifest(warehouse, pin)
    manifest_file(warehouse).unlink()
    with pytest.raises(fanout.FanoutError, match="split_manifest.json is gone"):
        fanout.pinned_manifest(warehouse, pin)


def test_batches_cover_the_keys_in_order():
    from assets_pkg.batching import batches
    from assets_pkg.splits.fanout import SplitsFanoutSettings

    assert batches(KEYS, 2) == [KEYS[0:2], KEYS[2:4], KEYS[4:]]
    assert batches(KEYS, 99) == [KEYS] and batches([], 3) == []
    # as few batches as the size allows, of even sizes: 4 + 4 + 1 would leave a short last step
    assert batches(KEYS, 4) == [KEYS[0:3], KEYS[3:]]
    many = [str(i) for i in range(21)]
    assert [len(b) for b in batches(many, 5)] == [5, 4, 4, 4, 4]
    assert [len(b) for b in batches(many, 8)] == [7, 7, 7]
    for size in range(1, 23):
        got = batches(many, size)
        assert sum(got, []) == many and len(got) == -(-len(many) // size)
        assert max(map(len, got)) <= size and max(map(len, got)) - min(map(len, got)) <= 1
    with pytest.raises(Exception, match="SPLITS_SHARDS_PER_STEP"):
        SplitsFanoutSettings(shards_per_step=0)


def _run_in_subprocess(root: Path, log: Path, executor: str = "multiprocess", prelude: str = "",
                       env: dict | None = None) -> subprocess.Popen:
    """splits_job over the test's shards in a process of its own; ``prelude``: code run first;
    ``env``: its environment (this process's by default)."""
    script = (
        prelude +
        "import sys\n"
        "from assets_pkg.definitions import defs\n"
        "from assets_pkg.cluster import execute_selection\n"
        "from assets_pkg.instance import open_instance\n"
        f"tags = {TAGS!r}\n"
        "with open_instance() as instance:\n"
        "    result = execute_selection(defs, instance, tags=tags, job_name='splits_job', raise_on_error=False)\n"
        "sys.exit(0 if result.success else 3)\n"
    )
    env = {**(env or os.environ), "ASSETS_PKG_EXECUTOR": executor, "SPLITS_SHARDS_PER_STEP": "2"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(REPO)]))
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-c", script], env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=root.parent)


def _split_step_pids(instance) -> tuple:
    """The newest run and the pids of its pass-2 batch steps that have started."""
    runs = instance.get_runs(limit=1)
    if not runs:
        return None, set()
    starts = [e.dagster_event for e in instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.STEP_START)
              if e.dagster_event and e.dagster_event.step_key.startswith("split_shards.splits_split_batch[")]
    return runs[0], {e.pid for e in starts}


# a pass-2 batch step (two shards, split side by side) held at its second publish: one
# shard's splits published, the other's written by DuckDB into their temp folder and not
# published; the kill always lands there (with 400 rows a shard, a free-running step would
# have finished before any poll saw it writing)
HOLD_AT_SECOND_PUBLISH = """
    def patch(module):
        import itertools

        publish, calls = module.publish_files, itertools.count(1)

        def held(finished):
            if next(calls) == 2:
                hold()
            return publish(finished)

        module.publish_files = held
"""


@pytest.mark.slow
def test_a_pass2_step_killed_mid_write_leaves_no_partial_partition_and_a_rerun_equals_a_clean_run(
        data_root, instance, tmp_path):
    write_inbox(data_root)
    instance.add_dynamic_partitions(PARTITIONS_NAME, KEYS)
    clean = embedded_outputs(data_root, instance, tmp_path / "clean")
    splits = data_root / "warehouse" / "splits"

    hold = tmp_path / "hold"
    env = hold_env(dict(os.environ), hold, "assets_pkg.splits.pass2", HOLD_AT_SECOND_PUBLISH)
    log = tmp_path / "killed.log"
    killed = _run_in_subprocess(data_root, log, env=env)
    try:
        pid = wait_for("a pass-2 step held before its second publish",
                       lambda: held_pid(hold) if killed.poll() is None else pytest.fail(log.read_text()[-3000:]),
                       240, interval=0.05)
        run, step_pids = _split_step_pids(instance)
        assert pid in step_pids, (pid, step_pids)
        # its unpublished shard's splits, in a temp folder named by the writer
        assert any(f"-{pid}-" in name and any((splits / name).rglob("*.parquet")) for name in _temps(splits)), \
            _temps(splits)
        os.kill(pid, signal.SIGKILL)
        release(hold)  # the other batch step (it may be held too) goes on
        assert killed.wait(timeout=240) == 3, log.read_text()[-3000:]
    finally:
        if killed.poll() is None:
            killed.kill()
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    # every visible output partition is complete: the clean run's file, row for row (a temp
    # the killed step left is hidden, ".<name>.tmp-...", and removed by the next writer)
    visible = {rel: p for rel, p in _data_files(data_root).items()
               if any(f"splits/{n}/" in rel for n in ("train", "val", "oot")) and not p.name.startswith(".")}
    assert visible, "the step was killed before it published any partition"
    clean_files = _data_files(clean)
    for rel, path in visible.items():
        assert rel in clean_files, rel
        assert_same_outputs_one(path, clean_files[rel])
    assert not (data_root / "exports" / "splits").exists()
    assert any(f"-{pid}-" in name for name in _temps(splits)), _temps(splits)

    rerun = _run_in_subprocess(data_root, tmp_path / "rerun.log")
    assert rerun.wait(timeout=400) == 0, (tmp_path / "rerun.log").read_text()[-3000:]
    assert _temps(splits) == []  # the killed writer's temp folder went with the re-split of its shard
    # the killed run's step messages stay for a re-execution from failure (until
    # layout.STALE_STAGING_S); the re-run removed its own
    staging = splits / "_staging"
    assert sorted(p.name for p in staging.iterdir()) == [run.run_id]
    shutil.rmtree(staging / run.run_id)
    assert_same_outputs(data_root, clean)


def assert_same_outputs_one(got: Path, want: Path) -> None:
    from assets_pkg_tests.test_cluster import _rows

    assert _rows(got) == _rows(want), got


# pass 2 of the one-step path dies (SIGKILL, as the OOM killer would) once DuckDB has written
# a shard's splits into its temp folder, before they are published
DIE_BEFORE_PUBLISH = (
    "import os, signal\n"
    "import assets_pkg.splits.pass2 as pass2\n"
    "pass2.publish_files = lambda finished: os.kill(os.getpid(), signal.SIGKILL)\n"
)


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if is_temp_name(p.name))


def test_a_one_step_pass2_killed_before_publishing_leaves_temps_the_rerun_removes(data_root, instance, tmp_path):
    """The embedded one-step path (one process, in_process executor): the killed writer's
    temp folders (named by its pid) are gone after the re-run, a live writer's temp of the
    same shard is kept, and the outputs equal a clean run's."""
    write_inbox(data_root)
    instance.add_dynamic_partitions(PARTITIONS_NAME, KEYS)
    clean = embedded_outputs(data_root, instance, tmp_path / "clean")
    splits = data_root / "warehouse" / "splits"

    killed = _run_in_subprocess(data_root, tmp_path / "killed.log", "in_process", DIE_BEFORE_PUBLISH)
    assert killed.wait(timeout=300) == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-3000:]
    left = _temps(splits)
    assert left and all(f"-{killed.pid}-" in name for name in left), left
    assert any(any((splits / name).rglob("*.parquet")) for name in left)  # a split written, not published
    # a writer of the same shard that still runs on this host (this process)
    live = temp_sibling(splits / KEYS[0])
    live.mkdir()

    result = make_defs().resolve_job_def("splits_job").execute_in_process(instance=instance, tags=TAGS)
    assert result.success
    assert _temps(splits) == [live.name]
    live.rmdir()
    assert_same_outputs(data_root, clean)
