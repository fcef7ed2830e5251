"""The splits domain's Definitions: assets, the shard sensor, its job and the config resource.

`splits_job` materializes profile -> allocation -> train/val/oot, plus consolidated when
CONSOLIDATE_STREAMING_OUTPUT=true (read when the code location loads). A bad split
setting does not stop the code location loading: the sensor's ticks and the domain's runs
fail naming it.
"""

import dagster as dg

from assets_pkg.settings import at_load, env_value
from assets_pkg.splits.assets import (
    ALLOCATION_KEY,
    CONSOLIDATED_KEY,
    PROFILE_KEY,
    SPLIT_ASSETS,
    SPLIT_KEYS,
    SplitConfig,
)
from assets_pkg.splits.params import SplitParams, params_from_env
from assets_pkg.splits.sensors import build_splits_sensor


def build_defs(consolidate: bool | None = None, split_config: SplitConfig | None = None) -> dg.Definitions:
    if consolidate is None:
        consolidate = at_load(lambda: env_value(SplitParams, "consolidate_streaming_output"), False, "splits")
    keys = [PROFILE_KEY, ALLOCATION_KEY, *SPLIT_KEYS.values()] + ([CONSOLIDATED_KEY] if consolidate else [])
    job = dg.define_asset_job(
        "splits_job",
        selection=dg.AssetSelection.assets(*keys),
        description="Temporal split of the transactions shards (the shard sensor's target).",
    )
    return dg.Definitions(
        assets=SPLIT_ASSETS,
        jobs=[job],
        sensors=[build_splits_sensor(job, consolidate, split_config.params if split_config else params_from_env)],
        # configured at launch: the env defaults are read when a run starts, not here
        resources={"split_config": split_config or SplitConfig.configure_at_launch()},
    )


defs = build_defs()
