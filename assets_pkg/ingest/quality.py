"""Reject-rate check for ingested files, over run results or what is on disk."""

from pathlib import Path

import pyarrow.parquet as pq

from assets_pkg.checking import WARN, CheckOutcome
from assets_pkg.ingest.stream import REJECTS_FILE

ASSET = "ingest/files"


def reject_rate_outcome(per_file: dict[str, tuple[int, int]], warn_rate: float) -> CheckOutcome:
    """``per_file``: name -> (rows, rejects). Passes when every file's reject share is at
    most ``warn_rate``; the offenders and their rates go to metadata."""
    rates = {
        name: (rejects / (rows + rejects) if rows + rejects else 0.0)
        for name, (rows, rejects) in per_file.items()
    }
    offenders = {name: round(rate, 6) for name, rate in sorted(rates.items()) if rate > warn_rate}
    total_rows = sum(rows for rows, _ in per_file.values())
    total_rejects = sum(rejects for _, rejects in per_file.values())
    return CheckOutcome(
        asset=ASSET,
        name="reject_rate",
        passed=not offenders,
        severity=WARN,
        description=(
            f"{len(offenders)} of {len(per_file)} file(s) above {warn_rate:.2%} rejects"
            if offenders
            else f"every file at or below {warn_rate:.2%} rejects"
        ),
        metadata={
            "files": len(per_file),
            "rows": total_rows,
            "rejects": total_rejects,
            "max_reject_rate": round(max(rates.values(), default=0.0), 6),
            "files_over_threshold": offenders,
        },
    )


def counts_on_disk(output_root: Path) -> dict[str, tuple[int, int]]:
    """(rows, rejects) per ingested folder, from Parquet footers only."""
    counts = {}
    if not output_root.is_dir():
        return counts
    for folder in sorted(p for p in output_root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        rows = sum(pq.ParquetFile(p).metadata.num_rows for p in folder.glob("part-*.parquet"))
        rejects_path = folder / REJECTS_FILE
        rejects = pq.ParquetFile(rejects_path).metadata.num_rows if rejects_path.exists() else 0
        counts[folder.name] = (rows, rejects)
    return counts
