"""Partitions of the logs assets: log_id (LOG_IDS) x UTC day (from LOG_START_DATE)."""

import dagster as dg

from assets_pkg.logs.planner import day_window
from assets_pkg.logs.store import validate_log_id
from assets_pkg.settings import env_list, env_str

DEFAULT_LOG_IDS = ["app", "web"]
DEFAULT_START_DATE = "2025-01-01"


def log_ids() -> list[str]:
    return [validate_log_id(x) for x in env_list("LOG_IDS", DEFAULT_LOG_IDS)]


def start_date() -> str:
    return env_str("LOG_START_DATE", DEFAULT_START_DATE)


def build_partitions_def() -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition(
        {
            "log_id": dg.StaticPartitionsDefinition(log_ids()),
            "day": dg.DailyPartitionsDefinition(start_date=start_date(), timezone="UTC"),
        }
    )


LOG_PARTITIONS = build_partitions_def()


def partition_key(log_id: str, day: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"log_id": log_id, "day": day})


def split_key(key) -> tuple[str, str, int, int]:
    """(log_id, day, start_ms, end_ms) of a multi-partition key."""
    if not isinstance(key, dg.MultiPartitionKey):
        key = LOG_PARTITIONS.get_partition_key_from_str(str(key))
    dims = key.keys_by_dimension
    start_ms, end_ms = day_window(dims["day"])
    return dims["log_id"], dims["day"], start_ms, end_ms
