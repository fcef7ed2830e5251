"""Run in a subprocess by test_settings.py (settings are read from the env at import).

Imports the code location, then materializes one splits shard, one summary month and one
log day on a
real instance and prints one JSON line: each domain's outcome and error text."""

import json
import sys
from pathlib import Path

import dagster as dg

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def failure_text(result) -> str:
    errors = [getattr(e.event_specific_data, "error", None) for e in result.all_events if e.is_failure]
    return " ".join(error.to_string() for error in errors if error) or "failed without an error"


def main(root: Path) -> None:
    from assets_pkg.definitions import defs  # must load whatever one domain's settings say
    from assets_pkg.demo.splits import make_rows, write_shard
    from assets_pkg_tests.test_summary_helpers import write_batch

    write_shard(make_rows(60, seed=1, n_customers=10), root / "inbox" / "transactions" / "part-00001.parquet")
    write_batch(root / "inbox" / "accounts", "0001.parquet", [(1, "2024-01", 1.0, 0, 1), (2, "2024-02", 2.0, 1, 2)])
    out = {}
    with dg.instance_for_test(temp_dir=str(root / ".dagster")) as instance:
        try:
            sensor = defs.resolve_sensor_def("splits_shard_sensor")
            sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
            out["splits_tick"] = "ok"
        except Exception as exc:  # noqa: BLE001 - the probe reports what the tick raised
            out["splits_tick"] = str(exc)
        instance.add_dynamic_partitions("splits_shards", ["00001"])
        result = defs.resolve_job_def("splits_job").execute_in_process(
            instance=instance, partition_key="00001", raise_on_error=False)
        out["splits"] = "ok" if result.success else failure_text(result)
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, tags={RANGE_START: "2024-01", RANGE_END: "2024-02"},
            asset_selection=[dg.AssetKey(["summary", "account_summary"])], raise_on_error=False)
        out["summary"] = "ok" if result.success else failure_text(result)
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, partition_key=dg.MultiPartitionKey({"log_id": "app", "day": "2025-01-02"}),
            asset_selection=[dg.AssetKey(["logs", "log_events"])], raise_on_error=False)
        out["logs"] = "ok" if result.success else failure_text(result)
    print(json.dumps(out))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
