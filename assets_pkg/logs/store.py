"""The on-disk segment cache.

Layout: ``LOG_INGESTION_CACHE_DIR/logs/<log_id>/from=<start_ms>/to=<end_ms>/part-NNNNN.parquet``
(default ``LOG_INGESTION_CACHE_DIR`` = ``<data root>/cache``). :class:`SegmentStore`'s root is
the ``logs`` folder holding the log ids. A segment covers exactly
``[start_ms, end_ms)``: every event of the source in that window is in its parts (a window
without events has one zero-row part, so "cached, empty" differs from "not cached").

A segment is written into a hidden temp folder part by part and published with one rename
(:func:`assets_pkg.io.atomic.atomic_dir`); a killed run leaves only ``.tmp-`` names, which
the scanner ignores. On an object-store root (``ASSETS_PKG_DATA_DIR`` or
``LOG_INGESTION_CACHE_DIR`` a URL) the parts are uploaded and a commit object written last:
a ``to=`` folder without one (a killed upload) does not exist for the scanner, the planner
and the checks, and is re-fetched. One lock per log_id (``io.locks.hold``: flock locally, an
S3 lease on a remote root) is held from planning to publication.

Each segment carries ``segment.json`` (written into the temp folder before the rename): the
window it was fetched for, its row count, timestamp min/max and rows per part. A folder
whose name claims another window than its manifest is refused; segments published before
manifests existed are verified by their data (every timestamp inside the folder's window).
Parts are written with page checksums so the deep check catches a flipped byte in any page.
"""

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import pyarrow.compute as pc

from assets_pkg import layout
from assets_pkg.io.atomic import atomic_write_json, is_temp_name
from assets_pkg.io.locks import confirm_held, hold
from assets_pkg.settings import env_str
from assets_pkg.storage import as_path, is_remote
from assets_pkg.storage import objects as remote_objects
from assets_pkg.storage.arrow import parquet_file

LOG_ID_RE = re.compile(r"[A-Za-z0-9._-]+")
LOG_ID_MAX_LENGTH = 128
MANIFEST_NAME = "segment.json"
MANIFEST_FORMAT = 1
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


class LogsError(RuntimeError):
    """Base class of the logs domain's errors: the CLI prints the message as one line."""


class LogCacheError(LogsError):
    """Something in the cache is wrong; the message names path and remedy."""


class InvalidLogIdError(LogsError, ValueError):
    pass


class OverlappingSegmentsError(LogCacheError):
    pass


class CorruptSegmentError(LogCacheError):
    pass


class CacheWriteError(LogCacheError):
    pass


class LegacyCacheLayoutError(LogCacheError):
    """Segments found where an explicit LOG_INGESTION_CACHE_DIR kept them before ``logs/``."""


def validate_log_id(log_id) -> str:
    """A log id is a folder name under the cache root: letters, digits, '.', '_' and '-',
    at most 128 characters, not starting or ending with '.', no '..' (no hidden folder,
    no '.lock', nothing a file system or another tool treats specially)."""
    if isinstance(log_id, str) and len(log_id) > LOG_ID_MAX_LENGTH:
        raise InvalidLogIdError(
            f"log_id {log_id[:40]!r}... is {len(log_id)} characters long: log ids are at most "
            f"{LOG_ID_MAX_LENGTH} characters (each is a folder name in the cache)"
        )
    if (not isinstance(log_id, str) or not LOG_ID_RE.fullmatch(log_id) or log_id.startswith(".")
            or log_id.endswith(".") or ".." in log_id):
        raise InvalidLogIdError(
            f"log_id {log_id!r} is invalid: use letters, digits, '.', '_' or '-' (no slashes, not empty, "
            "not starting or ending with '.', no '..')"
        )
    return log_id


def is_log_id(name: str) -> bool:
    try:
        validate_log_id(name)
    except InvalidLogIdError:
        return False
    return True


CACHE_SUBFOLDER = "logs"


def _resolved(location) -> Path:
    """A local folder made absolute (relative to the working folder); a URL as it is."""
    path = as_path(location)
    if is_remote(path):
        return path
    path = path.expanduser()
    return (path if path.is_absolute() else Path.cwd() / path).resolve()


def ingestion_cache_dir() -> Path | None:
    """``LOG_INGESTION_CACHE_DIR`` resolved (relative to the working folder, or a URL), or None when unset."""
    raw = env_str("LOG_INGESTION_CACHE_DIR", "")
    return _resolved(raw) if raw else None


def cache_root() -> Path:
    """The folder holding the log ids: ``LOG_INGESTION_CACHE_DIR/logs``, by default
    ``<data root>/cache/logs`` (the cache root ``<data root>/cache``)."""
    base = ingestion_cache_dir()
    return layout.cache_dir(CACHE_SUBFOLDER) if base is None else base / CACHE_SUBFOLDER


