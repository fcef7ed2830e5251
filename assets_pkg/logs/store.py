"""The on-disk segment cache.

Layout: ``<root>/<log_id>/from=<start_ms>/to=<end_ms>/part-NNNNN.parquet`` where root is
``LOG_INGESTION_CACHE_DIR`` (default ``<data root>/cache/logs``). A segment covers exactly
``[start_ms, end_ms)``: every event of the source in that window is in its parts (a window
without events has one zero-row part, so "cached, empty" differs from "not cached").

A segment is written into a hidden temp folder part by part and published with one rename
(:func:`assets_pkg.io.atomic.atomic_dir`); a killed run leaves only ``.tmp-`` names, which
the scanner ignores. One ``fcntl.flock`` per log_id is held from planning to publication.
"""

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from assets_pkg.io.atomic import is_temp_name
from assets_pkg.settings import env_str, get_settings

LOG_ID_RE = re.compile(r"[A-Za-z0-9._-]+")
_FROM_RE = re.compile(r"from=(-?\d+)")
_TO_RE = re.compile(r"to=(-?\d+)")
_PART_RE = re.compile(r"part-(\d{5})\.parquet")
LOCK_NAME = ".lock"

# One fixed schema for every part.
PART_SCHEMA = pa.schema(
    [
        pa.field("timestamp", pa.int64()),
        pa.field("event_id", pa.string()),
        pa.field("level", pa.string()),
        pa.field("message", pa.string()),
        pa.field("attributes", pa.string()),
    ]
)
REMEDY = "delete that segment folder to re-fetch it, or set BYPASS_CACHE=true to read from the source"


class LogCacheError(RuntimeError):
    """Base class: something in the cache is wrong; the message names path and remedy."""


class InvalidLogIdError(ValueError):
    pass


class OverlappingSegmentsError(LogCacheError):
    pass


class CorruptSegmentError(LogCacheError):
    pass


class CacheWriteError(LogCacheError):
    pass


def validate_log_id(log_id) -> str:
    if not isinstance(log_id, str) or not LOG_ID_RE.fullmatch(log_id) or log_id in (".", ".."):
        raise InvalidLogIdError(
            f"log_id {log_id!r} is invalid: use letters, digits, '.', '_' or '-' "
            "(no slashes, not '.' or '..', not empty)"
        )
    return log_id


def cache_root() -> Path:
    """``LOG_INGESTION_CACHE_DIR`` (relative paths are under the data root) or ``<data>/cache/logs``."""
    settings = get_settings()
    raw = env_str("LOG_INGESTION_CACHE_DIR", "")
    if not raw:
        return settings.cache / "logs"
    path = Path(raw).expanduser()
    return (path if path.is_absolute() else Path.cwd() / path).resolve()


@dataclass(frozen=True)
class Segment:
    log_id: str
    start_ms: int
    end_ms: int
    path: Path  # the from=<start>/to=<end> folder

    @property
    def parts(self) -> list[Path]:
        return sorted(p for p in self.path.iterdir() if _PART_RE.fullmatch(p.name))

    @property
    def window(self) -> tuple[int, int]:
        return self.start_ms, self.end_ms

    def intersects(self, start_ms: int, end_ms: int) -> bool:
        return self.start_ms < end_ms and start_ms < self.end_ms

    def as_dict(self) -> dict:
        return {"log_id": self.log_id, "start_ms": self.start_ms, "end_ms": self.end_ms, "path": str(self.path)}


def segment_dir(log_dir: Path, start_ms: int, end_ms: int) -> Path:
    return log_dir / f"from={start_ms}" / f"to={end_ms}"


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


