import dagster as dg

from assets_pkg.summary.assets import account_summary, latest_summary
from assets_pkg.summary.jobs import summary_job
from assets_pkg.summary.sensors import summary_batch_sensor

defs = dg.Definitions(assets=[account_summary, latest_summary], jobs=[summary_job], sensors=[summary_batch_sensor])
