"""Where lines and records are inside a block of CSV text (numpy over the raw bytes).

A *line* ends at a newline; a *record* (what Arrow numbers) ends at a newline outside
quotes. They differ only when a quoted value contains a line break. These helpers run
only for blocks that need them (rejects, blank lines, bad UTF-8), never on the fast path.
"""

import numpy as np

from assets_pkg.reader.parsed import record_to_line


def newline_positions(data: bytes) -> np.ndarray:
    return np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)


def record_text(data: bytes, newlines: np.ndarray, record: int, records: np.ndarray | None) -> str:
    """Text of the block's ``record`` (1-based; all its lines), without the final line break."""
    first = int(record_to_line([record], records)[0])
    if records is None:
        last = first
    elif record < len(records):
        last = int(records[record] - 1)
    else:  # the block's last record runs to its last line
        last = len(newlines) + (0 if data.endswith(b"\n") else 1)
    return line_range_text(data, newlines, first, last)


def line_range_text(data: bytes, newlines: np.ndarray, first: int, last: int) -> str:
    """Text of lines ``first`` to ``last`` (1-based), without the final line break."""
    start = 0 if first == 1 else int(newlines[first - 2]) + 1
    end = int(newlines[last - 1]) if last - 1 < len(newlines) else len(data)
    return bytes(data[start:end]).removesuffix(b"\r").decode("utf-8", errors="backslashreplace")


def record_starts(spans, line_count: int) -> np.ndarray | None:
    """Line (1-based) where each record starts, given the multi-line records found by the
    record scan as (first, last) lines; None when every record is one line."""
    if not spans:
        return None
    continuation = np.zeros(line_count + 1, dtype=bool)
    for first, last in spans:
        continuation[first + 1 : last + 1] = True
    return np.flatnonzero(~continuation[1:]).astype(np.int64) + 1


def record_span(line: int, records: np.ndarray | None, line_count: int) -> tuple[int, int]:
    """(first, last) line of the record holding ``line``."""
    if records is None:
        return line, line
    r = int(np.searchsorted(records, line, side="right"))
    last = int(records[r]) - 1 if r < len(records) else line_count
    return int(records[r - 1]), last


def lines_to_records(lines, records: np.ndarray | None, starts_only: bool) -> np.ndarray:
    """Record numbers of physical ``lines``. ``starts_only``: ignore lines inside a
    multi-line record (an empty line inside a quoted value is not a blank line)."""
    lines = np.asarray(lines, dtype=np.int64)
    if records is None or len(lines) == 0:
        return lines
    found = np.searchsorted(records, lines, side="right")  # records starting at or before
    if starts_only:
        keep = records[np.maximum(found - 1, 0)] == lines
        return found[keep]
    return np.unique(found)


def invalid_utf8_lines(data) -> list[int]:
    """1-based lines holding bytes that are not valid UTF-8 (none for ASCII, at no cost)."""
    if data.isascii():
        return []
    try:
        bytes(data).decode("utf-8")
        return []
    except UnicodeDecodeError as exc:
        first = data.count(b"\n", 0, exc.start) + 1
    bad = []
    start = 0 if first == 1 else int(newline_positions(data)[first - 2]) + 1
    for i, line in enumerate(bytes(data[start:]).split(b"\n")):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(first + i)
    return bad


def blank_out_lines(data, lines) -> bytearray:
    """``data`` with the given 1-based lines emptied (their newlines kept, so every later
    line keeps its number)."""
    out = bytearray()
    newlines = newline_positions(data)
    pos = 0
    for line in sorted(set(lines)):
        start = 0 if line == 1 else int(newlines[line - 2]) + 1
        end = int(newlines[line - 1]) if line - 1 < len(newlines) else len(data)
        out += data[pos:start]
        pos = end
    out += data[pos:]
    return out
