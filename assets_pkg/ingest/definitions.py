import dagster as dg

from assets_pkg.ingest.assets import ingest_files
from assets_pkg.ingest.jobs import ingest_job
from assets_pkg.ingest.sensors import ingest_file_sensor

defs = dg.Definitions(assets=[ingest_files], jobs=[ingest_job], sensors=[ingest_file_sensor])
