"""Validated split settings as plain data (no dagster import).

The Dagster layer (``SplitConfig`` in ``assets.py``) builds a :class:`SplitParams` with
:func:`make_params`; tests, the CLI and the benchmark call it directly. Every error names
the setting (env var) the user has to fix.
"""

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass

from assets_pkg.io.formats import FORMATS
from assets_pkg.settings import SettingError

OOT_POLICIES = ("exclude_train", "exclude_known")
SIGNATURE_FILE = "_signature.txt"  # header-less CSV/TSV shards take their column names from here
DOT_MARKER = "__DOT__"


@dataclass(frozen=True)
class SplitParams:
    date_column: str = "date"
    group_id_column: str = "customer_id"
    split_date: str = "2024-01-01"
    train_ratio: float = 0.9
    random_seed: int = 42
    output_format: str = "parquet"
    targets: tuple[str, ...] = ()
    main_task_index: int = 0
    label_field: str = "label"
    consolidate: bool = False
    oot_policy: str = "exclude_train"
    error_threshold: float = 0.05

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

    def as_dict(self) -> dict:
        return asdict(self)


def make_params(
    *,
    date_column: str = "date",
    group_id_column: str = "customer_id",
    split_date: str = "2024-01-01",
    train_ratio: float = 0.9,
    random_seed: int = 42,
    output_format: str = "parquet",
    targets=(),
    main_task_index: int = 0,
    label_field: str = "label",
    consolidate: bool = False,
    oot_policy: str = "exclude_train",
    error_threshold: float = 0.05,
) -> SplitParams:
    """Validate and build :class:`SplitParams`; raises SettingError naming the setting."""
    try:
        day = dt.date.fromisoformat(str(split_date).strip())
    except ValueError:
        raise SettingError(f"SPLIT_DATE={split_date!r} is not a date (use YYYY-MM-DD)") from None
    try:
        ratio = float(train_ratio)
    except (TypeError, ValueError):
        raise SettingError(f"TRAIN_RATIO={train_ratio!r} is not a number") from None
    if not 0.0 < ratio < 1.0:
        raise SettingError(f"TRAIN_RATIO={train_ratio!r} must be strictly between 0 and 1")
    fmt = str(output_format).strip().lower()
    if fmt not in FORMATS:
        raise SettingError(f"OUTPUT_FORMAT={output_format!r} is unknown; use one of {', '.join(FORMATS)}")
    if oot_policy not in OOT_POLICIES:
        raise SettingError(f"oot_policy={oot_policy!r} is unknown; use one of {', '.join(OOT_POLICIES)}")
    if isinstance(targets, str):
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    targets = tuple(targets)
    n_targets = len(targets) or 1
    if not 0 <= int(main_task_index) < n_targets:
        raise SettingError(
            f"MAIN_TASK_INDEX={main_task_index} is out of range for TARGETS={','.join(targets) or label_field!r}"
        )
    for name, value in (("DATE_COLUMN", date_column), ("GROUP_ID_COLUMN", group_id_column),
                        ("LABEL_FIELD", label_field)):
        if not str(value).strip():
            raise SettingError(f"{name} must not be empty")
    if not 0.0 <= float(error_threshold) <= 1.0:
        raise SettingError(f"error_threshold={error_threshold!r} must be between 0 and 1")
    return SplitParams(
        date_column=str(date_column).strip(),
        group_id_column=str(group_id_column).strip(),
        split_date=day.isoformat(),
        train_ratio=ratio,
        random_seed=int(random_seed),
        output_format=fmt,
        targets=targets,
        main_task_index=int(main_task_index),
        label_field=str(label_field).strip(),
        consolidate=bool(consolidate),
        oot_policy=oot_policy,
        error_threshold=float(error_threshold),
    )


def params_from_env() -> SplitParams:
    """The defaults the launchpad shows: the original script's env vars."""
    from assets_pkg.settings import env_bool, env_float, env_int, env_list, env_str

    return make_params(
        date_column=env_str("DATE_COLUMN", "date"),
        group_id_column=env_str("GROUP_ID_COLUMN", "customer_id"),
        split_date=env_str("SPLIT_DATE", "2024-01-01"),
        train_ratio=env_float("TRAIN_RATIO", 0.9),
        random_seed=env_int("RANDOM_SEED", 42),
        output_format=env_str("OUTPUT_FORMAT", "parquet"),
        targets=env_list("TARGETS", []),
        main_task_index=env_int("MAIN_TASK_INDEX", 0),
        label_field=env_str("LABEL_FIELD", "label"),
        consolidate=env_bool("CONSOLIDATE_STREAMING_OUTPUT", False),
        oot_policy=env_str("OOT_POLICY", "exclude_train"),
    )
