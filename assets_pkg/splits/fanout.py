"""A splits range run as units of work that fit any worker (no dagster import).

With a cluster executor (multiprocess, celery) a range run of the splits is: pass 1 in
batches of ``SPLITS_SHARDS_PER_STEP`` shards (one step each), the allocation once, pass 2 in
batches of the same size, the consolidation once (:mod:`assets_pkg.splits.fanout_assets`).
Each batch step reads its shards from the inbox and the allocation from the warehouse, and
writes only its own partitions with the same functions as the one-step path
(:func:`~assets_pkg.splits.pipeline.profile_all`, :func:`~assets_pkg.splits.pipeline.split_and_write`),
so the files are the same whatever the batching.

Pass 2 is planned under the splits lock, which pins the allocation: :func:`allocation_pin`,
a digest of the split manifest published with it. Every pass-2 step checks the pin
(:func:`pinned_manifest`) before it writes: if another run published an allocation in
between, the step stops naming the manifest instead of mixing two allocations in one run
(what it already wrote is marked stale by its fingerprint and re-split by the next run).
"""

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from pydantic import model_validator

from assets_pkg.settings import SettingsModel, setting
from assets_pkg.splits.pipeline import ShardResult, manifest_file, read_json

DOMAIN = "splits"
# written by pass 2's last step after the run's batches: not part of what they split from
_NOT_PINNED = ("label_rate",)


class FanoutError(RuntimeError):
    """A fan-out step cannot go on with what it finds; the message names the file."""


class SplitsFanoutSettings(SettingsModel):
    """How a splits range run splits into steps (the cluster executors' path)."""

    shards_per_step: int = setting(
        10, env="SPLITS_SHARDS_PER_STEP",
        description="At most this many shards per pass-1 and per pass-2 step of a fan-out splits run "
                    "(cluster executors); the run's shards are cut into that many steps of even size. A "
                    "step's memory is that of MAX_WORKERS shards, whatever the batch size, so the size "
                    "trades two wastes: each step costs about 0.2 s of task overhead (its own process, "
                    "the instance opened, the plan rebuilt), and a pass ends with its last steps running "
                    "while other workers idle. Ten shards of ~500k rows are 2-3 s of work: 20 shards on 2 "
                    "workers make one step per worker and pass, which measured 1.04-1.25x the embedded "
                    "run against 1.5-1.8x with 5 (two rounds of steps on the same two cores; bench/NOTES.md "
                    "\"Cluster hand-off\"). Lower it when a run has fewer shards than ~10 per worker.")

    @model_validator(mode="after")
    def _validate(self):
        if self.shards_per_step < 1:
            raise ValueError("SPLITS_SHARDS_PER_STEP must be >= 1")
        return self


def allocation_pin(manifest: dict) -> str:
    """A digest of the split manifest's allocation (everything but the label rates)."""
    pinned = {k: v for k, v in manifest.items() if k not in _NOT_PINNED}
    return hashlib.sha256(json.dumps(pinned, sort_keys=True, default=str).encode()).hexdigest()


def pinned_manifest(warehouse: Path, pin: str) -> dict:
    """The manifest, if it is still the allocation the run planned pass 2 on."""
    manifest = read_json(manifest_file(warehouse))
    if manifest is None or allocation_pin(manifest) != pin:
        state = "is gone" if manifest is None else "changed"
        raise FanoutError(
            f"the split manifest {manifest_file(warehouse)} {state} since this run planned pass 2 (another "
            f"splits run published its allocation meanwhile); nothing of this step was written. Re-run: the "
            f"shards split under the old allocation are re-split")
    return manifest


def encode_result(result: ShardResult) -> dict:
    """A pass-2 shard result as a JSON step message."""
    data = asdict(result)
    data["files"] = {name: (str(path) if path is not None else None) for name, path in result.files.items()}
    return data


def decode_result(data: dict) -> ShardResult:
    return ShardResult(data["key"], data["counts"], dict(data["files"]), dict(data["bytes"]), data["seconds"])
