"""Split settings, declared once (no dagster import).

:class:`SplitParams` is the one declaration: each field's type, default, description and
env var (the original script's names). :func:`params_from_env` reads it from the
environment, the Dagster layer derives ``SplitConfig`` (``assets.py``) from it, and tests,
the CLI and the benchmark call :func:`make_params`. Every error names the setting (env var)
the user has to fix.
"""

import datetime as dt
import hashlib
import json

from pydantic import field_validator, model_validator

from assets_pkg.io.formats import FORMATS
from assets_pkg.settings import SettingsModel, setting

OOT_POLICIES = ("exclude_train", "exclude_known")
SIGNATURE_FILE = "_signature.txt"  # header-less CSV/TSV shards take their column names from here
DOT_MARKER = "__DOT__"


class SplitParams(SettingsModel):
    """Settings of the temporal split. Each field defaults from the original script's env var."""

    date_column: str = setting("date", env="DATE_COLUMN", description="Column with the row's date (env DATE_COLUMN).")
    group_id_column: str = setting(
        "customer_id", env="GROUP_ID_COLUMN",
        description="Customer id column; a customer is never in two splits (env GROUP_ID_COLUMN).")
    split_date: str = setting(
        "2024-01-01", env="SPLIT_DATE", form="a date YYYY-MM-DD",
        description="YYYY-MM-DD: rows before it are pre-split (train/val), rows on or after are OOT (env SPLIT_DATE).")
    train_ratio: float = setting(
        0.9, env="TRAIN_RATIO", form="a number strictly between 0 and 1",
        description="Share of known customers in train, strictly between 0 and 1 (env TRAIN_RATIO).")
    random_seed: int = setting(
        42, env="RANDOM_SEED", description="Salt of the customer hash md5(f'{seed}:{customer}') (env RANDOM_SEED).")
    output_format: str = setting(
        "parquet", env="OUTPUT_FORMAT",
        description="parquet | csv | tsv for the split shards and consolidated files (env OUTPUT_FORMAT).")
    targets: tuple[str, ...] = setting(
        (), env="TARGETS", description="Target columns (multi-task); empty = LABEL_FIELD (env TARGETS, comma separated).")
    main_task_index: int = setting(
        0, env="MAIN_TASK_INDEX", description="Index into TARGETS of the main label (env MAIN_TASK_INDEX).")
    label_field: str = setting(
        "label", env="LABEL_FIELD",
        description="Output column of the main label; non-numeric labels are coded through the global label map "
                    "(env LABEL_FIELD).")
    consolidate_streaming_output: bool = setting(
        False, env="CONSOLIDATE_STREAMING_OUTPUT",
        description="Env CONSOLIDATE_STREAMING_OUTPUT, read when the code location loads: true puts splits/consolidated "
                    "(single files per split under exports/splits/) into splits_job, the sensor's run.")
    oot_policy: str = setting(
        "exclude_train", env="OOT_POLICY",
        description="exclude_train (default): post-split rows of train customers are dropped; exclude_known: of any "
                    "known customer (env OOT_POLICY).")
    error_threshold: float = setting(
        0.05, description="Share of rejected lines / unparseable dates that fails a shard.")

    @field_validator("date_column", "group_id_column", "label_field", mode="before")
    @classmethod
    def _column(cls, value):
        if not str(value).strip():
            raise ValueError("must not be empty")
        return str(value).strip()

    @field_validator("split_date", mode="before")
    @classmethod
    def _date(cls, value):
        try:
            return dt.date.fromisoformat(str(value).strip()).isoformat()
        except ValueError:
            raise ValueError("is not a date (use YYYY-MM-DD)") from None

    @field_validator("train_ratio")
    @classmethod
    def _ratio(cls, value):
        if not 0.0 < value < 1.0:
            raise ValueError("must be strictly between 0 and 1")
        return value

    @field_validator("output_format", mode="before")
    @classmethod
    def _format(cls, value):
        fmt = str(value).strip().lower()
        if fmt not in FORMATS:
            raise ValueError(f"is unknown; use one of {', '.join(FORMATS)}")
        return fmt

    @field_validator("oot_policy")
    @classmethod
    def _policy(cls, value):
        if value not in OOT_POLICIES:
            raise ValueError(f"is unknown; use one of {', '.join(OOT_POLICIES)}")
        return value

    @field_validator("targets", mode="before")
    @classmethod
    def _targets(cls, value):
        if isinstance(value, str):
            return tuple(t.strip() for t in value.split(",") if t.strip())
        return tuple(value)

    @field_validator("error_threshold")
    @classmethod
    def _threshold(cls, value):
        if not 0.0 <= value <= 1.0:
            raise ValueError("must be between 0 and 1")
        return value

    @model_validator(mode="after")
    def _main_task(self):
        if not 0 <= self.main_task_index < (len(self.targets) or 1):
            raise ValueError(f"MAIN_TASK_INDEX={self.main_task_index} is out of range for "
                             f"TARGETS={','.join(self.targets) or self.label_field!r}")
        return self

    @property
    def target_columns(self) -> tuple[str, ...]:
        """TARGETS, or the label field itself when TARGETS is not set."""
        return self.targets or (self.label_field,)

    @property
    def main_target(self) -> str:
        """The source column of the main label: TARGETS[MAIN_TASK_INDEX]."""
        return self.target_columns[self.main_task_index]

    @property
    def excludes_known(self) -> bool:
        """``oot_policy == "exclude_known"``: no known customer (train or val) in oot."""
        return self.oot_policy == "exclude_known"

    def allocation_key(self) -> dict:
        """The settings an allocation depends on (pass 2 refuses a mismatch)."""
        return {
            "split_date": self.split_date,
            "train_ratio": self.train_ratio,
            "random_seed": self.random_seed,
            "oot_policy": self.oot_policy,
            "date_column": self.date_column,
            "group_id_column": self.group_id_column,
            "main_target": self.main_target,
        }

    def digest(self) -> str:
        return hashlib.md5(json.dumps(self.allocation_key(), sort_keys=True).encode()).hexdigest()


def make_params(**values) -> SplitParams:
    """Validate and build :class:`SplitParams` (unset fields: the declared defaults, not
    the environment); raises SettingError naming the setting."""
    return SplitParams.build(**values)


def params_from_env() -> SplitParams:
    """The declared defaults, overridden by the original script's env vars."""
    return SplitParams.from_env()
