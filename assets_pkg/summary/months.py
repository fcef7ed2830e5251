"""Month arithmetic on 'YYYY-MM' strings and integer month indexes (no dagster import).

A month index is ``year * 12 + (month - 1)``: consecutive months are consecutive integers,
so "m - i months" is plain subtraction and a month range is a ``range``.
"""

import re
from datetime import datetime, timezone

MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
# The same rule in SQL (DuckDB regexp_full_match), used to find malformed month strings.
MONTH_SQL_PATTERN = r"\d{4}-(0[1-9]|1[0-2])"


def month_index_sql(expr: str) -> str:
    """:func:`month_index` of a 'YYYY-MM' SQL expression (no validation: see MONTH_SQL_PATTERN)."""
    return f"CAST(substr({expr}, 1, 4) AS INTEGER) * 12 + CAST(substr({expr}, 6, 2) AS INTEGER) - 1"


class MonthError(ValueError):
    """A month string is not 'YYYY-MM' or lies outside the allowed range."""


def is_month(text) -> bool:
    return isinstance(text, str) and MONTH_RE.match(text) is not None


def month_index(text: str) -> int:
    match = MONTH_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise MonthError(f"{text!r} is not a month in the form YYYY-MM")
    return int(match.group(1)) * 12 + int(match.group(2)) - 1


def month_str(index: int) -> str:
    year, month0 = divmod(int(index), 12)
    return f"{year:04d}-{month0 + 1:02d}"


def add_months(text: str, n: int) -> str:
    return month_str(month_index(text) + n)


def month_range(start: str, end: str) -> list[str]:
    """Inclusive list of months from start to end (empty when end < start)."""
    return [month_str(i) for i in range(month_index(start), month_index(end) + 1)]


def current_month(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"{now.year:04d}-{now.month:02d}"


def contiguous_ranges(months) -> list[tuple[str, str]]:
    """Group a set of months into sorted inclusive (start, end) runs of consecutive months."""
    idx = sorted({month_index(m) for m in months})
    runs: list[tuple[str, str]] = []
    for i in idx:
        if runs and month_index(runs[-1][1]) == i - 1:
            runs[-1] = (runs[-1][0], month_str(i))
        else:
            runs.append((month_str(i), month_str(i)))
    return runs


# Where the summary's assets live (assets_pkg.layout turns them into files)
MONTHS_ASSET_PATH = ("summary", "account_summary")
LATEST_ASSET_PATH = ("summary", "latest_summary")
