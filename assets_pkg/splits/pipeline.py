"""The split steps as file-to-file functions (no dagster import).

:func:`run_all` chains the steps in the order a Dagster run materializes them (the CLI,
the tests and the benchmark's "logic called directly" variant call it); the assets call
the same steps one at a time. The sections below follow that order: pass 1
(:mod:`~assets_pkg.splits.profile`), the allocation (:mod:`~assets_pkg.splits.allocation`),
pass 2 (:mod:`~assets_pkg.splits.pass2`), consolidation; then the paths. Paths follow the
IO manager's layout (``<warehouse>/splits/<asset>/part-NNNNN.<ext>``), so files written
here and by the assets are the same files.
"""

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from assets_pkg import layout
from assets_pkg.io import atomic_write_json, file_extension, write_table
from assets_pkg.io.formats import FORMATS
from assets_pkg.splits import staging
from assets_pkg.splits.allocation import Allocation, build_allocation, manifest_for
from assets_pkg.splits.discovery import Discovery, Shard, discover, shard_key
from assets_pkg.splits.export import single_file, write_export
from assets_pkg.splits.outputs import output_label_rates
from assets_pkg.splits.params import SplitParams
from assets_pkg.splits.pass2 import (
    ShardSplit,
    joins_built_on_allocation,
    load_allocation,
    one_thread_per_statement,
    split_shard,
    split_shard_to_parquet,
)
from assets_pkg.splits.profile import profile_shard
from assets_pkg.splits.rows import SPLITS
from assets_pkg.splits.shard_io import ShardError
from assets_pkg.splits.shard_pool import ShardFailure, ShardPool, concurrent_scan, isolated
from assets_pkg.storage import as_path, is_remote
from assets_pkg.storage.objects import remove_files

MANIFEST_NAME = "split_manifest.json"
STATE_FOLDER = "_shard_state"
STAGED_FOLDER = "_staged"
FAILED_FOLDER = "_failed"


# -- everything -----------------------------------------------------------------------------


def run_all(inbox: Path, warehouse: Path, exports: Path | None, params: SplitParams, con=None) -> dict:
    """Discover, profile, allocate, split (and consolidate when ``exports`` is given).
    A shard that fails to profile is left out, the others are split, then
    :class:`ShardsFailed` names it (as the Dagster run does)."""
    from assets_pkg.duck import connect

    con = con or connect()
    found: Discovery = discover(inbox)
    profile_all(con, found.shards, params, warehouse, found.signature, isolate=True)
    failed = failed_shards(warehouse, found)
    good = [s for s in found.shards if s.key not in failed]
    profile_paths = [shard_file(warehouse, "shard_profile", s.key) for s in good]
    allocation, manifest = write_allocation(con, profile_paths, params, warehouse, failed)
    results = split_and_write(con, good, params, warehouse, manifest, found.signature,
                              customers=allocation.customers)
    rates = update_label_rates(con, warehouse, params)
    if params.labelled:
        manifest["label_rate"] = rates
    prune_stages(warehouse, found)
    summary = {"shards": len(found.shards), "problems": [str(p) for p in found.problems],
               "failed": failed, "results": results, "manifest": manifest}
    if failed:  # the others are split; nothing is consolidated from a partial split
        raise ShardsFailed(failed)
    if exports is not None:
        summary["consolidated"] = consolidate(con, warehouse, exports, params)
    return summary


# -- pass 1 ---------------------------------------------------------------------------------


def write_profile(con, shard: Shard, params: SplitParams, warehouse: Path, signature=None) -> pa.Table:
    table = profile_shard(con, shard, params, signature, rejects_path=rejects_file(warehouse, shard.key),
                          stage_path=staged_file(warehouse, shard.key))
    write_table(table, shard_file(warehouse, "shard_profile", shard.key))
    return table


