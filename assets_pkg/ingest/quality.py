"""Reject-rate check for ingested files, over run results or what is on disk."""

import json
from dataclasses import replace
from pathlib import Path

from assets_pkg.checking import WARN, CheckOutcome
from assets_pkg.ingest.stream import LINES_FILE
from assets_pkg.storage import as_path, is_remote
from assets_pkg.storage.arrow import parquet_file
from assets_pkg.storage.objects import committed_files, list_files, read_commit

ASSET = "ingest/files"


def reject_rate_outcome(per_file: dict[str, tuple[int, int]], warn_rate: float,
                        unaccounted: dict[str, str] | None = None,
                        partition_of: dict[str, str] | None = None) -> CheckOutcome:
    """``per_file``: name -> (row lines, rejected lines), the reader's line counts of the
    source. Passes when every file's rejected share of its data lines is at most
    ``warn_rate`` and every file's lines are accounted for (``unaccounted``: name -> what
    does not add up); offenders and their rates go to metadata. Each file's own outcome is
    in ``by_partition`` under its partition key: ``partition_of[name]`` (default: the name;
    a name missing from a given ``partition_of`` has none)."""
    unaccounted = unaccounted or {}
    keys = {name: name for name in per_file} if partition_of is None else partition_of
    outcome = _reject_rate(per_file, warn_rate, unaccounted)
    by_partition = {keys[name]: _reject_rate({name: counts}, warn_rate, unaccounted, one_file=name)
                    for name, counts in per_file.items() if name in keys}
    return replace(outcome, by_partition=by_partition)


def _reject_rate(per_file, warn_rate, unaccounted, one_file: str | None = None) -> CheckOutcome:
    if one_file is not None:
        unaccounted = {name: why for name, why in unaccounted.items() if name == one_file}
    rates = {
        name: (rejects / (rows + rejects) if rows + rejects else 0.0)
        for name, (rows, rejects) in per_file.items()
    }
    offenders = {name: round(rate, 6) for name, rate in sorted(rates.items()) if rate > warn_rate}
    total_rows = sum(rows for rows, _ in per_file.values())
    total_rejects = sum(rejects for _, rejects in per_file.values())
    description = (
        f"{len(offenders)} of {len(per_file)} file(s) above {warn_rate:.2%} rejected lines"
        if offenders
        else f"every file at or below {warn_rate:.2%} rejected lines"
    )
    if one_file is not None:
        side = "above" if offenders else "at or below"
        description = f"{one_file}: {rates[one_file]:.2%} of its data lines rejected, {side} {warn_rate:.2%}"
    if unaccounted:
        description = f"lines unaccounted for in {', '.join(sorted(unaccounted))}; " + description
    return CheckOutcome(
        asset=ASSET,
        name="reject_rate",
        passed=not offenders and not unaccounted,
        severity=WARN,
        description=description,
        metadata={
            "files": len(per_file),
            "row_lines": total_rows,
            "rejected_lines": total_rejects,
            "unaccounted": unaccounted,
            "max_reject_rate": round(max(rates.values(), default=0.0), 6),
            "files_over_threshold": offenders,
        },
    )


def counts_on_disk(output_root: Path) -> tuple[dict[str, tuple[int, int]], dict[str, str]]:
    """(row lines, rejected lines) per ingested folder from the reader's ``lines.json``,
    and the folders whose lines do not add up: the identity fails, or the shards' Parquet
    footers hold another number of rows than the reader returned."""
    counts, unaccounted = {}, {}
    output_root = as_path(output_root)
    remote = is_remote(output_root)
    for folder in sorted((p for p in list_files(output_root, folders=True) if not p.name.startswith(".")),
                         key=lambda p: p.name):
        if remote:  # only what a commit lists: a folder being written (or abandoned) is not there yet
            commit = read_commit(folder)
            if commit is None:
                continue
            parts = committed_files(folder, "part-*.parquet")
            lines_path = next(iter(committed_files(folder, LINES_FILE)), None)
        else:
            parts = folder.glob("part-*.parquet")
            lines_path = folder / LINES_FILE if (folder / LINES_FILE).is_file() else None
        stored = sum(parquet_file(p).metadata.num_rows for p in parts)
        if lines_path is None:
            unaccounted[folder.name] = f"{LINES_FILE} missing (ingested before line accounting; re-ingest the file)"
            counts[folder.name] = (stored, 0)
            continue
        lines = json.loads(lines_path.read_text(encoding="utf-8"))
        counts[folder.name] = (lines["row_lines"], lines["rejected_lines"])
        parts = lines["header_lines"] + lines["skipped_lines"] + lines["rejected_lines"] + lines["row_lines"]
        if parts != lines["lines_read"]:
            unaccounted[folder.name] = f"lines_read {lines['lines_read']} != header + skipped + rejected + row lines {parts}"
        elif stored != lines["rows"]:
            unaccounted[folder.name] = f"shards hold {stored} rows, the reader returned {lines['rows']}"
    return counts, unaccounted
