"""Where everything lives under the data root: the one place that turns (asset,
partition) into a location (DESIGN.md sections 2 and 3). No dagster import.

- A materialized asset lives under ``<warehouse>/<asset key path>``: one file per partition
  (``part-NNNNN`` for a shard, ``YYYY-MM`` for a month, ``YYYY-MM-DD`` for a day, the key
  itself otherwise; multi-partitions one ``<dim>=<value>`` folder per leading dimension), or
  ``<warehouse>/<asset key path>.<ext>`` when unpartitioned.
- A domain's own bookkeeping (locks, processed state, stages) lives in folders starting
  with ``_`` beside its assets; user-facing files under ``<exports>/<domain>``; inputs
  under ``<inbox>/<domain>``.

The IO manager (the Dagster layer) maps a partitions definition to a partition *kind*
and asks here for the name; every domain, check and CLI command asks here too, so a new
storage backend changes this module and ``settings``, not the domains.
"""

import shutil
import time
from pathlib import Path

from assets_pkg.settings import get_settings
from assets_pkg.storage import as_path, is_remote, local_scratch

SHARD, MONTH, DAY, HOUR, KEY = "shard", "month", "day", "hour", "key"
STATE_FOLDER = "_state"


def shard_stem(key: str | int) -> str:
    """``part-NNNNN``: a shard's number, five digits at least (the input shard's number)."""
    text = str(key)
    if not text.isdigit():
        raise ValueError(f"shard key {key!r} is not a number")
    return f"part-{int(text):05d}"


def partition_stem(key: str, kind: str = KEY) -> str:
    """The file name (no extension) of one partition of the given kind. Time kinds get a
    key already formatted by the caller (``YYYY-MM``, ``YYYY-MM-DD``, ``YYYY-MM-DDTHH``)."""
    if kind == SHARD or (kind == KEY and key.isdigit()):
        return shard_stem(key)
    if "/" in key or key in ("", ".", ".."):
        raise ValueError(f"partition key {key!r} cannot be a file name")
    return key


def multi_stem(folders: list[tuple[str, str]], last_stem: str) -> str:
    """A multi-partition's relative name: one ``<dim>=<value>`` folder per leading
    dimension, the last dimension's stem naming the file."""
    for dim, value in folders:
        partition_stem(value)  # same rules for a folder name
    return "/".join([*(f"{dim}={value}" for dim, value in folders), last_stem])


def warehouse() -> Path:
    return get_settings().warehouse


def asset_dir(asset_key_path, base: Path | None = None) -> Path:
    """The folder of a partitioned asset (``<warehouse>/<key path>``)."""
    return as_path(base or warehouse()).joinpath(*asset_key_path)


def asset_file(asset_key_path, ext: str = "parquet", base: Path | None = None) -> Path:
    """The one file of an unpartitioned asset (``<warehouse>/<key path>.<ext>``)."""
    folder = asset_dir(asset_key_path, base)
    return folder.with_name(f"{folder.name}.{ext}")


def partition_file(asset_key_path, stem: str, ext: str = "parquet", base: Path | None = None) -> Path:
    return asset_dir(asset_key_path, base) / f"{stem}.{ext}"


def partition_files(asset_key_path, ext: str = "parquet", base: Path | None = None) -> list[Path]:
    """The published partition files of an asset, sorted (temp and hidden files skipped)."""
    folder = asset_dir(asset_key_path, base)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"*.{ext}") if not p.name.startswith("."))


def state_dir(domain: str, base: Path | None = None) -> Path:
    """A domain's bookkeeping folder (locks, processed state): ``<warehouse>/<domain>/_state``."""
    return asset_dir([domain, STATE_FOLDER], base)


def exports_dir(domain: str, base: Path | None = None) -> Path:
    """User-facing files of a domain: ``<exports>/<domain>``."""
    return as_path(base or get_settings().exports) / domain


def cache_dir(domain: str) -> Path:
    """A domain's cache (log segments): ``<data root>/cache/<domain>``."""
    return get_settings().cache / domain


def scratch_dir(name: str) -> Path:
    """Per-process scratch that no other step relies on: ``<data root>/tmp/<name>`` for a local
    root, a folder of this process on local disk for an object-store root."""
    root = get_settings().data_root
    return local_scratch(name) if is_remote(root) else root / "tmp" / name


def inbox_dir(domain: str) -> Path:
    """A domain's inputs: ``<inbox>/<domain>``."""
    return get_settings().inbox / domain


STAGING_FOLDER = "_staging"


def staging_dir(domain: str, run: str | None) -> Path:
    """A run's intermediate files that other steps (on other workers) read, removed when the
    run has published its outputs: ``<warehouse>/<domain>/_staging/<run>`` (``run=None``:
    the folder of every run's staging)."""
    parts = [domain, STAGING_FOLDER] if run is None else [domain, STAGING_FOLDER, partition_stem(run)]
    return asset_dir(parts)


STALE_STAGING_S = 24 * 3600.0


def remove_tree(folder: Path) -> None:
    """``folder`` and everything in it, local or in the object store; gone already is fine."""
    if is_remote(folder):
        from assets_pkg.storage.root import filesystem, object_key

        fs = filesystem(folder)
        if fs.exists(object_key(folder)):
            fs.rm(object_key(folder), recursive=True)
    else:
        shutil.rmtree(folder, ignore_errors=True)


def remove_stale_staging(domain: str, older_than_s: float = STALE_STAGING_S) -> list[str]:
    """``domain``'s staging folders of runs that died (untouched for ``older_than_s``), removed."""
    root = staging_dir(domain, None)
    if not root.is_dir():
        return []
    removed = []
    now = time.time()
    for entry in root.iterdir():
        try:
            newest = max((p.stat().st_mtime for p in entry.rglob("*")), default=entry.stat().st_mtime)
        except OSError:
            continue
        if now - newest > older_than_s:
            remove_tree(entry)
            removed.append(entry.name)
    return removed