def profile_all(con, shards: list[Shard], params: SplitParams, warehouse: Path, signature=None,
                isolate: bool = False) -> list[ShardFailure]:
    """Pass 1 over many shards, two at a time with one DuckDB thread each (:class:`ShardPool`),
    text shards too: here two streaming readers and two profiles fit the 512 MB budget.
    The Dagster step keeps text shards one at a time: the Dagster process itself holds
    more memory. The first error stops it, unless
    ``isolate``: then a shard that fails is recorded (:func:`record_failure`, its old
    profile removed) and returned, and the others go on."""
    def one(cursor, shard: Shard) -> None:  # the profile is on disk; nothing held in memory
        write_profile(cursor, shard, params, warehouse, signature)

    failures = []
    work = isolated(one) if isolate else one
    pool = ShardPool(con, shards, work, concurrent=lambda shard: True, one_thread_each=True,
                     **in_flight(params))
    for shard, result in zip(shards, pool):
        if isinstance(result, ShardFailure):
            shard_file(warehouse, "shard_profile", shard.key).unlink(missing_ok=True)
            record_failure(warehouse, result)
            failures.append(result)
        else:
            clear_failure(warehouse, shard.key)
    return failures


def record_failure(warehouse: Path, failure: ShardFailure) -> None:
    stat = failure.shard.path.stat() if failure.shard.path.exists() else None
    atomic_write_json(failure_file(warehouse, failure.key), {
        "file": failure.shard.name, "error": failure.error,
        "bytes": stat.st_size if stat else None, "mtime_ns": stat.st_mtime_ns if stat else None,
    })


def clear_failure(warehouse: Path, key: str) -> None:
    remove_files([failure_file(warehouse, key)])


def failed_shards(warehouse: Path, found: Discovery) -> dict:
    """``{key: {"file", "error"}}`` of the inbox shards whose last profile failed. The
    records of shards no longer in the inbox are removed (nothing will retry them)."""
    folder = asset_dir(warehouse, FAILED_FOLDER)
    live = found.by_key()
    out = {}
    for path in sorted(folder.glob("part-*.json")) if folder.is_dir() else ():
        key = shard_key(path.stem.removeprefix("part-"))
        if key not in live:
            path.unlink(missing_ok=True)
            continue
        record = read_json(path)
        out[key] = {"file": record["file"], "error": record["error"]}
    return out


# -- allocation -----------------------------------------------------------------------------


def compute_allocation(con, profile_paths, params: SplitParams, warehouse: Path,
                       failed: dict | None = None) -> tuple[Allocation, dict]:
    """The allocation from the shards that profiled. ``failed`` (:func:`failed_shards`)
    goes into the manifest as ``failed_shards``: those shards are not split, their customers
    count only once the shard profiles (as if it had not arrived yet), and the checks fail
    until then."""
    previous = read_json(manifest_file(warehouse))
    allocation = build_allocation(con, list(profile_paths), params, previous)
    manifest = manifest_for(allocation, params)
    manifest["failed_shards"] = dict(failed or {})
    return allocation, manifest


def write_allocation(con, profile_paths, params: SplitParams, warehouse: Path,
                     failed: dict | None = None) -> tuple[Allocation, dict]:
    allocation, manifest = compute_allocation(con, profile_paths, params, warehouse, failed)
    write_table(allocation.customers, allocation_file(warehouse))
    atomic_write_json(manifest_file(warehouse), manifest)
    return allocation, manifest


class ShardsFailed(ShardError):
    """Shards that failed to profile, named with their errors (the others were split)."""

    def __init__(self, failed: dict):
        self.failed = failed
        super().__init__(f"{len(failed)} shard(s) failed to profile and were not split: "
                         + "; ".join(v["error"] for _, v in sorted(failed.items())))


# -- pass 2 ---------------------------------------------------------------------------------


@dataclass


class ShardResult:
    key: str
    counts: dict
    files: dict = field(default_factory=dict)  # split -> path or None
    bytes: dict = field(default_factory=dict)
    seconds: float = 0.0


