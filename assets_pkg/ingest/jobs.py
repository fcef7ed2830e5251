"""``ingest_job``: ingest/files over the selected files (the file sensor's target)."""

import dagster as dg

from assets_pkg.ingest.assets import ingest_files, ingest_partitions

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets(ingest_files),
    partitions_def=ingest_partitions,
    description="Stream the selected inbox files into Parquet shards and a rejects table (one run per file range).",
)
