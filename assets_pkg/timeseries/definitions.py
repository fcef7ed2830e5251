"""The time-series domain's Definitions (merged into ``assets_pkg.definitions.defs``)."""

import dagster as dg

from assets_pkg.timeseries.assets import ASSETS, DAILY
from assets_pkg.timeseries.sensors import timeseries_file_sensor

timeseries_job = dg.define_asset_job(
    "timeseries_daily",
    selection=dg.AssetSelection.groups("timeseries"),
    partitions_def=DAILY,
    description="Resample, merge, export and analyse the selected days (one run per day range).",
)

defs = dg.Definitions(assets=ASSETS, jobs=[timeseries_job], sensors=[timeseries_file_sensor])