def split_and_write(con, shards: list[Shard], params: SplitParams, warehouse: Path, manifest: dict,
                    signature=None, customers=None, progress_callback=None, on_shard=None) -> list[ShardResult]:
    """Pass 2 over ``shards``; ``on_shard(result)`` is called on the calling thread after
    each (progress); the results come back in shard order.

    Parquet shards, and text shards with a current stage from pass 1, are split two at a
    time (:class:`ShardPool`), each on its own cursor: the allocation, the label map and the
    settings belong to the database, so every cursor shares them. Each statement runs on
    one thread (:func:`one_thread_per_statement`), so the files and state sidecars are the
    same, byte for byte, as one shard at a time, and each output keeps its input's row order."""
    load_allocation(con, customers if customers is not None else allocation_file(warehouse), manifest, params)
    con.execute("SET preserve_insertion_order = true")  # deterministic output files

    def one(cursor, shard: Shard) -> ShardResult:
        started = time.perf_counter()
        entry = manifest["shards"].get(shard.key, {})
        fingerprint = entry.get("fingerprint")
        stage = staged_file(warehouse, shard.key)
        if params.output_format == "parquet":
            targets = {name: shard_file(warehouse, name, shard.key, "parquet") for name in SPLITS}
            counts = split_shard_to_parquet(cursor, shard, params, manifest["labels"], targets, entry.get("rows"),
                                            signature, progress_callback, manifest.get("schema"), stage)
            sizes = counts.pop("bytes")
            result = ShardResult(shard.key, counts,
                                 {n: (targets[n] if counts[n] else None) for n in SPLITS}, sizes)
            _finish_shard(warehouse, shard, params, result, fingerprint)
        else:
            split = split_shard(cursor, shard, params, manifest["labels"], signature, progress_callback,
                                manifest.get("schema"), stage)
            result = write_split(cursor, split, params, warehouse, fingerprint)
        staging.remove(stage)  # the outputs are published: the parsed copy has served
        result.seconds = round(time.perf_counter() - started, 3)
        return result

    def staged_or_parquet(shard: Shard) -> bool:
        return concurrent_scan(shard) or staging.is_current(staged_file(warehouse, shard.key),
                                                            staging.identity(shard, signature))

    results = []
    # sees DuckDB's threads before the block
    pool = ShardPool(con, shards, one, concurrent=staged_or_parquet, **in_flight(params))
    # both settings are global: set once for every cursor of the pool
    with joins_built_on_allocation(con), one_thread_per_statement(con):
        for result in pool:
            results.append(result)
            if on_shard is not None:
                on_shard(result)
    return results


def write_split(con, split: ShardSplit, params: SplitParams, warehouse: Path, fingerprint: str | None) -> ShardResult:
    """Write one shard's train/val/oot files (empty split: no file, old one deleted) and its
    state sidecar (fingerprint + counts) that marks the outputs as current."""
    result = ShardResult(split.shard.key, dict(split.counts))
    for name in SPLITS:
        path = shard_file(warehouse, name, split.shard.key, params.output_format)
        rel = split.relation(con, name)
        if rel is None:
            path.unlink(missing_ok=True)
            written = None
            size = 0
        else:
            res = write_table(rel, path, params.output_format)
            written, size = res.path, res.bytes
            if res.rows != split.counts.get(name, 0):
                raise RuntimeError(f"{path}: wrote {res.rows} rows, expected {split.counts.get(name)}")
        result.files[name] = written
        result.bytes[name] = size
    split.drop(con)
    _finish_shard(warehouse, split.shard, params, result, fingerprint)
    return result


def _finish_shard(warehouse: Path, shard: Shard, params: SplitParams, result: ShardResult, fingerprint) -> None:
    """Drop copies in other formats and record the state that marks the outputs current."""
    remove_files([shard_file(warehouse, name, shard.key, other)
                  for name in SPLITS for other in FORMATS if other != params.output_format])
    atomic_write_json(
        state_file(warehouse, shard.key),
        {"fingerprint": fingerprint, "counts": result.counts, "source": shard.name, "format": params.output_format},
    )


def update_label_rates(con, warehouse: Path, params: SplitParams) -> dict:
    """Label rate per split over every written shard, stored in the split manifest."""
    manifest = read_json(manifest_file(warehouse))
    if manifest is None:
        return {}
    if not params.labelled:  # no labels: no label rates (absent, not empty)
        manifest.pop("label_rate", None)
        atomic_write_json(manifest_file(warehouse), manifest)
        return {}
    manifest["label_rate"] = output_label_rates(con, warehouse, params, manifest["labels"])
    atomic_write_json(manifest_file(warehouse), manifest)
    return manifest["label_rate"]


