"""The logs domain's Definitions (merged into ``assets_pkg.definitions.defs``)."""

import os

import dagster as dg

from assets_pkg.logs.assets import log_events, log_summary
from assets_pkg.logs.jobs import RESULT_IO_MANAGER, logs_fetch_window_job
from assets_pkg.logs.resources import LogSourceResource
from assets_pkg.logs.schedules import logs_daily_job, logs_daily_schedule
from assets_pkg.settings import executor_kind
from assets_pkg.step_messages import step_messages_io_manager


def _result_io_manager() -> dg.IOManagerDefinition:
    """Where ``logs_fetch_window_job`` keeps its result dict: in memory when the run is one
    process; otherwise in the run's staging folder on the data root, which the step on a
    worker and the orchestrating process (``output_for_node``) both reach. Dagster refuses
    to run a job with an in-memory output through a multi-process executor."""
    if executor_kind() == "in_process":
        return dg.mem_io_manager
    return step_messages_io_manager("logs")


defs = dg.Definitions(
    assets=[log_events, log_summary],
    jobs=[logs_daily_job, logs_fetch_window_job],
    schedules=[logs_daily_schedule],
    # the token is read from the environment where the step runs: it never lands in run
    # config or the UI (dg.EnvVar; unset, the source goes without one)
    resources={
        "log_source": LogSourceResource(api_token=dg.EnvVar("LOG_API_TOKEN") if os.environ.get("LOG_API_TOKEN") else None),
        RESULT_IO_MANAGER: _result_io_manager(),
    },
)
