"""Summary settings: a YAML/JSON file named by ``SUMMARY_CONFIG``, with defaults built in.

The same fields appear in the Dagster launchpad (``SummaryConfig`` in ``assets.py``); the
file (or the built-in default) supplies the values the launchpad starts from.
"""

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from assets_pkg.settings import SettingError, env_bool, env_str
from assets_pkg.summary.months import MonthError, month_index

CONFIG_VAR = "SUMMARY_CONFIG"
SKIP_BAD_BATCHES_VAR = "SUMMARY_SKIP_BAD_BATCHES"
KEY_TYPES = ("BIGINT", "VARCHAR")
VALUE_TYPES = ("DOUBLE", "FLOAT", "BIGINT", "INTEGER", "VARCHAR")
BAD_ROW_POLICIES = ("error", "skip")

DEFAULT_VALUE_TYPES = {"balance_am": "DOUBLE", "days_past_due": "INTEGER"}


@dataclass(frozen=True)
class SummarySettings:
    """Everything the summary logic needs to know about the source and the output."""

    source_dir: str = ""  # empty: <data root>/inbox/accounts
    key_column: str = "cons_acct_key"
    month_column: str = "rpt_as_of_mo"
    timestamp_column: str = "base_ts"
    history_columns: tuple[str, ...] = ("balance_am", "days_past_due")
    value_columns: tuple[str, ...] = ()  # empty: the history columns
    value_types: dict = field(default_factory=lambda: dict(DEFAULT_VALUE_TYPES))
    key_type: str = "BIGINT"
    history_length: int = 36
    first_month: str = "2016-01"
    bad_rows: str = "error"  # error: refuse the batch; skip: leave bad rows out and count them
    max_rows_per_query: int = 3_000_000  # bounds one DuckDB query (months are chunked by it)
    # a batch file that cannot be used at all (unreadable, corrupt, wrong columns): False
    # stops the build naming it (skipping a batch changes history); True builds from the
    # others, reports it, and leaves it unprocessed
    skip_bad_batches: bool = False

    def __post_init__(self):
        object.__setattr__(self, "history_columns", tuple(self.history_columns))
        object.__setattr__(self, "value_columns", tuple(self.value_columns))
        object.__setattr__(self, "value_types", dict(self.value_types or {}))
        self.validate()

    # ---- derived -------------------------------------------------------------------------
    @property
    def source_path(self) -> Path:
        from assets_pkg import layout

        return Path(self.source_dir) if self.source_dir else layout.inbox_dir("accounts")

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
    def validate(self) -> None:
        try:
            month_index(self.first_month)
        except MonthError as exc:
            raise SettingError(f"summary first_month: {exc}") from None
        if self.history_length < 1:
            raise SettingError(f"summary history_length must be >= 1, got {self.history_length}")
        if self.key_type.upper() not in KEY_TYPES:
            raise SettingError(f"summary key_type {self.key_type!r}: expected one of {KEY_TYPES}")
        if self.bad_rows not in BAD_ROW_POLICIES:
            raise SettingError(f"summary bad_rows {self.bad_rows!r}: expected one of {BAD_ROW_POLICIES}")
        if not self.history_columns:
            raise SettingError("summary history_columns is empty")
        for col in self.all_value_columns:
            if self.value_type(col) not in VALUE_TYPES:
                raise SettingError(f"summary value_types[{col!r}]={self.value_type(col)!r}: expected one of {VALUE_TYPES}")
        names = [self.key_column, self.month_column, self.timestamp_column, *self.all_value_columns]
        if len(set(names)) != len(names):
            raise SettingError(f"summary columns must be distinct, got {names}")
        if self.max_rows_per_query < 1000:
            raise SettingError("summary max_rows_per_query must be >= 1000")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["history_columns"] = list(self.history_columns)
        data["value_columns"] = list(self.value_columns)
        return data


def load_summary_settings(path: str | os.PathLike | None = None, **overrides) -> SummarySettings:
    """Defaults (``SUMMARY_SKIP_BAD_BATCHES`` too), then the file at ``path`` (or
    ``$SUMMARY_CONFIG``), then ``overrides``."""
    path = path or env_str(CONFIG_VAR, "")
    data: dict = {"skip_bad_batches": env_bool(SKIP_BAD_BATCHES_VAR, False)}
    if path:
        file = Path(path)
        if not file.is_file():
            raise SettingError(f"{CONFIG_VAR}={str(path)!r}: no such file")
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
        known = {f.name for f in fields(SummarySettings)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingError(f"{CONFIG_VAR} file {file}: unknown settings {unknown}; known: {sorted(known)}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return SummarySettings(**data)
