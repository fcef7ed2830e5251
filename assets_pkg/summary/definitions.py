import dagster as dg

from assets_pkg.fanout import fanout_enabled
from assets_pkg.summary.assets import account_summary, latest_summary
from assets_pkg.summary.fanout_assets import account_summary_fanout
from assets_pkg.summary.jobs import summary_job
from assets_pkg.summary.sensors import summary_batch_sensor

# the cluster executors run the summary as steps that fit any worker; embedded: one step
summary_asset = account_summary_fanout if fanout_enabled() else account_summary
defs = dg.Definitions(assets=[summary_asset, latest_summary], jobs=[summary_job], sensors=[summary_batch_sensor])
