"""Where CSV records start and end in a block of text, with a bound on quoted values.

A *record* is what Arrow's CSV parser numbers: one physical line, unless a quoted value
runs over line breaks. A quote that is never closed would otherwise turn the rest of the
file into one value; here a multi-line record is accepted only when it is well formed:

- the quote opens at the start of a field, and closes with a quote followed by the
  delimiter or the end of a line (RFC 4180; ``""`` inside is an escaped quote),
- it closes within ``max_quoted_lines`` lines, before the end of the file,
- the record has as many fields as the header.

Otherwise the line holding the opening quote is an ``unterminated_quote`` reject and
reading resumes on the next line as if that quote had never been there (a multi-line
record that parses is what DuckDB reads too; a broken one costs one line, not the file).

A carriage return alone inside an unquoted line is a line break for Arrow (and most CSV
readers), so such a line would come back as several ragged rows: the whole line is
rejected instead (``line_break``).

Cost: a block without quotes or carriage returns costs two ``bytes.find`` calls.
With quotes, a vectorised test (numpy over the quote positions) finds the lines whose
quotes are all balanced and in field-start / field-end positions - those parse the same
by any rule - and only the others ("suspect" lines) go through the exact state machine
in Python, a line at a time.
"""

from dataclasses import dataclass, field

import numpy as np

QUOTE = 34
NEWLINE = 10
CR = 13


@dataclass(frozen=True)
class RecordScan:
    """Result of scanning a block. Line numbers are 1-based within the block."""

    cut: int  # bytes of the block that end in complete records (0: none complete yet)
    spans: list[tuple[int, int]] = field(default_factory=list)  # (first, last) line of multi-line records
    unterminated: list[int] = field(default_factory=list)  # lines whose opening quote never validly closed
    bare_cr: list[int] = field(default_factory=list)  # unquoted lines holding a lone carriage return


@dataclass(frozen=True)
class LineState:
    ends_inside: bool  # the line ends inside a quoted value
    fields: int  # delimiters outside quotes + 1, counted from where the line started
    invalid: bool  # a closing quote not followed by a delimiter / line end (RFC 4180)
    bare_cr: bool  # a lone \r outside quotes


def line_state(line: bytes, delimiter: int, inside: bool) -> LineState:
    """Run the CSV quote state machine over one physical line (without its newline).

    Mirrors Arrow's parser: a quote opens a quoted value only at the start of a field;
    inside, ``""`` is a literal quote and a single quote closes; after closing, or in an
    unquoted value, a quote is a literal character."""
    fields = 1
    invalid = bare_cr = False
    at_field_start = not inside
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if inside:
            if c == QUOTE:
                if i + 1 < n and line[i + 1] == QUOTE:
                    i += 2
                    continue
                inside = False
                nxt = line[i + 1] if i + 1 < n else None
                if nxt is not None and nxt != delimiter and not (nxt == CR and i + 2 == n):
                    invalid = True
            i += 1
            continue
        if c == delimiter:
            fields += 1
            at_field_start = True
        elif c == QUOTE and at_field_start:
            inside = True
            at_field_start = False
        else:
            if c == CR:  # the one before the newline is not part of ``line``
                bare_cr = True
            at_field_start = False
        i += 1
    return LineState(inside, fields, invalid, bare_cr)


def _quick_cut(data, at_eof: bool) -> int:
    if at_eof:
        return len(data)
    return data.rfind(b"\n") + 1


