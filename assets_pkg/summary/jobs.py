"""``summary_job``: account_summary over a month range, then latest_summary (the batch
sensor's target, and the job the demo's and the CLI's summary runs belong to)."""

import dagster as dg

from assets_pkg.summary.assets import account_summary, latest_summary, monthly_partitions

summary_job = dg.define_asset_job(
    "summary_job",
    selection=dg.AssetSelection.assets(account_summary, latest_summary),
    partitions_def=monthly_partitions,
    description="account_summary over the selected months (one run per range), then latest_summary.",
)
