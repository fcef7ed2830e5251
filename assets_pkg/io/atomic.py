"""Atomic file and folder publication.

Every write goes to a hidden temp name in the destination folder and is published with
one ``os.replace`` (files) or ``os.rename`` (folders). A reader never sees a half-written
file, and a killed run leaves only ``.tmp-`` names, which nothing treats as complete.

On an object-store root (:func:`assets_pkg.storage.is_remote`) the same calls publish
without rename: a file is one complete PUT of a local temp, a folder is its parts plus a
commit object written last (:mod:`assets_pkg.storage.objects`).
"""

import errno
import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from assets_pkg.storage import as_path, is_remote
from assets_pkg.storage import objects as remote_objects

TEMP_MARKER = ".tmp-"
# A temp older than this is stale whoever wrote it; one whose writer (named in the temp) is
# a process of this host that is gone is stale at once. An hour leaves any live writer on
# another host (a shared data root) far more than the time between two of its writes.
STALE_TEMP_GRACE_S = 3600.0
# Errors of the disk being written (full, quota, file size limit, I/O, read-only): the OS
# reports them without a file name, so the writer adds the one it was writing.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
WRITE_ERRNOS = DISK_FULL_ERRNOS | {errno.EIO, errno.EROFS}


def naming_path(exc: OSError, path: Path | str) -> OSError:
    """``exc`` as an OSError naming ``path`` when it is a disk write error naming no file
    ("No space left on device" alone does not say which disk); otherwise ``exc`` itself."""
    if exc.filename is not None or exc.errno not in WRITE_ERRNOS:
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


@contextmanager
def _paths_named(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        named = naming_path(exc, path)
        if named is exc:
            raise
        raise named from exc


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def temp_sibling(final: Path) -> Path:
    """A hidden temp name beside ``final`` (what :func:`remove_stale_temps` clears), naming
    its writer: ``.<name>.tmp-<host>-<pid>-<random>``."""
    return final.with_name(f".{final.name}{TEMP_MARKER}{_host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:12]}")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, killed but not yet reaped by its
    parent, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill()
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _writer_gone(name: str) -> bool:
    """The temp's writer is a process of this host that no longer runs (False where the
    name does not say: an earlier release's temp, or another host's)."""
    parts = name.rsplit(TEMP_MARKER, 1)[-1].split("-")
    if len(parts) != 3 or parts[0] != _host_tag() or not parts[1].isdigit():
        return False
    return not pid_alive(int(parts[1]))


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and TEMP_MARKER in name


_swept: dict[tuple[int, Path], float] = {}
SWEEP_EVERY_S = 60.0


def _sweep_before_write(folder: Path) -> None:
    """Clear the stale temps of ``folder`` before writing into it: a killed writer's
    leftovers go with the next write there. Once a minute per folder and process, so a
    folder of many partitions is not listed once per file written."""
    key = (os.getpid(), folder)
    now = time.monotonic()
    if now - _swept.get(key, -SWEEP_EVERY_S) < SWEEP_EVERY_S:
        return
    _swept[key] = now
    remove_stale_temps(folder, older_than_s=STALE_TEMP_GRACE_S)


@contextmanager
def atomic_path(final: Path | str, uploads: "remote_objects.BackgroundUploads | None" = None) -> Iterator[Path]:
    """Yield a temp path beside ``final``; publish it on success, remove it on error.

    If the body leaves no file at the temp path, nothing is published and ``final`` is
    left as it was. ``uploads`` (object-store root only; ignored on a local one): the PUT
    is queued there and the caller goes on; the object is published when that queue's
    ``with`` block ends (see :class:`assets_pkg.storage.objects.BackgroundUploads`).
    """
    final = as_path(final)
    if is_remote(final):
        with (uploads.put_atomic(final) if uploads is not None else remote_objects.put_atomic(final)) as tmp:
            yield tmp
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    _sweep_before_write(final.parent)
    tmp = temp_sibling(final)
    try:
        with _paths_named(final):
            yield tmp
            if tmp.exists():
                os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(final: Path | str, replace: bool = False) -> Iterator[Path]:
    """Yield a temp folder beside ``final``; rename it to ``final`` when the body succeeds.

    By default ``final`` must not exist yet (a published folder is immutable). With
    ``replace=True`` an existing ``final`` is kept until the new folder is complete, then
    swapped out: a reader sees the old folder or the new one, never a partial one (between
    the two renames the name is briefly absent).
    """
    final = as_path(final)
    if is_remote(final):
        with remote_objects.put_folder_atomic(final, replace=replace) as tmp:
            yield tmp
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    _sweep_before_write(final.parent)
    if final.exists() and not replace:
        raise FileExistsError(f"{final} already exists; refusing to overwrite a published folder")
    remove_stale_temps(final.parent, beside=final, older_than_s=STALE_TEMP_GRACE_S)
    tmp = temp_sibling(final)
    tmp.mkdir()
    try:
        with _paths_named(final):
            yield tmp
        retired = None
        if final.exists():
            retired = temp_sibling(final)
            os.rename(final, retired)
        os.rename(tmp, final)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def publish_file(done: Path | str, final: Path | str) -> Path:
    """Publish the finished local file ``done`` (a scratch file another writer produced, e.g.
    DuckDB's ``COPY``) as ``final``: one ``os.replace`` on a local root (``done`` must be on
    the same file system: a temp beside ``final``), one complete PUT on an object-store root.
    ``done`` is gone afterwards either way."""
    final = as_path(final)
    if is_remote(final):
        try:
            remote_objects.upload(Path(done), final)
        finally:
            Path(done).unlink(missing_ok=True)
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with _paths_named(final):
        os.replace(done, final)
    return final


def publish_files(done_to_final: dict) -> None:
    """:func:`publish_file` for several finished files at once (``{done: final}``): on an
    object-store root the PUTs run concurrently, each one complete object; the scratch files
    are gone afterwards either way."""
    remote = {Path(done): as_path(final) for done, final in done_to_final.items() if is_remote(final)}
    try:
        remote_objects.upload_files(remote)
    finally:
        for done in remote:
            done.unlink(missing_ok=True)
    for done, final in done_to_final.items():
        if not is_remote(final):
            publish_file(done, final)


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return as_path(path)


def atomic_write_text(path: Path | str, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path | str, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def remove_stale_temps(folder: Path | str, beside: Path | str | None = None, older_than_s: float = 0) -> int:
    """Delete temp files/folders a killed run left in ``folder``; return how many.

    ``beside``: only the temps of that one final name (:func:`temp_sibling`), and
    ``older_than_s``: only those untouched that long or whose writer is a process of this
    host that is gone, where other writers may be live in the same folder. Every atomic
    write of a name first clears that name's stale temps, so a killed writer's leftovers go
    with the next write of the same file."""
    folder = as_path(folder)
    if is_remote(folder):
        return 0  # a PUT leaves no temp object; uncommitted parts: remote_objects.remove_uncommitted
    if not folder.is_dir():
        return 0
    prefix = f".{Path(beside).name}{TEMP_MARKER}" if beside is not None else None
    now = time.time()
    removed = 0
    for entry in folder.iterdir():
        if not is_temp_name(entry.name) or (prefix is not None and not entry.name.startswith(prefix)):
            continue
        try:
            if older_than_s and now - entry.stat().st_mtime <= older_than_s and not _writer_gone(entry.name):
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        except FileNotFoundError:  # its writer finished (or gave up) meanwhile
            continue
        removed += 1
    return removed
