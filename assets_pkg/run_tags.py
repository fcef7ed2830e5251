"""Run tags that make one run cover a partition range (with a single-run backfill policy).

Pure constants, so planning modules without a dagster import can set them too.
"""

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
