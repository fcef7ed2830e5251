"""Every environment variable the project reads is read here, at call time.

Reading at call time (not import time) lets tests and the CLI point the project at
another data root with ``ASSETS_PKG_DATA_DIR`` without reloading modules.

A domain declares its settings once, as a :class:`SettingsModel` whose fields are made
with :func:`setting` (type, default, description, env var). :meth:`SettingsModel.from_env`
reads them (the env var overrides the default) and the Dagster layer derives the launchpad
config class from the same declaration (``assets_pkg.dagster_layer.config_class``).
"""

import os
import typing
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assets_pkg.storage.root import data_root_from, is_remote, local_scratch

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


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env_str(name, default).lower()
    if raw not in choices:
        raise SettingError(f"{name}={raw!r} is not one of {', '.join(choices)}")
    return raw


AUTOMATION_VAR = "ASSETS_PKG_AUTOMATION"


def automation_on() -> bool:
    """Whether the inbox sensors and the schedules start running in a fresh instance
    (``ASSETS_PKG_AUTOMATION``: on|off, default on)."""
    return env_choice(AUTOMATION_VAR, "on", ("on", "off")) == "on"


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default)
    return [part.strip() for part in raw.split(",") if part.strip()]


def setting(default: Any, *, description: str, env: str | None = None, form: str | None = None) -> Any:
    """One declared setting: its default, the description the launchpad shows, the env
    var that overrides the default and, where the type does not say it, the expected form
    (named in the error a bad value gets)."""
    extra = {"env": env, "form": form}
    if isinstance(default, (dict, list)):
        return Field(default_factory=lambda: type(default)(default), description=description, json_schema_extra=extra)
    return Field(default=default, description=description, json_schema_extra=extra)


def env_var_of(model: type[BaseModel], name: str) -> str | None:
    """The env var declared for field ``name`` (None: the field has none)."""
    extra = model.model_fields[name].json_schema_extra
    return extra.get("env") if isinstance(extra, dict) else None


def _env_reader(annotation):
    """The env_* reader that parses a field of this type (None: not settable by env)."""
    origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        return lambda name, default: tuple(env_list(name, list(default)))
    return {str: env_str, int: env_int, float: env_float, bool: env_bool}.get(annotation)


def env_value(model: type[BaseModel], name: str):
    """Field ``name`` of ``model`` as the environment sets it (its env var, else its
    default); a bad value raises :class:`SettingError` naming the variable."""
    field = model.model_fields[name]
    default = field.get_default(call_default_factory=True)
    var = env_var_of(model, name)
    read = _env_reader(field.annotation)
    return default if var is None or read is None else read(var, default)


class SettingsModel(BaseModel):
    """Base of a domain's settings declaration: validated, frozen, unknown names refused.

    Validators raise ``ValueError`` with the expected form; :meth:`build` turns what
    pydantic reports into one :class:`SettingError` naming each bad setting by its env var
    (or its field name where it has none)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, **values):
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingError(describe_errors(type(self), exc)) from None

    @classmethod
    def build(cls, **values):
        return cls(**values)

    @classmethod
    def env_defaults(cls) -> dict:
        """Every field: its declared default, overridden by its env var. Each variable is
        parsed alone (a bad one raises naming it); the fields are validated together by
        :meth:`build`, after a run's own values are merged in."""
        return {name: env_value(cls, name) for name in cls.model_fields}

    @classmethod
    def from_env(cls, **overrides):
        """Defaults, overridden by the env vars, overridden by ``overrides``."""
        return cls.build(**{**cls.env_defaults(), **overrides})


def at_load(read, fallback, what: str):
    """A setting the code location needs while it loads (a partitions start, a job's
    selection). A bad value must not take the other domains down with it: warn and use
    ``fallback``; the domain's runs (and sensor) fail on the same setting, naming it."""
    try:
        return read()
    except SettingError as exc:
        warnings.warn(f"{what}: {exc}; using {fallback!r} while loading, runs of this domain fail until it is fixed",
                      stacklevel=2)
        return fallback


def describe_errors(model: type[BaseModel], exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        name = err["loc"][0] if err["loc"] else None
        message = err["msg"].removeprefix("Value error, ")
        if name is None:
            parts.append(message)  # a check across fields names its settings itself
        elif err["type"] == "extra_forbidden":
            parts.append(f"unknown setting {name!r}; known: {', '.join(model.model_fields)}")
        else:
            label = env_var_of(model, name) if name in model.model_fields else None
            form = (model.model_fields[name].json_schema_extra or {}).get("form") if name in model.model_fields else None
            if err["type"] == "value_error":  # our validators' words: "is not a date (use YYYY-MM-DD)"
                parts.append(f"{label or name}={err['input']!r} {message}")
            else:  # pydantic's type errors, with the form the declaration names
                hint = f" (expected {form})" if form else ""
                parts.append(f"{label or name}={err['input']!r}: {message}{hint}")
    return "; ".join(parts)


@dataclass(frozen=True)
class Settings:
    """Paths under the data root (``ASSETS_PKG_DATA_DIR``, default ``./data``)."""

    data_root: Path  # or a upath.UPath for an object-store root (assets_pkg.storage)

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
        if os.environ.get("DAGSTER_HOME"):
            return Path(os.environ["DAGSTER_HOME"])
        # the instance is always a local folder: SQLite cannot live in an object store, and
        # the cluster profile sets DAGSTER_HOME to deploy/'s Postgres instance
        return Path(".dagster").resolve() if is_remote(self.data_root) else self.data_root / ".dagster"

    @property
    def duckdb_spill_dir(self) -> Path:
        if is_remote(self.data_root):
            return local_scratch("duckdb_spill")
        return self.data_root / "tmp" / "duckdb_spill"

    # DuckDB defaults sized for the 2-core / 24 GiB machines this runs on.
    @property
    def duckdb_memory_limit(self) -> str:
        return env_str("DUCKDB_MEMORY_LIMIT", "2GB")

    @property
    def duckdb_threads(self) -> int:
        return env_int("DUCKDB_THREADS", 2)


def get_settings() -> Settings:
    return Settings(data_root=data_root_from(env_str(DATA_DIR_VAR, "data")))


EXECUTOR_VAR = "ASSETS_PKG_EXECUTOR"
EXECUTORS = ("in_process", "multiprocess", "celery")
CELERY_BROKER_VAR = "CELERY_BROKER_URL"
CELERY_BACKEND_VAR = "CELERY_RESULT_BACKEND"


def executor_kind() -> str:
    """How a run executes its steps (``ASSETS_PKG_EXECUTOR``, default ``in_process``): one
    process, one process per step on this machine, or Celery workers on any machine."""
    return env_choice(EXECUTOR_VAR, "in_process", EXECUTORS)


def celery_broker_url() -> str:
    """The Celery broker (``CELERY_BROKER_URL``), required by the celery executor and
    ``assets-pkg worker``: there is no broker worth guessing."""
    url = env_str(CELERY_BROKER_VAR, "")
    if not url:
        raise SettingError(f"{CELERY_BROKER_VAR} is not set (e.g. redis://127.0.0.1:6379/0); "
                           f"{EXECUTOR_VAR}=celery and `assets-pkg worker` need it")
    return url


def celery_backend_url() -> str:
    """Where Celery workers put step results (``CELERY_RESULT_BACKEND``, default: the broker)."""
    return env_str(CELERY_BACKEND_VAR, "") or celery_broker_url()
