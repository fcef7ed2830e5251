"""Time-series settings, declared once (no dagster import); ``TimeseriesConfig`` in
``assets.py`` is derived from this declaration."""

import datetime as dt

from pydantic import field_validator

from assets_pkg.settings import SettingsModel, setting


class TimeseriesSettings(SettingsModel):
    """Where the catalog is, and the settings a run may override."""

    catalog: str = setting(
        "", env="TIMESERIES_CATALOG",
        description="Path of datasets.yaml (env TIMESERIES_CATALOG; default <data root>/inbox/timeseries/datasets.yaml).")
    coverage_threshold: float = setting(
        -1.0, env="TIMESERIES_COVERAGE_THRESHOLD",
        description="coverage check warns below this share of buckets; -1 = the catalog's coverage_threshold "
        "(env TIMESERIES_COVERAGE_THRESHOLD).")
    # read when the code location loads (it is the partitions' start), so not in the launchpad
    start_date: str = setting("2024-01-01", env="TIMESERIES_START_DATE",
                              description="First UTC day partition, YYYY-MM-DD (env TIMESERIES_START_DATE).")

    @field_validator("start_date")
    @classmethod
    def _date(cls, value):
        try:
            return dt.date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            raise ValueError("is not a date (use YYYY-MM-DD)") from None
