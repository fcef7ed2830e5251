"""The splits domain's Definitions: assets, the shard sensor, its job and the config resource.

`splits_job` materializes profile -> allocation -> train/val/oot, plus consolidated when
CONSOLIDATE_STREAMING_OUTPUT=true (read when the code location loads).
"""

import dagster as dg

from assets_pkg.settings import env_bool
from assets_pkg.splits.assets import (
    ALLOCATION_KEY,
    CONSOLIDATED_KEY,
    PROFILE_KEY,
    SPLIT_ASSETS,
    SPLIT_KEYS,
    SplitConfig,
)
from assets_pkg.splits.sensors import build_splits_sensor


def build_defs(consolidate: bool | None = None, split_config: SplitConfig | None = None) -> dg.Definitions:
    if consolidate is None:
        consolidate = env_bool("CONSOLIDATE_STREAMING_OUTPUT", False)
    keys = [PROFILE_KEY, ALLOCATION_KEY, *SPLIT_KEYS.values()] + ([CONSOLIDATED_KEY] if consolidate else [])
    job = dg.define_asset_job(
        "splits_job",
        selection=dg.AssetSelection.assets(*keys),
        description="Temporal split of the transactions shards (the shard sensor's target).",
    )
    return dg.Definitions(
        assets=SPLIT_ASSETS,
        jobs=[job],
        sensors=[build_splits_sensor(job, consolidate)],
        resources={"split_config": split_config or SplitConfig()},
    )


defs = build_defs()
