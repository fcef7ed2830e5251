"""The one way the project opens its Dagster instance (``DAGSTER_HOME``).

Dagster creates a fresh home's SQLite storages (runs, event log index, schedules) on first
open, and that creation is not safe across processes: two processes opening a fresh home
together can both stamp the alembic version table and leave it with two heads, after which
every open fails. So the first open is serialized by an exclusive lock (``io.locks.hold``) on
``<DAGSTER_HOME>/.init.lock``, held while ``dagster.yaml`` is written and every storage is
created; later opens take the same lock briefly and find everything in place.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from assets_pkg.io.atomic import atomic_write_text
from assets_pkg.io.locks import hold
from assets_pkg.settings import Settings, get_settings

INIT_LOCK_NAME = ".init.lock"
DEFAULT_INSTANCE_YAML = "telemetry:\n  enabled: false\n"


def ensure_dagster_home(settings: Settings | None = None) -> Path:
    """DAGSTER_HOME defaults to <data root>/.dagster, persistent so `make ui` shows the runs."""
    settings = settings or get_settings()
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.data_root / ".dagster")))
    home.mkdir(parents=True, exist_ok=True)
    return home


def _init_lock(home: Path):
    return hold(home / INIT_LOCK_NAME, "Dagster instance initialization")


def _create(home: Path) -> dg.DagsterInstance:
    config = home / "dagster.yaml"
    if not config.exists():
        atomic_write_text(config, DEFAULT_INSTANCE_YAML)
    instance = dg.DagsterInstance.get()
    try:
        # Constructing the instance created its storages; a read of each proves them usable
        # while the lock is still held.
        instance.get_runs(limit=1)
        instance.all_instigator_state()
    except BaseException:
        instance.dispose()
        raise
    return instance


@contextmanager
def open_instance(settings: Settings | None = None) -> Iterator[dg.DagsterInstance]:
    """The project's Dagster instance at DAGSTER_HOME, created once even when many
    processes start together on a fresh data root."""
    home = ensure_dagster_home(settings)
    with _init_lock(home):
        instance = _create(home)
    with instance:
        yield instance


def init_instance(settings: Settings | None = None) -> Path:
    """Create the instance's storage now (``assets-pkg init``, before ``dagster dev``)."""
    with open_instance(settings):
        pass
    return Path(os.environ["DAGSTER_HOME"])