@dataclass(frozen=True)
class Segment:
    log_id: str
    start_ms: int
    end_ms: int
    path: Path  # the from=<start>/to=<end> folder

    @property
    def parts(self) -> list[Path]:
        if is_remote(self.path):  # the committed parts, never a listing of the folder
            committed = remote_objects.committed_files(self.path, "part-*.parquet")
            return [p for p in committed if _PART_RE.fullmatch(p.name)]
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

    def __init__(self, root: Path | str | None = None, legacy_root: Path | str | None = None):
        self.root = _resolved(root) if root is not None else cache_root()
        # Before the ``logs`` subfolder, an explicit LOG_INGESTION_CACHE_DIR held the log ids
        # itself; segments still there are refused by name instead of silently re-fetched.
        if root is None and legacy_root is None:
            legacy_root = ingestion_cache_dir()
        self.legacy_root = _resolved(legacy_root) if legacy_root is not None else None

    @property
    def remote(self) -> bool:
        return is_remote(self.root)

    def log_dir(self, log_id: str) -> Path:
        validate_log_id(log_id)
        if self.remote:
            return self.root / log_id  # a valid log id is one key segment: nothing to resolve
        path = (self.root / log_id).resolve()
        if path.parent != self.root:
            raise InvalidLogIdError(f"log_id {log_id!r} resolves to {path}, outside the cache root {self.root}")
        return path

    def log_ids(self) -> list[str]:
        if self.remote:
            self.root.fs.invalidate_cache(self.root.path)
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if is_log_id(p.name) and p.is_dir())

    # -- listing ------------------------------------------------------------------------
    def segments(self, log_id: str, check_overlaps: bool = True) -> list[Segment]:
        """Every published segment of ``log_id`` sorted by start; overlaps raise."""
        log_dir = self.log_dir(log_id)
        self.refuse_legacy_layout(log_id)
        if self.remote:
            found = [Segment(log_id, start, end, folder)
                     for (start, end), (folder, committed) in self.remote_folders(log_id).items() if committed]
            return self._sorted_checked(log_id, found, check_overlaps)
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
        return self._sorted_checked(log_id, found, check_overlaps)

    def remote_folders(self, log_id: str) -> dict[tuple[int, int], tuple[Path, bool]]:
        """Every ``from=/to=`` folder of ``log_id`` in the object store, committed or not
        (``{(start, end): (folder, has a commit)}``), from one listing of the log's prefix.
        Objects that fit no segment folder fail as in a local cache."""
        log_dir = self.log_dir(log_id)
        log_dir.fs.invalidate_cache(log_dir.path)  # another process (machine) may have published since
        # objects under the log's prefix only: a store that keeps emptied folders (SeaweedFS)
        # answers a listing of an empty one with the folder itself
        folders: dict[tuple[int, int], tuple[Path, bool]] = {}
        for relative in remote_objects.list_objects(log_dir):
            if relative == LOCK_NAME:
                continue
            pieces = relative.split("/")
            m = _FROM_RE.fullmatch(pieces[0])
            t = _TO_RE.fullmatch(pieces[1]) if m and len(pieces) > 2 else None
            if t is None:
                raise CorruptSegmentError(
                    f"unexpected object {log_dir / relative} in the log cache (expected "
                    f"from=<ms>/to=<ms>/<part> objects); remove it"
                )
            start, end = int(m.group(1)), int(t.group(1))
            if start >= end:
                raise CorruptSegmentError(f"segment {log_dir / pieces[0] / pieces[1]} has an empty or reversed "
                                          f"window; {REMEDY}")
            folder, committed = folders.get((start, end), (log_dir / pieces[0] / pieces[1], False))
            folders[(start, end)] = (folder, committed or pieces[2:] == [remote_objects.COMMIT_NAME])
        return folders

    def remove_uncommitted(self, log_id: str) -> int:
        """Delete the objects of ``from=/to=`` folders that no commit lists, older than the
        grace (``ASSETS_PKG_UNCOMMITTED_GRACE_S``): a killed fetch's upload. Under the log's
        lock no live writer of this cache uploads there; the grace covers one whose lease
        was lost."""
        if not self.remote:
            return 0
        grace = remote_objects.uncommitted_grace_s()
        return sum(remote_objects.remove_uncommitted(folder, older_than_s=grace)
                   for folder, committed in self.remote_folders(log_id).values() if not committed)

    def _sorted_checked(self, log_id: str, found: list[Segment], check_overlaps: bool) -> list[Segment]:
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

    def legacy_log_dir(self, log_id: str) -> Path | None:
        """``LOG_INGESTION_CACHE_DIR/<log_id>`` when it holds segments of the old layout."""
        if self.legacy_root is None or self.legacy_root == self.root:
            return None
        old = self.legacy_root / validate_log_id(log_id)
        if not old.is_dir():
            return None
        try:
            return old if any(_FROM_RE.fullmatch(p.name) and p.is_dir() for p in old.iterdir()) else None
        except OSError:
            return None

    def refuse_legacy_layout(self, log_id: str) -> None:
        old = self.legacy_log_dir(log_id)
        if old is None:
            return
        new = self.root / log_id
        raise LegacyCacheLayoutError(
            f"log {log_id!r} has cached segments at {old}, the layout before LOG_INGESTION_CACHE_DIR got its "
            f"'{CACHE_SUBFOLDER}' subfolder; segments now live under {new}. Move them (mkdir -p {self.root} && "
            f"mv {old} {new}), or delete {old} to re-fetch; if {new} already exists, merge whole from=/to= "
            f"folders with no fetch running.{self._root_hint()} Nothing was fetched or written"
        )

    def _root_hint(self) -> str:
        # LOG_INGESTION_CACHE_DIR=<data>/cache/logs spelled out (the old default): the folder
        # above is the root meaning the same place, no move needed.
        if self.legacy_root is not None and self.legacy_root.name == CACHE_SUBFOLDER:
            return f" Or set LOG_INGESTION_CACHE_DIR={self.legacy_root.parent}, which names the same place."
        return ""

    # -- locking ------------------------------------------------------------------------
    def ensure_log_dir(self, log_id: str) -> Path:
        log_dir = self.log_dir(log_id)
        if self.remote:
            return log_dir  # an object store has no folders to create
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheWriteError(
                f"cannot create the log cache folder {log_dir} ({exc.strerror or exc}); make "
                f"LOG_INGESTION_CACHE_DIR (segments under {self.root}) a writable folder, or set BYPASS_CACHE=true"
            ) from exc
        return log_dir

    @contextmanager
    def lock(self, log_id: str) -> Iterator[Path]:
        """Exclusive per-log_id lock on ``<log dir>/.lock`` (``io.locks.hold``: the holder is
        named in the file, a second fetcher waits up to DOMAIN_LOCK_TIMEOUT_S)."""
        self.refuse_legacy_layout(log_id)
        log_dir = self.ensure_log_dir(log_id)
        with hold(log_dir / LOCK_NAME, f"log cache of {log_id!r}"):
            yield log_dir

    @staticmethod
    def confirm_lock(log_dir: Path) -> None:
        """Right before a segment is published under :meth:`lock`: raise
        :class:`~assets_pkg.storage.lease.LeaseLost` when the log's lease was lost meanwhile
        (a stalled fetch whose lease another fetch took must not publish an overlapping
        segment); a local ``flock`` cannot be lost."""
        confirm_held(log_dir / LOCK_NAME)


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


