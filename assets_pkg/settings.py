"""Every environment variable the project reads is read here, at call time.

Reading at call time (not import time) lets tests and the CLI point the project at
another data root with ``ASSETS_PKG_DATA_DIR`` without reloading modules.
Domain configs use :func:`env_str` & co. for the defaults their launchpad shows.
"""

import os
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_VAR = "ASSETS_PKG_DATA_DIR"


class SettingError(ValueError):
    """A setting (env var or config field) has a value the project cannot use."""


def env_str(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value.strip() == "" else value.strip()


def env_int(name: str, default: int) -> int:
    raw = env_str(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not an integer") from None


def env_float(name: str, default: float) -> float:
    raw = env_str(name, str(default))
    try:
        return float(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a number") from None


def env_bool(name: str, default: bool) -> bool:
    raw = env_str(name, "true" if default else "false").lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingError(f"{name}={raw!r} is not a boolean (use true or false)")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default)
    return [part.strip() for part in raw.split(",") if part.strip()]


@dataclass(frozen=True)
class Settings:
    """Paths under the data root (``ASSETS_PKG_DATA_DIR``, default ``./data``)."""

    data_root: Path

    @property
    def inbox(self) -> Path:
        return self.data_root / "inbox"

    @property
    def warehouse(self) -> Path:
        return self.data_root / "warehouse"

    @property
    def cache(self) -> Path:
        return self.data_root / "cache"

    @property
    def exports(self) -> Path:
        return self.data_root / "exports"

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.data_root / ".dagster")

    @property
    def duckdb_spill_dir(self) -> Path:
        return self.data_root / "tmp" / "duckdb_spill"

    # DuckDB defaults sized for the 2-core / 24 GiB machines this runs on.
    @property
    def duckdb_memory_limit(self) -> str:
        return env_str("DUCKDB_MEMORY_LIMIT", "2GB")

    @property
    def duckdb_threads(self) -> int:
        return env_int("DUCKDB_THREADS", 2)


def get_settings() -> Settings:
    root = Path(env_str(DATA_DIR_VAR, "data")).expanduser()
    return Settings(data_root=root.resolve())
