"""Progress by bytes read, with rows per second and an ETA.

Bytes are the file's own bytes (compressed bytes for gzip), so percent and ETA are true
for compressed input too. Events go to a callback (e.g. Dagster's ``context.log.info``,
which gets ``str(event)``), else to a bar on a terminal, else to ``logging``.
"""

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger("assets_pkg.reader")


@dataclass(frozen=True)
class ProgressEvent:
    bytes_read: int
    total_bytes: int
    rows: int
    rows_per_second: float
    eta_seconds: float | None  # None until a rate is known
    percent: float
    elapsed_seconds: float = 0.0
    path: str = ""
    done: bool = False

    def __str__(self) -> str:
        return format_progress(self)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _human_seconds(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def format_progress(event: ProgressEvent) -> str:
    """One line: ``name  42.0%  12.3 MiB / 29.3 MiB  1,234,567 rows  500,000 rows/s  ETA 0:03``."""
    name = event.path.rsplit("/", 1)[-1] if event.path else "read"
    eta = "done" if event.done else f"ETA {_human_seconds(event.eta_seconds)}"
    return (
        f"{name} {event.percent:5.1f}% {_human_bytes(event.bytes_read)} / {_human_bytes(event.total_bytes)} "
        f"{event.rows:,} rows {event.rows_per_second:,.0f} rows/s {eta}"
    )


def _terminal_bar(event: ProgressEvent) -> None:
    width = 24
    filled = int(width * min(event.percent, 100.0) / 100)
    bar = "#" * filled + "-" * (width - filled)
    sys.stderr.write(f"\r[{bar}] {format_progress(event)}\x1b[K")
    if event.done:
        sys.stderr.write("\n")
    sys.stderr.flush()


def default_sink() -> Callable[[ProgressEvent], None]:
    """A bar when stderr is a terminal, log lines otherwise."""
    if sys.stderr.isatty():
        return _terminal_bar
    return lambda event: logger.info(format_progress(event))


class ProgressTracker:
    """Emits a ProgressEvent at most every ``interval`` seconds, and once at the end."""

    def __init__(self, path: str, total_bytes: int, interval: float, sink: Callable[[ProgressEvent], None] | None):
        self.path = path
        self.total_bytes = total_bytes
        self.interval = interval
        self.sink = sink
        self.started = time.perf_counter()
        self.last_emit = self.started

    def event(self, bytes_read: int, rows: int, done: bool = False) -> ProgressEvent:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        bytes_read = min(bytes_read, self.total_bytes) if self.total_bytes else bytes_read
        percent = 100.0 if done else (100.0 * bytes_read / self.total_bytes if self.total_bytes else 0.0)
        byte_rate = bytes_read / elapsed
        eta = 0.0 if done else ((self.total_bytes - bytes_read) / byte_rate if byte_rate > 0 else None)
        return ProgressEvent(
            bytes_read=bytes_read,
            total_bytes=self.total_bytes,
            rows=rows,
            rows_per_second=round(rows / elapsed, 1),
            eta_seconds=None if eta is None else round(eta, 2),
            percent=round(percent, 2),
            elapsed_seconds=round(elapsed, 3),
            path=self.path,
            done=done,
        )

    def update(self, bytes_read: int, rows: int) -> None:
        if self.sink is None:
            return
        now = time.perf_counter()
        if now - self.last_emit >= self.interval:
            self.last_emit = now
            self.sink(self.event(bytes_read, rows))

    def finish(self, bytes_read: int, rows: int) -> None:
        if self.sink is not None:
            self.sink(self.event(bytes_read, rows, done=True))
