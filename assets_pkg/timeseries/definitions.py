"""The time-series domain's Definitions (merged into ``assets_pkg.definitions.defs``)."""

import dagster as dg

from assets_pkg.fanout import fanout_enabled
from assets_pkg.timeseries import fanout_assets
from assets_pkg.timeseries.assets import ASSETS
from assets_pkg.timeseries.jobs import timeseries_job
from assets_pkg.timeseries.sensors import timeseries_file_sensor

# the cluster executors run a range of days as steps that fit any worker; embedded: one step
timeseries_assets = fanout_assets.ASSETS if fanout_enabled() else ASSETS

defs = dg.Definitions(assets=timeseries_assets, jobs=[timeseries_job], sensors=[timeseries_file_sensor])
