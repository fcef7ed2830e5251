"""Which batch files the materialized summary already reflects (no dagster import).

``<warehouse>/summary/_state/processed_batches.json`` maps each batch file name to its
identity (size:mtime) and the months it held. A run of ``account_summary`` over months
``[s, e]`` marks a new batch as processed only when every month that batch affects lies
inside ``[s, e]``; so the file is the truth for "what is still to do", whoever ran what.
The sensor's cursor only prevents requesting the same files twice while a run is in flight.
Every write of the file is a read-modify-write under the summary's domain lock
(:mod:`assets_pkg.io.locks`), so no writer saves over another's record from a stale copy.
"""

import json
from pathlib import Path

from assets_pkg import layout
from assets_pkg.io import atomic_write_json
from assets_pkg.io.locks import domain_lock
from assets_pkg.storage.objects import file_exists
from assets_pkg.summary.source import BatchFile

STATE_FILE = "processed_batches.json"


def state_path() -> Path:
    return layout.state_dir("summary") / STATE_FILE


def load_processed(path: Path | None = None) -> dict[str, dict]:
    path = path or state_path()
    if not file_exists(path):
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable summary state ({exc}); delete it to rebuild everything") from None
    return dict(data.get("batches", {}))


def save_processed(batches: dict[str, dict], path: Path | None = None) -> Path:
    return atomic_write_json(path or state_path(), {"batches": batches})


def pending_files(files: list[BatchFile], processed: dict[str, dict], also_seen: dict[str, str] | None = None):
    """Files whose identity differs from the processed state (and from ``also_seen``, the
    sensor cursor), plus processed names that disappeared or changed (their old months
    must be rebuilt too)."""
    also_seen = also_seen or {}
    new = [
        f for f in files
        if processed.get(f.name, {}).get("identity") != f.identity and also_seen.get(f.name) != f.identity
    ]
    present = {f.name: f.identity for f in files}
    gone = {
        name: entry for name, entry in processed.items()
        if present.get(name) != entry.get("identity") and also_seen.get(name) != present.get(name, "<gone>")
    }
    return new, gone


def record_without_rebuild(new: list[BatchFile], path: Path | None = None, timeout_s: float | None = None) -> None:
    """Mark batches that hold no usable records (nothing to rebuild) as processed: a
    read-modify-write of the state under the summary's lock (raises LockTimeout after
    ``timeout_s``, default DOMAIN_LOCK_TIMEOUT_S)."""
    if not new:
        return
    with domain_lock("summary", timeout_s=timeout_s, folder=path.parent if path is not None else None):
        processed = load_processed(path)
        for f in new:
            processed[f.name] = {"identity": f.identity, "months": []}
        save_processed(processed, path)
