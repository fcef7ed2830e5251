"""``timeseries_daily``: resampled -> merged -> export -> analysis over a day range (the
file sensor's target)."""

import dagster as dg

from assets_pkg.timeseries.assets import DAILY

timeseries_job = dg.define_asset_job(
    "timeseries_daily",
    selection=dg.AssetSelection.groups("timeseries"),
    partitions_def=DAILY,
    description="Resample, merge, export and analyse the selected days (one run per day range).",
)
