"""Partitions of the logs assets: log_id (LOG_IDS) x UTC day (from LOG_START_DATE)."""

import datetime as dt

import dagster as dg

from assets_pkg.logs.planner import day_window
from assets_pkg.logs.store import InvalidLogIdError, validate_log_id
from assets_pkg.settings import SettingError, at_load, env_list, env_str

DEFAULT_LOG_IDS = ["app", "web"]
DEFAULT_START_DATE = "2025-01-01"


def log_ids() -> list[str]:
    """``LOG_IDS``, each a valid log id (SettingError naming the variable otherwise)."""
    try:
        ids = [validate_log_id(x) for x in env_list("LOG_IDS", DEFAULT_LOG_IDS)]
    except InvalidLogIdError as exc:
        raise SettingError(f"LOG_IDS: {exc}") from None
    if not ids or len(set(ids)) != len(ids):
        raise SettingError(f"LOG_IDS={','.join(ids)!r}: expected one or more distinct log ids")
    return ids


def start_date() -> str:
    """``LOG_START_DATE`` (YYYY-MM-DD; SettingError naming the variable otherwise)."""
    value = env_str("LOG_START_DATE", DEFAULT_START_DATE)
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise SettingError(f"LOG_START_DATE={value!r} is not a date (use YYYY-MM-DD)") from None
    return value


def check_settings() -> None:
    """Fail a run of the logs domain on a bad partition setting, naming it (the code
    location loaded with the defaults instead, see build_partitions_def)."""
    log_ids()
    start_date()


def build_partitions_def() -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition(
        {
            "log_id": dg.StaticPartitionsDefinition(at_load(log_ids, DEFAULT_LOG_IDS, "logs")),
            "day": dg.DailyPartitionsDefinition(start_date=at_load(start_date, DEFAULT_START_DATE, "logs"),
                                                timezone="UTC"),
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
