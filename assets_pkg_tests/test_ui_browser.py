"""The UI end to end in a real browser: `dagster dev` on a fresh data root, Debian's chromium.

One test, in the order a user meets it: the lineage shows the five groups; splits/oot shows
no_customer_leakage passed; a shard dropped into the inbox becomes a sensor run (the daemon of
`dagster dev`, automation on by default) and a materialized partition in the UI within
2 minutes; a planted leak followed by `assets-pkg check` (and, where the check does not record
its result in the instance, a run) shows the check failed in the UI. GraphQL waits for the
state, the browser looks at it; a screenshot of each step is saved under the test's temp dir
and its path printed (pytest shows it on failure, or with -rA).
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from assets_pkg_tests.ui_session import (
    GROUPS,
    NO_CHROMIUM,
    REPO,
    browser_page,
    dagster_dev,
    demo_env,
    find_chromium,
    lineage_graph_groups,
    open_ui,
    run_demo,
    wait_for,
)

NEW_SHARD = "00123"
CHECK = ("splits/oot", "no_customer_leakage")


@pytest.fixture
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip(NO_CHROMIUM)
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    return path


class Screens:
    """Numbered screenshots under one folder; each path printed when taken."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.paths: list[Path] = []

    def take(self, page, name: str) -> Path:
        path = self.folder / f"{len(self.paths) + 1}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.paths.append(path)
        print(f"screenshot: {path}", flush=True)
        return path


def _drop_shard(inbox: Path, number: str) -> Path:
    """A new shard of the demo's kind, published with one rename (the sensor never sees it half written)."""
    from assets_pkg.demo.splits import make_rows, write_shard

    staged = inbox.parents[1] / f"staged-{number}.parquet"  # outside every inbox
    write_shard(make_rows(200, seed=int(number), n_customers=150, start_id=int(number) * 1_000_000), staged)
    final = inbox / f"part-{number}.parquet"
    os.replace(staged, final)
    return final


def _plant_leak(warehouse: Path) -> tuple[str, str]:
    """Give one OOT row a train customer's id (row counts unchanged): that customer is now in
    two splits. Returns (the oot shard changed, the customer)."""
    train = {c for f in sorted((warehouse / "splits" / "train").glob("part-*.parquet"))
             for c in pq.read_table(f, columns=["customer_id"]).column(0).to_pylist() if c}
    for oot_file in sorted((warehouse / "splits" / "oot").glob("part-*.parquet")):
        table = pq.read_table(oot_file)
        if table.num_rows:
            break
    else:
        raise AssertionError("no OOT shard with rows to plant a leak in")
    customer = sorted(train)[0]
    ids = table.column("customer_id").to_pylist()
    ids[0] = customer
    leaked = table.set_column(table.schema.get_field_index("customer_id"), "customer_id",
                              pa.array(ids, type=table.schema.field("customer_id").type))
    staged = oot_file.with_name(f".{oot_file.name}.leak")
    pq.write_table(leaked, staged)
    os.replace(staged, oot_file)
    assert pc.sum(pc.equal(pq.read_table(oot_file).column("customer_id"), customer)).as_py() >= 1
    return oot_file.stem.removeprefix("part-"), customer


@pytest.mark.slow
@pytest.mark.browser
def test_the_ui_shows_lineage_checks_a_sensor_run_and_a_failed_check(chromium, tmp_path, data_root):
    env = demo_env(data_root)
    screens = Screens(tmp_path / "screens")
    run_demo(env, "splits")  # something to see: the splits materialized with their checks

    try:
        with dagster_dev(env, tmp_path / "dagster-dev.log") as server, \
                browser_page(chromium, tmp_path / "chromium-profile") as page:
            # (a) the lineage shows the five groups
            assert set(GROUPS) <= server.group_names()
            nodes = lineage_graph_groups(page, server.url)
            assert all(node.is_visible() for node in nodes.values())
            screens.take(page, "lineage")

            # (b) splits/oot's checks: no_customer_leakage passed
            # (the daemon may be evaluating it again right now: wait for the latest to settle)
            latest = wait_for(f"the latest {CHECK[1]} evaluation", lambda: (
                lambda e: e if e["status"] != "IN_PROGRESS" else None)(server.check_executions(*CHECK, limit=1)[0]), 120)
            assert latest["status"] == "SUCCEEDED" and latest["evaluation"]["success"] is True, latest
            open_ui(page, f"{server.url}/assets/splits/oot?view=checks")
            page.get_by_text(CHECK[1]).first.wait_for(state="visible")
            page.get_by_text("Passed", exact=True).wait_for(state="visible")
            screens.take(page, "oot-check-passed")

            # (c) a shard dropped into the inbox: a sensor run that succeeds, a new partition
            dropped = time.monotonic()
            _drop_shard(data_root / "inbox" / "transactions", NEW_SHARD)
            run_id = wait_for(f"a materialization of splits/train {NEW_SHARD}",
                              lambda: server.materialization_runs("splits/train", NEW_SHARD), 120)[0]
            run = server.finished_run(run_id, max(5.0, 120 - (time.monotonic() - dropped)))
            assert run["status"] == "SUCCESS", run
            assert run["tags"].get("dagster/sensor_name") == "splits_shard_sensor", run["tags"]
            open_ui(page, f"{server.url}/runs/{run_id}")
            page.get_by_text("Success", exact=True).first.wait_for(state="visible")
            page.get_by_text("splits_shard_sensor").first.wait_for(state="visible")
            screens.take(page, "sensor-run-succeeded")
            open_ui(page, f"{server.url}/assets/splits/train?view=partitions")
            page.get_by_text(NEW_SHARD, exact=True).first.click()
            page.get_by_text(run_id[:8]).first.wait_for(state="visible")  # the partition's run
            assert time.monotonic() - dropped < 120, "the new partition took longer than 2 minutes"
            screens.take(page, "new-partition")

            # (d) a planted leak, then `assets-pkg check`: the CLI fails it ...
            before = {e["id"] for e in server.check_executions(*CHECK)}
            leaked_shard, customer = _plant_leak(data_root / "warehouse")
            check = subprocess.run([sys.executable, "-m", "assets_pkg.cli", "check", "--group", "splits"],
                                   env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
            assert check.returncode == 1, check.stdout + check.stderr
            assert any(line.startswith("FAIL") and CHECK[1] in line for line in check.stdout.splitlines()), check.stdout
            # ... and the UI shows it failed: recorded by the check itself where it records its
            # results in the instance, else by a run of the splits (the check runs in their op
            # over every shard, so a run of another shard evaluates the leaked one too)
            new = [e for e in server.check_executions(*CHECK) if e["id"] not in before]
            if not new:
                other = next(k for k in ("00001", "00005", "00010", "00042", "00099") if k != leaked_shard)
                leak_run = server.finished_run(server.launch("splits_job", {"dagster/partition": other}), 120)
                print(f"assets-pkg check recorded nothing in the instance; run {leak_run['runId']} "
                      f"of splits_job on shard {other} evaluated the check: {leak_run['status']}")
                new = [e for e in server.check_executions(*CHECK) if e["id"] not in before]
            assert new and new[0]["evaluation"]["success"] is False, new
            open_ui(page, f"{server.url}/assets/splits/oot?view=checks")
            page.get_by_text("Failed", exact=True).first.wait_for(state="visible")
            page.get_by_text("train∩oot=1").first.wait_for(state="visible")
            screens.take(page, "oot-check-failed")
            print(f"planted customer {customer} of train into oot shard {leaked_shard}")
    finally:
        print("screenshots:\n" + "\n".join(f"  {p}" for p in screens.paths))
