"""The time-series domain's Definitions (merged into ``assets_pkg.definitions.defs``)."""

import dagster as dg

from assets_pkg.timeseries.assets import ASSETS
from assets_pkg.timeseries.jobs import timeseries_job
from assets_pkg.timeseries.sensors import timeseries_file_sensor

defs = dg.Definitions(assets=ASSETS, jobs=[timeseries_job], sensors=[timeseries_file_sensor])
