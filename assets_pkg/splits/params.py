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
REQUIRED = "is not set; it is required (as in the original script)"


class SplitParams(SettingsModel):
    """Settings of the temporal split. Each field defaults from the original script's env var."""

    # DATE_COLUMN, GROUP_ID_COLUMN and SPLIT_DATE are required, as in the original script:
    # declared empty, an unset one fails the domain's runs and ticks naming the variable
    date_column: str = setting("", env="DATE_COLUMN",
                               description="Required: column with the row's date (env DATE_COLUMN).")
    group_id_column: str = setting(
        "", env="GROUP_ID_COLUMN",
        description="Required: customer id column; a customer is never in two splits (env GROUP_ID_COLUMN).")
    split_date: str = setting(
        "", env="SPLIT_DATE", form="a date YYYY-MM-DD",
        description="Required, YYYY-MM-DD: rows before it are pre-split (train/val), rows on or after are OOT "
                    "(env SPLIT_DATE).")
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
        "", env="LABEL_FIELD",
        description="Label column (with TARGETS: the output column of the main label); non-numeric labels are coded "
                    "through the global label map. Unset with TARGETS unset: no label processing, no row dropped "
                    "for lacking a label (env LABEL_FIELD).")
    enable_true_streaming: bool = setting(
        False, env="ENABLE_TRUE_STREAMING",
        description="false (default): splits/consolidated writes single files training_data/{train,val,test}/"
                    "<split>_processed_data.<ext> and oot_data/oot_data.<ext> under exports/splits/; true: 1:1 shards "
                    "training_data/{train,val,test}/part-NNNNN.<ext> and oot_data/part-NNNNN.<ext> "
                    "(env ENABLE_TRUE_STREAMING).")
    consolidate_streaming_output: bool = setting(
        False, env="CONSOLIDATE_STREAMING_OUTPUT",
        description="With ENABLE_TRUE_STREAMING=true: write single files (as without streaming) instead of 1:1 "
                    "shards (env CONSOLIDATE_STREAMING_OUTPUT).")
    max_workers: int = setting(
        2, env="MAX_WORKERS", form="a whole number >= 1",
        description="Shards in flight at once in pass 1 and pass 2 (env MAX_WORKERS).")
    oot_policy: str = setting(
        "exclude_train", env="OOT_POLICY",
        description="exclude_train (default): post-split rows of train customers are dropped; exclude_known: of any "
                    "known customer (env OOT_POLICY).")
    error_threshold: float = setting(
        0.05, description="Share of rejected lines / unparseable dates that fails a shard.")

    @field_validator("date_column", "group_id_column", mode="before")
    @classmethod
    def _column(cls, value):
        if not str(value).strip():
            raise ValueError(REQUIRED)
        return str(value).strip()

    @field_validator("label_field", mode="before")
    @classmethod
    def _label(cls, value):
        return str(value or "").strip()

    @field_validator("max_workers")
    @classmethod
    def _workers(cls, value):
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("split_date", mode="before")
    @classmethod
    def _date(cls, value):
        if not str(value).strip():
            raise ValueError(REQUIRED)
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
    def labelled(self) -> bool:
        """Label processing on: TARGETS or LABEL_FIELD set (the original's labels are optional)."""
        return bool(self.targets or self.label_field)

    @property
    def target_columns(self) -> tuple[str, ...]:
        """TARGETS, or the label field itself when TARGETS is not set (none when unlabelled)."""
        return self.targets or ((self.label_field,) if self.label_field else ())

    @property
    def main_target(self) -> str | None:
        """The source column of the main label: TARGETS[MAIN_TASK_INDEX] (None: unlabelled)."""
        return self.target_columns[self.main_task_index] if self.labelled else None

    @property
    def derived_targets(self) -> tuple[str, ...]:
        """With TARGETS of two or more columns, the main label is built as the original does:
        the row-wise maximum of these, the other targets (empty: the main target is taken as is)."""
        if len(self.targets) < 2:
            return ()
        return tuple(t for i, t in enumerate(self.targets) if i != self.main_task_index)

    @property
    def output_label(self) -> str | None:
        """The output column holding the main label: LABEL_FIELD, else the main target."""
        return self.label_field or self.main_target

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
            "main_label_from": list(self.derived_targets),
            "output_label": self.output_label,
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
