"""Observability helpers shared by every domain: structured JSON events, timing, memory.

No dagster import: pure modules log through a standard ``logging.Logger`` or a Dagster
``context.log`` (both have ``.info/.warning/.error``); the JSON text is the same.
"""

import json
import logging
import os
import resource
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil

_default_logger = logging.getLogger("assets_pkg")


def log_event(event: str, logger=None, level: str = "info", **fields) -> dict:
    """Emit one structured event as a JSON line: {"event": ..., **fields}. Returns it."""
    record = {"event": event, **fields}
    text = json.dumps(record, default=str, sort_keys=False)
    getattr(logger or _default_logger, level)(text)
    return record


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    Linux: VmHWM from /proc, because ru_maxrss survives execve and a subprocess started by
    a big parent would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / 2**20 if sys.platform == "darwin" else peak / 1024, 1)


def cpu_seconds() -> float:
    """CPU seconds of this process so far, all threads (user + system): on a shared
    machine a steadier figure than wall time."""
    t = os.times()
    return t.user + t.system


def current_rss_mb() -> float:
    return round(psutil.Process(os.getpid()).memory_info().rss / 2**20, 1)


@dataclass
class Stopwatch:
    started: float = field(default_factory=time.perf_counter)

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self.started, 3)


@contextmanager
def stage(name: str, logger=None, **fields):
    """Time a stage and log ``stage_started`` / ``stage_finished`` JSON events.

    The body may put numbers into the yielded dict (rows, bytes, ...): they are logged with
    the finish event and the caller can attach the same dict as Dagster metadata.
    """
    stats: dict = {"stage": name, **fields}
    watch = Stopwatch()
    log_event("stage_started", logger, **stats)
    try:
        yield stats
    except Exception as exc:
        log_event("stage_failed", logger, level="error", **stats, seconds=watch.seconds, error=str(exc)[:500])
        raise
    stats["seconds"] = watch.seconds
    stats["peak_rss_mb"] = peak_rss_mb()
    if stats.get("rows") is not None and stats["seconds"] > 0:
        stats["rows_per_second"] = round(stats["rows"] / stats["seconds"], 1)
    log_event("stage_finished", logger, **stats)
