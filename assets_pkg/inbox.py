"""Inbox files still being written, and inputs that change under a run (no dagster import).

A file dropped into an inbox arrives over time (a copy in chunks, a download, an editor's
save). A sensor that requested it mid-copy, or a run that read it meanwhile, would publish
half a file as if it were whole. Two rules keep that from happening:

- a sensor requests a local file only once nothing has written to it for
  ``INBOX_SETTLE_SECONDS`` (its mtime is that old); a younger file waits for a later tick,
  which then requests it whole. Objects in an object store appear whole (one PUT), so they
  are always settled;
- a run notes a file's identity (size, mtime, ETag) before it reads it and compares after:
  a file that changed meanwhile fails the read with :class:`SourceChangedError` naming it,
  before anything is published, and a later tick requests it again.
"""

import time
from collections.abc import Iterable
from pathlib import Path

from assets_pkg.settings import SettingError, env_float
from assets_pkg.storage import is_remote
from assets_pkg.storage.objects import file_identity

SETTLE_VAR = "INBOX_SETTLE_SECONDS"
DEFAULT_SETTLE_S = 2.0


class SourceChangedError(ValueError):
    """An input file changed (or vanished) while a run was reading it."""


def settle_seconds() -> float:
    """Seconds a local inbox file must be left alone before a sensor requests it."""
    value = env_float(SETTLE_VAR, DEFAULT_SETTLE_S)
    if value < 0:
        raise SettingError(f"{SETTLE_VAR}={value} is not a number of seconds >= 0")
    return value


def unsettled_age(path, settle_s: float, now: float | None = None) -> float | None:
    """Seconds since ``path`` was last written when that is under ``settle_s`` (it may still
    be being written), else None. A file gone since it was listed is left to a later tick."""
    if settle_s <= 0 or is_remote(path):
        return None
    try:
        mtime = Path(path).stat().st_mtime
    except FileNotFoundError:
        return 0.0
    age = (time.time() if now is None else now) - mtime
    return max(age, 0.0) if age < settle_s else None


def split_settled(items: Iterable, path_of=lambda item: item) -> tuple[list, dict[str, float]]:
    """(items whose file is settled, {file name: seconds since written} of the others)."""
    settle_s = settle_seconds()
    settled, waiting = [], {}
    for item in items:
        age = unsettled_age(path_of(item), settle_s)
        if age is None:
            settled.append(item)
        else:
            waiting[Path(str(path_of(item))).name] = age
    return settled, waiting


def waiting_note(waiting: dict[str, float]) -> str:
    """The words a sensor logs and puts in its skip reason for files it leaves to a later tick."""
    files = ", ".join(f"{name} (written {age:.1f} s ago)" for name, age in sorted(waiting.items()))
    return (f"still being written, left for a later tick (settled after {SETTLE_VAR}="
            f"{settle_seconds():g} s without a change): {files}")


def identity(path) -> tuple:
    """What :func:`check_unchanged` compares: size, mtime in ns, ETag (objects)."""
    try:
        return file_identity(path)
    except FileNotFoundError:
        raise SourceChangedError(f"{path}: the file disappeared before it was read") from None


def check_unchanged(path, before: tuple) -> None:
    """Raise :class:`SourceChangedError` naming ``path`` when its identity differs from
    ``before`` (taken before the read): what was read may be half of either version."""
    try:
        now = file_identity(path)
    except FileNotFoundError:
        now = None
    if now == tuple(before):
        return
    change = "disappeared" if now is None else (
        f"changed (bytes {before[0]} -> {now[0]}, mtime_ns {before[1]} -> {now[1]})")
    raise SourceChangedError(
        f"{path}: {change} while it was being read; nothing was published from it. "
        "It is read again whole once it stops changing (the sensor's next tick requests it)")


def wait_settled(folder) -> float:
    """Sleep until every local file under ``folder`` is settled (the demo drops its sample
    files and ticks the sensors at once); returns the seconds slept."""
    settle_s = settle_seconds()
    folder = Path(str(folder))
    if settle_s <= 0 or is_remote(folder) or not folder.is_dir():
        return 0.0
    ages = [age for p in folder.rglob("*") if p.is_file() and (age := unsettled_age(p, settle_s)) is not None]
    wait = settle_s - min(ages) if ages else 0.0
    time.sleep(wait)
    return wait
