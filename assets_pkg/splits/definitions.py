"""The splits domain's Definitions: assets, the shard sensor, its job and the config resource.

`splits_job` materializes profile -> allocation -> train/val/oot -> consolidated (the
original's export tree, in the mode ENABLE_TRUE_STREAMING / CONSOLIDATE_STREAMING_OUTPUT
choose when the run starts). A bad or missing split setting does not stop the code
location loading: the sensor's ticks and the domain's runs fail naming it.
"""

import dagster as dg

from assets_pkg.splits.assets import (
    ALLOCATION_KEY,
    CONSOLIDATED_KEY,
    PROFILE_KEY,
    SPLIT_ASSETS,
    SPLIT_KEYS,
    SplitConfig,
    consolidated,
    customer_allocation,
)
from assets_pkg.splits.fanout_assets import fanout_enabled, shard_profile_fanout, split_shards_fanout
from assets_pkg.splits.params import params_from_env
from assets_pkg.splits.sensors import build_splits_sensor


def split_assets() -> list:
    """The cluster executors run the shard passes as steps that fit any worker (one per batch
    of shards); the embedded default, one step per asset."""
    if not fanout_enabled():
        return SPLIT_ASSETS
    return [shard_profile_fanout, customer_allocation, split_shards_fanout, consolidated]


def build_defs(consolidate: bool = True, split_config: SplitConfig | None = None) -> dg.Definitions:
    """``consolidate=False`` leaves splits/consolidated out of splits_job (benchmarks of the passes)."""
    keys = [PROFILE_KEY, ALLOCATION_KEY, *SPLIT_KEYS.values()] + ([CONSOLIDATED_KEY] if consolidate else [])
    job = dg.define_asset_job(
        "splits_job",
        selection=dg.AssetSelection.assets(*keys),
        description="Temporal split of the transactions shards (the shard sensor's target).",
    )
    return dg.Definitions(
        assets=split_assets(),
        jobs=[job],
        sensors=[build_splits_sensor(job, consolidate, split_config.params if split_config else params_from_env)],
        # configured at launch: the env defaults are read when a run starts, not here
        resources={"split_config": split_config or SplitConfig.configure_at_launch()},
    )


defs = build_defs()
