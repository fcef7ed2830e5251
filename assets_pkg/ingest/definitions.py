import dagster as dg

from assets_pkg.fanout import fanout_enabled
from assets_pkg.ingest.assets import ingest_files, ingest_files_fanout
from assets_pkg.ingest.jobs import ingest_job
from assets_pkg.ingest.sensors import ingest_file_sensor

# the cluster executors run a range of files as steps that fit any worker; embedded: one step
ingest_asset = ingest_files_fanout if fanout_enabled() else ingest_files

defs = dg.Definitions(assets=[ingest_asset], jobs=[ingest_job], sensors=[ingest_file_sensor])
