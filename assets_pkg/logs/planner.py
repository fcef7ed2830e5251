"""Range planning over half-open millisecond windows ``[start_ms, end_ms)``.

Pure functions, no I/O: given a requested window and the windows already cached, say what
is missing (sorted, disjoint, adjacent ranges merged, clamped to the request), what is
cached (clamped the same way) and whether the request is a hit, a partial hit or a miss.
"""

from dataclasses import dataclass
from datetime import date, datetime, timezone

HIT = "hit"
PARTIAL = "partial"
MISS = "miss"

DAY_MS = 86_400_000

Range = tuple[int, int]


class InvalidWindowError(ValueError):
    """A window that is not ``[start_ms, end_ms)`` with integers and start < end."""


def _checked_ms(name: str, value) -> int:
    # bool is an int subclass: True/False as a timestamp is always a bug upstream.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidWindowError(
            f"{name}={value!r} ({type(value).__name__}) is not an integer millisecond timestamp"
        )
    return value


def validate_window(start_ms, end_ms) -> Range:
    """Return ``(start_ms, end_ms)`` or raise :class:`InvalidWindowError`."""
    start = _checked_ms("start_ms", start_ms)
    end = _checked_ms("end_ms", end_ms)
    if start >= end:
        kind = "empty" if start == end else "reversed"
        raise InvalidWindowError(
            f"window [{start}, {end}) is {kind}: windows are half-open [start_ms, end_ms) with start < end"
        )
    return start, end


def merge_ranges(ranges) -> list[Range]:
    """Sort and merge overlapping or adjacent half-open ranges; drop empty ones."""
    out: list[list[int]] = []
    for start, end in sorted((int(s), int(e)) for s, e in ranges if s < e):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(s, e) for s, e in out]


def clamp_ranges(ranges, start_ms: int, end_ms: int) -> list[Range]:
    """Intersect ranges with ``[start_ms, end_ms)``, merged."""
    return merge_ranges((max(s, start_ms), min(e, end_ms)) for s, e in ranges)


def subtract_ranges(start_ms: int, end_ms: int, covered) -> list[Range]:
    """The parts of ``[start_ms, end_ms)`` not covered by ``covered`` (sorted, merged)."""
    missing: list[Range] = []
    cursor = start_ms
    for s, e in clamp_ranges(covered, start_ms, end_ms):
        if s > cursor:
            missing.append((cursor, s))
        cursor = max(cursor, e)
    if cursor < end_ms:
        missing.append((cursor, end_ms))
    return missing


@dataclass(frozen=True)
class CoveragePlan:
    start_ms: int
    end_ms: int
    missing: list[Range]
    cached: list[Range]

    @property
    def decision(self) -> str:
        if not self.missing:
            return HIT
        if not self.cached:
            return MISS
        return PARTIAL

    @property
    def missing_ms(self) -> int:
        return sum(e - s for s, e in self.missing)

    @property
    def cached_ms(self) -> int:
        return sum(e - s for s, e in self.cached)


def plan_coverage(start_ms, end_ms, cached_windows) -> CoveragePlan:
    """Plan a request against the cached windows (any order, may touch each other)."""
    start, end = validate_window(start_ms, end_ms)
    cached = clamp_ranges(cached_windows, start, end)
    return CoveragePlan(start, end, subtract_ranges(start, end, cached), cached)


def split_at_horizon(ranges, horizon_ms: int) -> tuple[list[Range], list[Range]]:
    """Split ranges into (cacheable: before horizon, fresh: at/after horizon)."""
    cacheable, fresh = [], []
    for s, e in ranges:
        if e <= horizon_ms:
            cacheable.append((s, e))
        elif s >= horizon_ms:
            fresh.append((s, e))
        else:
            cacheable.append((s, horizon_ms))
            fresh.append((horizon_ms, e))
    return cacheable, fresh


# --- time helpers ----------------------------------------------------------------------


def parse_time_ms(text) -> int:
    """ISO-8601 date/datetime (naive = UTC) or an integer of milliseconds -> epoch ms."""
    if isinstance(text, bool):
        raise InvalidWindowError(f"{text!r} is not a time")
    if isinstance(text, int):
        return text
    raw = str(text).strip()
    if raw.lstrip("-").isdigit():
        return int(raw)
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidWindowError(
            f"{text!r} is not an ISO-8601 time (e.g. 2024-01-02 or 2024-01-02T03:04:05Z) nor epoch milliseconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(round(parsed.timestamp() * 1000))


def ms_to_iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def day_window(day) -> Range:
    """The UTC day ``YYYY-MM-DD`` as ``[00:00, next 00:00)`` in ms."""
    d = day if isinstance(day, date) else date.fromisoformat(str(day))
    start = int(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp() * 1000)
    return start, start + DAY_MS


def ranges_json(ranges) -> list[list[int]]:
    return [[int(s), int(e)] for s, e in ranges]