def write_segment_manifest(folder: Path, segment_window: tuple[int, int], parts: dict[str, int],
                           ts_min: int | None, ts_max: int | None) -> Path:
    """Record what a segment holds, in its (still temporary) folder, before it is published."""
    start_ms, end_ms = segment_window
    return atomic_write_json(as_path(folder) / MANIFEST_NAME, {
        "format": MANIFEST_FORMAT, "start_ms": start_ms, "end_ms": end_ms, "rows": sum(parts.values()),
        "timestamp_min": ts_min, "timestamp_max": ts_max, "parts": parts,
    })


def read_segment_manifest(segment: Segment) -> dict | None:
    """The segment's manifest, or None for a segment published before manifests existed."""
    path = segment.path / MANIFEST_NAME
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CorruptSegmentError(f"cannot read the segment manifest {path}: {exc}; {REMEDY}") from exc
    keys = ("start_ms", "end_ms", "rows", "timestamp_min", "timestamp_max", "parts")
    if not isinstance(doc, dict) or any(k not in doc for k in keys) or not isinstance(doc["parts"], dict):
        raise CorruptSegmentError(f"segment manifest {path} lacks one of {', '.join(keys)}; {REMEDY}")
    return doc


def _check_manifest(segment: Segment, manifest: dict, parts: list[Path]) -> None:
    """The folder name must state the window the segment was fetched for."""
    where = segment.path
    if (manifest["start_ms"], manifest["end_ms"]) != segment.window:
        raise CorruptSegmentError(
            f"segment folder {where} claims [{segment.start_ms}, {segment.end_ms}) but holds the events of "
            f"[{manifest['start_ms']}, {manifest['end_ms']}) (its {MANIFEST_NAME}): it was renamed or moved; "
            f"rename it back to from={manifest['start_ms']}/to={manifest['end_ms']} or {REMEDY}"
        )
    names = sorted(p.name for p in parts)
    if names != sorted(manifest["parts"]):
        raise CorruptSegmentError(
            f"segment {where} has part files {names} but its {MANIFEST_NAME} lists {sorted(manifest['parts'])}; {REMEDY}"
        )
    for bound in ("timestamp_min", "timestamp_max"):
        value = manifest[bound]
        if value is not None and not segment.start_ms <= value < segment.end_ms:
            raise CorruptSegmentError(
                f"segment {where}: {MANIFEST_NAME} records {bound}={value}, outside the folder's window "
                f"[{segment.start_ms}, {segment.end_ms}); {REMEDY}"
            )


