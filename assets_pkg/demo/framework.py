"""The demo runner's plumbing: run assets and sensors on the real instance, and report.

A domain's demo module (``assets_pkg/demo/<domain>.py``) gets a :class:`DemoContext` and
uses it the way the daemon and the UI would: evaluate a sensor tick and launch what it
asks for, or materialize a selection over a partition or a partition range. Every run is
a run of the code location's named job (:mod:`assets_pkg.location`) and every sensor
cursor lives in the instance, so the UI shows the demo's history and a daemon switched on
afterwards continues from it.
"""

import os
import shutil
import sys
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from assets_pkg.checking import ERROR, WARN
from assets_pkg.dagster_layer import materialize_selection, with_console_level
from assets_pkg.inbox import wait_settled
from assets_pkg.location import evaluate_sensor_tick, execute_job, job_for_assets
from assets_pkg.run_tags import RANGE_END_TAG, RANGE_START_TAG
from assets_pkg.io.atomic import atomic_path
from assets_pkg.settings import Settings
from assets_pkg.storage import as_path, is_remote, local_scratch


@contextmanager
def stderr_to(path: Path):
    """Send everything written to stderr while the block runs to ``path`` (file descriptor 2,
    so Dagster's console logger, its DEBUG engine events, warnings and any run subprocess
    too): the report, printed after, is not buried under them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "wb") as log:
            os.dup2(log.fileno(), 2)
            try:
                yield path
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


@dataclass
class DemoReport:
    lines: list[str] = field(default_factory=list)
    # (asset, check) -> [evaluations passed, evaluations failed, severity]
    checks: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0, WARN]))
    errors: list[str] = field(default_factory=list)
    expected: set = field(default_factory=set)

    def section(self, title: str) -> None:
        self.lines.append("")
        self.lines.append(f"== {title}")

    def line(self, text: str) -> None:
        self.lines.append(f"   {text}")

    def record_check_evaluations(self, evaluations) -> None:
        for ev in evaluations:
            entry = self.checks[(ev.asset_key.to_user_string(), ev.check_name)]
            entry[0 if ev.passed else 1] += 1
            entry[2] = "ERROR" if ev.severity == dg.AssetCheckSeverity.ERROR else WARN

    @property
    def failed_error_checks(self) -> list[str]:
        return [f"{a}:{c}" for (a, c), (_, failed, sev) in self.checks.items() if failed and sev == ERROR]

    def expect_checks(self, checks) -> None:
        """Every check the report lists, evaluated or not: ``(asset, check)`` pairs."""
        self.expected.update(checks)

    def render(self) -> str:
        out = list(self.lines)
        out.append("")
        out.append("== Checks: every check of the demo's groups and the check evaluations this demo recorded")
        out.append("   (one per run that evaluated the check, or one per partition for a per-partition check:")
        out.append("   a count of evaluations, not of partitions)")
        names = {key: f"{key[0]}:{key[1]}" for key in set(self.checks) | self.expected}
        width = max(map(len, names.values()), default=0)
        for key in sorted(names):
            if key not in self.checks:
                out.append(f"   {'--':4}  {names[key]:<{width}}  not evaluated in this demo (no run of its asset)")
                continue
            passed, failed, sev = self.checks[key]
            status = "PASS" if not failed else ("FAIL" if sev == ERROR else "WARN")
            out.append(f"   {status:4}  {names[key]:<{width}}  {passed:>3} passed {failed:>3} failed  [{sev}]")
        if self.errors:
            out.append("")
            out.append("== Errors")
            out.extend(f"   {e}" for e in self.errors)
        return "\n".join(out)


@dataclass
class DemoContext:
    settings: Settings
    instance: dg.DagsterInstance
    defs: dg.Definitions
    report: DemoReport
    scale: str = "demo"

    # -- running assets --------------------------------------------------------------------
    def materialize(self, selection, partition_key: str | None = None,
                    partition_range: tuple[str, str] | None = None, run_config=None, tags=None):
        """One in-process run on the real instance, through the named job that holds the
        selection (a run of the code location, shown in that job's Runs tab); records its
        check evaluations."""
        run_tags = dict(tags or {})
        if partition_range is not None:
            run_tags[RANGE_START_TAG], run_tags[RANGE_END_TAG] = partition_range
        keys = list(dg.AssetSelection.from_coercible(selection).resolve(self.defs.resolve_asset_graph()))
        job_name = job_for_assets(self.defs, keys)
        if job_name is None:  # definitions without a job for it (a test's partial defs)
            result = materialize_selection(self.defs, self.instance, keys, partition_key, run_config, run_tags)
        else:
            result = execute_job(self.defs, self.instance, job_name, partition_key=partition_key,
                                 run_config=with_console_level(run_config), tags=run_tags, asset_selection=keys)
        self.report.record_check_evaluations(result.get_asset_check_evaluations())
        return result

    def execute_job(self, job_name: str, run_config=None):
        """One run of a named op job (e.g. ``logs_fetch_window_job``) on the real instance."""
        return execute_job(self.defs, self.instance, job_name, run_config=with_console_level(run_config))

    # -- sensors ---------------------------------------------------------------------------
    def evaluate_sensor(self, name: str) -> list:
        """One tick, done the way the daemon does it (:func:`assets_pkg.location.evaluate_sensor_tick`:
        the cursor kept in the instance, runs launched through the sensor's job). Returns
        the run results."""
        wait_settled(self.settings.inbox)  # sample files written a moment ago would wait for a later tick
        tick = evaluate_sensor_tick(self.defs, self.instance, name, run_config=with_console_level(None))
        for result in tick.results:
            self.report.record_check_evaluations(result.get_asset_check_evaluations())
        if tick.skip_message:
            self.report.line(f"sensor {name}: {tick.skip_message}")
        return tick.results


@contextmanager
def inbox_writer(inbox: Path):
    """Yield the folder a generator writes an inbox's sample files into: the inbox itself on
    a local root; on an object-store root a local scratch folder whose files are then
    published one by one into the inbox, each in one complete PUT (a sensor listing the
    inbox never sees half a file)."""
    inbox = as_path(inbox)
    if not is_remote(inbox):
        inbox.mkdir(parents=True, exist_ok=True)
        yield inbox
        return
    work = local_scratch("demo_inbox") / inbox.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        yield work
        for local in sorted(p for p in work.rglob("*") if p.is_file()):
            with atomic_path(inbox / local.relative_to(work).as_posix()) as tmp:
                shutil.copyfile(local, tmp)
    finally:
        shutil.rmtree(work, ignore_errors=True)
