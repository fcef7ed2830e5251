"""Summary settings, declared once: :class:`SummarySettings` (type, default, description of
each field). The values come from the defaults, then ``SUMMARY_SKIP_BAD_BATCHES``, then a
YAML/JSON file named by ``SUMMARY_CONFIG``; the Dagster launchpad's ``SummaryConfig``
(``assets.py``) is derived from the same declaration and starts from those values.
"""

import json
import os
from pathlib import Path

from pydantic import field_validator, model_validator

from assets_pkg.settings import SettingError, SettingsModel, env_str, setting
from assets_pkg.summary.months import MonthError, month_index

CONFIG_VAR = "SUMMARY_CONFIG"
SKIP_BAD_BATCHES_VAR = "SUMMARY_SKIP_BAD_BATCHES"
KEY_TYPES = ("BIGINT", "VARCHAR")
VALUE_TYPES = ("DOUBLE", "FLOAT", "BIGINT", "INTEGER", "VARCHAR")
BAD_ROW_POLICIES = ("error", "skip")

DEFAULT_VALUE_TYPES = {"balance_am": "DOUBLE", "days_past_due": "INTEGER"}


class SummarySettings(SettingsModel):
    """Summary settings; defaults come from the SUMMARY_CONFIG file (or the built-in ones)."""

    source_dir: str = setting("", description="Folder of account batch files; empty = <data root>/inbox/accounts.")
    key_column: str = setting("cons_acct_key", description="Account key column.")
    month_column: str = setting("rpt_as_of_mo", description="Month column, 'YYYY-MM'.")
    timestamp_column: str = setting("base_ts", description="Load timestamp column; the greatest wins per (account, month).")
    history_columns: tuple[str, ...] = setting(
        ("balance_am", "days_past_due"), description="Columns that get a <col>_history array.")
    value_columns: tuple[str, ...] = setting(
        (), description="Current-value columns carried to the summary (empty = history columns).")
    value_types: dict[str, str] = setting(
        DEFAULT_VALUE_TYPES, description="DuckDB type per value column (DOUBLE, FLOAT, BIGINT, INTEGER, VARCHAR; "
                                         "unlisted: DOUBLE). Set in the SUMMARY_CONFIG file.")
    key_type: str = setting("BIGINT", description="BIGINT or VARCHAR.")
    history_length: int = setting(36, description="Length of every history array.")
    first_month: str = setting("2016-01", description="First month of the partitions; earlier records are bad input.")
    bad_rows: str = setting(
        "error", description="error: refuse bad records (naming file/row); skip: leave them out and count them.")
    max_rows_per_query: int = setting(
        3_000_000, description="Rows per DuckDB query; months are chunked to stay below it (memory bound).")
    skip_bad_batches: bool = setting(
        False, env=SKIP_BAD_BATCHES_VAR,
        description="A batch file that cannot be used (unreadable, corrupt, wrong columns): false (default) stops the "
                    "build naming it, since skipping a batch changes history; true builds from the other batches, "
                    "lists the skipped files in the metadata and leaves them unprocessed (env SUMMARY_SKIP_BAD_BATCHES).")

    @field_validator("value_types", mode="before")
    @classmethod
    def _types(cls, value):
        return dict(value or {})

    @field_validator("key_type", mode="before")
    @classmethod
    def _key_type(cls, value):
        return str(value).upper()

    # ---- derived -------------------------------------------------------------------------
    @property
    def source_path(self) -> Path:
        from assets_pkg import layout

        from assets_pkg.storage import as_path

        return as_path(self.source_dir) if self.source_dir else layout.inbox_dir("accounts")

    @property
    def all_value_columns(self) -> tuple[str, ...]:
        cols = list(self.value_columns or self.history_columns)
        for col in self.history_columns:
            if col not in cols:
                cols.append(col)
        return tuple(cols)

    def value_type(self, column: str) -> str:
        return str(self.value_types.get(column, "DOUBLE")).upper()

    @property
    def first_month_index(self) -> int:
        return month_index(self.first_month)

    def history_name(self, column: str) -> str:
        return f"{column}_history"

    # ---- validation ------------------------------------------------------------------------
    @model_validator(mode="after")
    def _validate(self):
        try:
            month_index(self.first_month)
        except MonthError as exc:
            raise ValueError(f"summary first_month: {exc}") from None
        if self.history_length < 1:
            raise ValueError(f"summary history_length must be >= 1, got {self.history_length}")
        if self.key_type not in KEY_TYPES:
            raise ValueError(f"summary key_type {self.key_type!r}: expected one of {KEY_TYPES}")
        if self.bad_rows not in BAD_ROW_POLICIES:
            raise ValueError(f"summary bad_rows {self.bad_rows!r}: expected one of {BAD_ROW_POLICIES}")
        if not self.history_columns:
            raise ValueError("summary history_columns is empty")
        for col in self.all_value_columns:
            if self.value_type(col) not in VALUE_TYPES:
                raise ValueError(f"summary value_types[{col!r}]={self.value_type(col)!r}: expected one of {VALUE_TYPES}")
        names = [self.key_column, self.month_column, self.timestamp_column, *self.all_value_columns]
        if len(set(names)) != len(names):
            raise ValueError(f"summary columns must be distinct, got {names}")
        if self.max_rows_per_query < 1000:
            raise ValueError("summary max_rows_per_query must be >= 1000")
        return self

    def to_dict(self) -> dict:
        data = self.model_dump()
        data["history_columns"] = list(self.history_columns)
        data["value_columns"] = list(self.value_columns)
        return data


def _read_file(file: Path) -> dict:
    if not file.is_file():
        raise SettingError(f"{CONFIG_VAR}={str(file)!r}: no such file")
    text = file.read_text(encoding="utf-8")
    try:
        if file.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as exc:  # noqa: BLE001 - report any parse error with the file name
        raise SettingError(f"{CONFIG_VAR} file {file}: cannot parse: {exc}") from None
    if not isinstance(data, dict):
        raise SettingError(f"{CONFIG_VAR} file {file}: expected a mapping of settings")
    return data


def load_summary_settings(path: str | os.PathLike | None = None, **overrides) -> SummarySettings:
    """Defaults, then ``SUMMARY_SKIP_BAD_BATCHES``, then the file at ``path`` (or
    ``$SUMMARY_CONFIG``), then ``overrides``. A bad value raises SettingError naming the
    variable or the file."""
    path = path or env_str(CONFIG_VAR, "")
    data = SummarySettings.env_defaults()
    if path:
        data.update(_read_file(Path(path)))
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return SummarySettings(**data)
    except SettingError as exc:
        raise SettingError(f"{CONFIG_VAR} file {path}: {exc}" if path else str(exc)) from None