def verify_segment(segment: Segment, deep: bool = False) -> int:
    """Check every part of a segment; return its row count or raise CorruptSegmentError.

    Always: the manifest matches the folder name, each part's footer and schema (cheap).
    ``deep=True`` also decodes every page of every column (verifying page checksums) and
    compares row count and timestamp min/max with the manifest, or, for a segment without
    one, checks every timestamp lies in the folder's window."""
    if is_remote(segment.path):
        try:
            problems = remote_objects.verify_commit(segment.path)
        except remote_objects.CorruptCommit as exc:
            raise CorruptSegmentError(f"{exc}; {REMEDY}") from None
        if problems:
            raise CorruptSegmentError(f"corrupt committed segment: {problems[0]}"
                                      + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                                      + f"; {REMEDY}")
    parts = segment.parts
    if not parts:
        raise CorruptSegmentError(f"segment {segment.path} has no part files; {REMEDY}")
    manifest = read_segment_manifest(segment)
    if manifest is not None:
        _check_manifest(segment, manifest, parts)
    rows = 0
    ts_min = ts_max = None
    for part in parts:
        try:
            pf = parquet_file(part, page_checksum_verification=deep)
            schema = pf.schema_arrow
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise CorruptSegmentError(f"cannot read cached part {part}: {exc}; {REMEDY}") from exc
        if not _same_schema(schema, PART_SCHEMA):
            raise CorruptSegmentError(
                f"cached part {part} has schema ({_schema_text(schema)}) but log parts must have "
                f"({_schema_text(PART_SCHEMA)}); {REMEDY}"
            )
        part_rows = pf.metadata.num_rows
        if manifest is not None and manifest["parts"][part.name] != part_rows:
            raise CorruptSegmentError(
                f"cached part {part} has {part_rows} rows but {MANIFEST_NAME} recorded "
                f"{manifest['parts'][part.name]}; {REMEDY}"
            )
        rows += part_rows
        if deep:
            lo, hi = _decode_part(pf, part)
            ts_min = lo if ts_min is None or (lo is not None and lo < ts_min) else ts_min
            ts_max = hi if ts_max is None or (hi is not None and hi > ts_max) else ts_max
    if deep:
        _check_contents(segment, manifest, rows, ts_min, ts_max)
    return rows


def _decode_part(pf: pq.ParquetFile, part: Path) -> tuple[int | None, int | None]:
    """Decode every page of every column (one row group at a time); timestamp min/max."""
    lo = hi = None
    try:
        for i in range(pf.num_row_groups):
            ts = pf.read_row_group(i).column("timestamp")
            if len(ts) and ts.null_count < len(ts):
                bounds = pc.min_max(ts)
                a, b = bounds["min"].as_py(), bounds["max"].as_py()
                lo = a if lo is None else min(lo, a)
                hi = b if hi is None else max(hi, b)
    except Exception as exc:
        raise CorruptSegmentError(f"cannot decode cached part {part}: {exc}; {REMEDY}") from exc
    return lo, hi


def _check_contents(segment: Segment, manifest: dict | None, rows: int, ts_min, ts_max) -> None:
    if manifest is not None:
        recorded = (manifest["rows"], manifest["timestamp_min"], manifest["timestamp_max"])
        if recorded != (rows, ts_min, ts_max):
            raise CorruptSegmentError(
                f"segment {segment.path} holds {rows} rows with timestamps [{ts_min}, {ts_max}] but its "
                f"{MANIFEST_NAME} recorded {recorded[0]} rows [{recorded[1]}, {recorded[2]}]; {REMEDY}"
            )
    outside = [v for v in (ts_min, ts_max) if v is not None and not segment.start_ms <= v < segment.end_ms]
    if outside:
        raise CorruptSegmentError(
            f"segment {segment.path} holds events at {outside[0]}, outside its folder's window "
            f"[{segment.start_ms}, {segment.end_ms}): the folder was renamed or its parts moved; {REMEDY}"
        )


def _same_schema(a: pa.Schema, b: pa.Schema) -> bool:
    return [(f.name, f.type) for f in a] == [(f.name, f.type) for f in b]


def _schema_text(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name} {f.type}" for f in schema)