def prune_stages(warehouse: Path, found: Discovery) -> list[str]:
    """Remove the stages of shards no longer in the inbox (their pass 2 will never come)."""
    folder = staged_dir(warehouse)
    live = set(found.by_key())
    staged = {m.group(1) for p in (folder.iterdir() if folder.is_dir() else ())
              if (m := re.fullmatch(r"part-(\d+)\.arrow(?:\.json)?", p.name))}
    gone = sorted({shard_key(n) for n in staged} - live)
    for key in gone:
        staging.remove(staged_file(warehouse, key))
    return gone


def stale_shards(warehouse: Path, manifest: dict, exclude=()) -> list[str]:
    """Shards of the manifest whose outputs were built under another fingerprint than the
    allocation's now (a new shard made one of their customers known, or the label map
    changed), or not built at all (their run stopped after the allocation, or another run
    published an allocation with them and has not split them yet)."""
    out = []
    for key, entry in sorted(manifest.get("shards", {}).items()):
        if key in exclude:
            continue
        state = read_json(state_file(warehouse, key))
        if state is None or state.get("fingerprint") != entry.get("fingerprint"):
            out.append(key)
    return out


# -- consolidation --------------------------------------------------------------------------


def consolidate(con, warehouse: Path, exports: Path, params: SplitParams) -> dict:
    """The export tree under exports/splits/ in the chosen mode (:mod:`~assets_pkg.splits.export`),
    streamed from the shard files in shard-number order (the same inputs give byte-identical
    files), and the split manifest beside it."""
    manifest = read_json(manifest_file(warehouse))
    return write_export(con, warehouse, exports, params, (manifest or {}).get("schema"), manifest=manifest,
                        manifest_name=MANIFEST_NAME)


def in_flight(params: SplitParams) -> dict:
    """ShardPool's width from MAX_WORKERS: shards worked on at once, and computed ahead."""
    return {"workers": params.max_workers, "ahead": params.max_workers}


# -- paths ----------------------------------------------------------------------------------


def asset_dir(warehouse: Path, name: str) -> Path:
    return layout.asset_dir(["splits", name], warehouse)


def part_file(warehouse: Path, folder: str, key: str, ext: str) -> Path:
    """``<warehouse>/splits/<folder>/part-NNNNN.<ext>``: every per-shard file's name."""
    return layout.partition_file(["splits", folder], layout.shard_stem(key), ext, warehouse)


def shard_file(warehouse: Path, name: str, key: str, fmt: str = "parquet") -> Path:
    return part_file(warehouse, name, key, file_extension(fmt))


def allocation_file(warehouse: Path) -> Path:
    return layout.asset_file(["splits", "customer_allocation"], "parquet", warehouse)


def manifest_file(warehouse: Path) -> Path:
    return layout.asset_dir(["splits"], warehouse) / MANIFEST_NAME


def state_file(warehouse: Path, key: str) -> Path:
    return part_file(warehouse, STATE_FOLDER, key, "json")


def consolidated_file(exports: Path, split: str, fmt: str) -> Path:
    """The single export file holding a warehouse split's rows (oot: training_data/test/)."""
    target = {"oot": "test"}.get(split, split)
    return single_file(exports, target, fmt)


def read_json(path: Path) -> dict | None:
    path = as_path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:  # one request on an object store, not an exists() first
        return None


def rejects_file(warehouse: Path, key: str) -> Path:
    """Lines of an input shard the streaming reader rejected (line, error, raw text)."""
    return part_file(warehouse, "_rejects", key, "parquet")


def staged_dir(warehouse: Path) -> Path:
    """Where text shards' parsed rows wait for pass 2: beside the outputs on a local root; in
    this process's local scratch for an object-store root (a cache, never uploaded: a pass 2
    in another process or on another machine finds none and parses the input again)."""
    if is_remote(warehouse):
        return layout.scratch_dir("splits_staged")
    return asset_dir(warehouse, STAGED_FOLDER)


def staged_file(warehouse: Path, key: str) -> Path:
    """A text shard's parsed rows from pass 1 for pass 2 (:mod:`assets_pkg.splits.staging`)."""
    if is_remote(warehouse):
        return staged_dir(warehouse) / f"{layout.shard_stem(key)}.arrow"
    return part_file(warehouse, STAGED_FOLDER, key, "arrow")


def failure_file(warehouse: Path, key: str) -> Path:
    """The error of a shard that could not be profiled (``part-NNNNN.json``), until it is."""
    return part_file(warehouse, FAILED_FOLDER, key, "json")