class SegmentStore:
    """Listing, validation, locking and paths of the segments under one cache root."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root).resolve() if root is not None else cache_root()

    def log_dir(self, log_id: str) -> Path:
        validate_log_id(log_id)
        path = (self.root / log_id).resolve()
        if path.parent != self.root:
            raise InvalidLogIdError(f"log_id {log_id!r} resolves to {path}, outside the cache root {self.root}")
        return path

    def log_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and LOG_ID_RE.fullmatch(p.name) and not is_temp_name(p.name))

    # -- listing ------------------------------------------------------------------------
    def segments(self, log_id: str, check_overlaps: bool = True) -> list[Segment]:
        """Every published segment of ``log_id`` sorted by start; overlaps raise."""
        log_dir = self.log_dir(log_id)
        if not log_dir.exists():
            return []
        if not log_dir.is_dir():
            raise CacheWriteError(f"cache path {log_dir} exists but is not a folder; remove it")
        found: list[Segment] = []
        for from_dir in log_dir.iterdir():
            if is_temp_name(from_dir.name) or from_dir.name == LOCK_NAME:
                continue
            m = _FROM_RE.fullmatch(from_dir.name)
            if not m or not from_dir.is_dir():
                raise CorruptSegmentError(
                    f"unexpected entry {from_dir} in the log cache (expected from=<ms> folders); remove it"
                )
            for to_dir in from_dir.iterdir():
                if is_temp_name(to_dir.name):
                    continue
                t = _TO_RE.fullmatch(to_dir.name)
                if not t or not to_dir.is_dir():
                    raise CorruptSegmentError(
                        f"unexpected entry {to_dir} in the log cache (expected to=<ms> folders); remove it"
                    )
                start, end = int(m.group(1)), int(t.group(1))
                if start >= end:
                    raise CorruptSegmentError(f"segment {to_dir} has an empty or reversed window; {REMEDY}")
                found.append(Segment(log_id, start, end, to_dir))
        found.sort(key=lambda s: (s.start_ms, s.end_ms))
        if check_overlaps:
            overlaps = find_overlaps(found)
            if overlaps:
                a, b = overlaps[0]
                raise OverlappingSegmentsError(
                    f"overlapping cached segments for log {log_id!r}: {a.path} [{a.start_ms}, {a.end_ms}) and "
                    f"{b.path} [{b.start_ms}, {b.end_ms}) ({len(overlaps)} overlapping pair(s)); the cache would "
                    f"double count events. Delete one of the folders, or set BYPASS_CACHE=true"
                )
        return found

    def intersecting(self, log_id: str, start_ms: int, end_ms: int) -> list[Segment]:
        return [s for s in self.segments(log_id) if s.intersects(start_ms, end_ms)]

    # -- locking ------------------------------------------------------------------------
    @contextmanager
    def lock(self, log_id: str) -> Iterator[Path]:
        """Exclusive per-log_id lock (``fcntl.flock`` on ``<log dir>/.lock``)."""
        log_dir = self.log_dir(log_id)
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(log_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise CacheWriteError(
                f"cannot create the log cache folder {log_dir} ({exc.strerror or exc}); make "
                f"LOG_INGESTION_CACHE_DIR={self.root} a writable folder, or set BYPASS_CACHE=true"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield log_dir
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def find_overlaps(segments: list[Segment]) -> list[tuple[Segment, Segment]]:
    """Pairs of segments whose windows intersect (input sorted by start)."""
    pairs = []
    ordered = sorted(segments, key=lambda s: (s.start_ms, s.end_ms))
    reach: Segment | None = None
    for seg in ordered:
        if reach is not None and seg.start_ms < reach.end_ms:
            pairs.append((reach, seg))
        if reach is None or seg.end_ms > reach.end_ms:
            reach = seg
    return pairs


def verify_segment(segment: Segment, deep: bool = False) -> int:
    """Check every part of a segment; return its row count or raise CorruptSegmentError.

    Reads the Parquet footer of each part (cheap); ``deep=True`` also decodes the data.
    """
    parts = segment.parts
    if not parts:
        raise CorruptSegmentError(f"segment {segment.path} has no part files; {REMEDY}")
    rows = 0
    for part in parts:
        try:
            pf = pq.ParquetFile(part)
            schema = pf.schema_arrow
            if deep:
                for i in range(pf.num_row_groups):
                    pf.read_row_group(i)
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise CorruptSegmentError(f"cannot read cached part {part}: {exc}; {REMEDY}") from exc
        if not _same_schema(schema, PART_SCHEMA):
            raise CorruptSegmentError(
                f"cached part {part} has schema ({_schema_text(schema)}) but log parts must have "
                f"({_schema_text(PART_SCHEMA)}); {REMEDY}"
            )
        rows += pf.metadata.num_rows
    return rows


def _same_schema(a: pa.Schema, b: pa.Schema) -> bool:
    return [(f.name, f.type) for f in a] == [(f.name, f.type) for f in b]


def _schema_text(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name} {f.type}" for f in schema)