def scan_records(data, delimiter: str, n_fields: int, max_quoted_lines: int, at_eof: bool) -> RecordScan:
    """Find complete records in ``data`` (which starts at a record start).

    ``cut`` is where the last complete record ends: a line still open at the end of the
    data is left for the next block unless ``at_eof`` (then it is complete), and so is a
    quoted value that may still close within ``max_quoted_lines`` lines."""
    # find (memchr) before count: a block without quotes or carriage returns costs two finds
    has_quote = data.find(b'"') >= 0
    crs = data.count(b"\r") if data.find(b"\r") >= 0 else 0
    if not has_quote and (crs == 0 or crs == data.count(b"\r\n") + (1 if data.endswith(b"\r") else 0)):
        return RecordScan(_quick_cut(data, at_eof))
    delim = ord(delimiter)
    arr = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(arr == NEWLINE)
    starts = np.concatenate([[0], newlines + 1])  # start of every line (the last may be empty)
    ends = np.concatenate([newlines, [len(arr)]])  # end of every line, without its newline
    complete = len(newlines) + (1 if at_eof and len(arr) and arr[-1] != NEWLINE else 0)
    suspects = _suspect_lines(arr, newlines, delim, crs > 0)

    def text(i: int) -> bytes:
        return bytes(data[starts[i]:ends[i]]).removesuffix(b"\r")

    spans: list[tuple[int, int]] = []
    unterminated: list[int] = []
    bare_cr: list[int] = []
    resume = 0  # first line not yet settled
    for k in suspects:
        if k < resume:
            continue
        if k >= complete:
            break
        first = line_state(text(k), delim, inside=False)
        if not first.ends_inside:
            if first.bare_cr:
                bare_cr.append(k + 1)
            resume = k + 1
            continue
        # A quoted value runs past the end of line k: follow it.
        fields, broken, j = first.fields, first.bare_cr, k
        outcome = None
        while outcome is None:
            j += 1
            if j >= complete:
                outcome = "unterminated" if at_eof else "open"
            elif j - k + 1 > max_quoted_lines:
                outcome = "unterminated"
            else:
                state = line_state(text(j), delim, inside=True)
                fields += state.fields - 1
                broken = broken or state.bare_cr
                if state.invalid:
                    outcome = "unterminated"
                elif not state.ends_inside:
                    outcome = "record" if fields == n_fields and not broken else "unterminated"
        if outcome == "open":
            return RecordScan(int(starts[k]), spans, unterminated, bare_cr)
        if outcome == "record":
            spans.append((k + 1, j + 1))
            resume = j + 1
        else:
            unterminated.append(k + 1)
            resume = k + 1
    if complete == 0:
        return RecordScan(0, spans, unterminated, bare_cr)
    return RecordScan(int(ends[complete - 1]) + (1 if complete - 1 < len(newlines) else 0), spans, unterminated, bare_cr)


def _suspect_lines(arr: np.ndarray, newlines: np.ndarray, delim: int, has_cr: bool) -> list[int]:
    """0-based lines that may not be a self-contained record: an odd number of quotes, a
    quote outside the field-start / field-end / ``""`` positions, or a lone ``\\r``. A
    line with none of these starts and ends outside quotes and parses the same by the
    exact rules, so it needs no further look."""
    quotes = np.flatnonzero(arr == QUOTE)
    suspect = np.zeros(len(newlines) + 1, dtype=bool)
    if len(quotes):
        qline = np.searchsorted(newlines, quotes)
        first_of_line = np.searchsorted(quotes, np.concatenate([[0], newlines + 1]))
        rank = np.arange(len(quotes)) - first_of_line[qline]
        prev = np.where(quotes > 0, arr[np.maximum(quotes - 1, 0)], NEWLINE)
        nxt = np.where(quotes + 1 < len(arr), arr[np.minimum(quotes + 1, len(arr) - 1)], NEWLINE)
        opener_ok = (prev == delim) | (prev == NEWLINE) | (prev == QUOTE)
        closer_ok = (nxt == delim) | (nxt == NEWLINE) | (nxt == CR) | (nxt == QUOTE)
        misplaced = np.where(rank % 2 == 0, ~opener_ok, ~closer_ok)
        suspect[qline[misplaced]] = True
        counts = np.bincount(qline, minlength=len(suspect))
        suspect |= (counts % 2) == 1
    if has_cr:
        crs = np.flatnonzero(arr == CR)
        lone = crs[(crs + 1 < len(arr)) & (arr[np.minimum(crs + 1, len(arr) - 1)] != NEWLINE)]
        suspect[np.searchsorted(newlines, lone)] = True
    return np.flatnonzero(suspect).tolist()
