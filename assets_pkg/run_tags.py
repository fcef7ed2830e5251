"""Run tags that make one run cover a partition range (with a single-run backfill policy).

Pure constants, so planning modules without a dagster import can set them too.
"""

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

# Tags the cluster's run coordinator (assets_pkg.cluster.DomainRunCoordinator) puts on every
# queued run, and deploy/dagster.yaml's tag concurrency limits count.
DOMAIN_TAG_PREFIX = "assets_pkg/domain."
LOG_ID_TAG = "assets_pkg/log_id"
# Dagster's own tag on a run of one multi-partition key: one per dimension.
LOG_ID_PARTITION_TAG = "dagster/partition/log_id"


def domain_tags(domains, job_name: str | None = None, run_tags=None) -> dict[str, str]:
    """``{assets_pkg/domain.<d>: "true"}`` for each domain a run touches (an op job without
    assets, such as ``logs_fetch_window_job``, by its name's first word), plus the log id
    of a logs run over one ``(log_id, day)`` partition."""
    from assets_pkg.domains import DOMAINS

    found = set(domains)
    if not found and job_name and job_name.split("_", 1)[0] in DOMAINS:
        found.add(job_name.split("_", 1)[0])
    tags = {f"{DOMAIN_TAG_PREFIX}{name}": "true" for name in sorted(found)}
    log_id = (run_tags or {}).get(LOG_ID_PARTITION_TAG)
    if "logs" in found and log_id:
        tags[LOG_ID_TAG] = log_id
    return tags
