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
    last = int(records[record] - 1) if records is not None and record < len(records) else first
    start = 0 if first == 1 else int(newlines[first - 2]) + 1
    end = int(newlines[last - 1]) if last - 1 < len(newlines) else len(data)
    return bytes(data[start:end]).removesuffix(b"\r").decode("utf-8", errors="backslashreplace")


def record_lines(data, expected_records: int) -> np.ndarray | None:
    """Line (1-based) where each record starts, when a quoted value spans lines; else None.

    A newline ends a record only outside quotes, i.e. after an even number of quote
    characters (an escaped quote is two of them, so parity still holds). A stray quote
    inside an unquoted value ("5\" screen") breaks that rule; Arrow's own record count
    (``expected_records``) catches it, and then lines and records are taken as equal."""
    if data.find(b'"') < 0:
        return None
    arr = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(arr == 34)
    newlines = np.flatnonzero(arr == 10)
    inside = (np.searchsorted(quotes, newlines) % 2) == 1
    if not inside.any():
        return None
    ends = np.flatnonzero(~inside)  # indices of record-ending newlines
    trailing = 1 if len(data) and data[-1:] != b"\n" else 0
    if len(ends) + trailing != expected_records:
        return None
    return np.concatenate([[1], ends + 2]).astype(np.int64)


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


def blank_lines(data: bytes) -> np.ndarray:
    """1-based numbers of the block's empty lines ('' or a lone '\\r')."""
    arr = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(arr == 10)
    starts = np.concatenate([[0], newlines[:-1] + 1])
    length = newlines - starts
    is_blank = (length == 0) | ((length == 1) & (arr[np.minimum(starts, len(arr) - 1)] == 13))
    return np.flatnonzero(is_blank).astype(np.int64) + 1


def blank_out_invalid_utf8(data: bytes) -> tuple[bytes, list[tuple[int, str]]]:
    """Replace each line holding invalid UTF-8 by an empty line (keeping line numbers);
    return the new data and ``(line, raw text)`` of each replaced line."""
    bad: list[tuple[int, str]] = []
    parts: list[bytes] = []
    pos = 0
    while True:
        try:
            data[pos:].decode("utf-8")
            parts.append(data[pos:])
            break
        except UnicodeDecodeError as exc:
            at = pos + exc.start
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at)
            end = len(data) if end < 0 else end
            bad.append((data.count(b"\n", 0, start) + 1, data[start:end].decode("utf-8", errors="backslashreplace")))
            parts.append(data[pos:start])
            pos = end  # keep the newline itself: the line becomes empty
    return b"".join(parts), bad
