"""One writer at a time for each piece of domain state (no dagster import).

A domain's state (summary months + processed batches, splits allocation + shard state,
ingest outputs) is written by read-modify-write: a second run computing from a copy read
before the first one published would overwrite it with stale data. :func:`domain_lock`
serializes them with an exclusive ``fcntl.flock`` on ``<warehouse>/<domain>/_state/.lock`` (:func:`assets_pkg.layout.state_dir`)
(embedded profile; the kernel drops it when the holder dies, even by ``kill -9``).

The holder writes who it is into the lock file itself (pid, host, run id, since when, what),
rewritten in place: replacing the file would give it a new inode and split the lock. A
second writer polls for up to ``DOMAIN_LOCK_TIMEOUT_S`` seconds, then fails with
:class:`LockTimeout` naming the holder and the lock file. Re-entering a lock the process
already holds (an engine call inside an asset that holds it) just nests.

On an object-store root there is no shared disk to ``flock``: the same call takes a lease
object in the store instead (:mod:`assets_pkg.storage.lease`, a conditional PUT that works
across machines), with the same waiting, nesting and :class:`LockTimeout`.
"""

import datetime as dt
import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from assets_pkg import layout
from assets_pkg.settings import env_float
from assets_pkg.storage import as_path, is_remote
from assets_pkg.storage import lease as leases

TIMEOUT_VAR = "DOMAIN_LOCK_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 300.0
LOCK_NAME = ".lock"
_POLL_S = 0.05

_log = logging.getLogger(__name__)


class LockTimeout(RuntimeError):
    """Another writer held the lock for longer than the wait allowed."""

    def __init__(self, message: str, path: Path, holder: dict):
        super().__init__(message)
        self.path = path
        self.holder = holder


class _Held:
    """This process's hold on one lock file: threads queue on ``mutex``; the first one in
    takes the flock, nested entries only count."""

    def __init__(self) -> None:
        self.mutex = threading.RLock()
        self.depth = 0
        self.fd: int | leases.Lease | None = None


_held: dict[str, _Held] = {}
_held_guard = threading.Lock()


def lock_timeout_s() -> float:
    return env_float(TIMEOUT_VAR, DEFAULT_TIMEOUT_S)


def domain_lock_path(domain: str, part: str | None = None, folder: Path | None = None) -> Path:
    folder = as_path(folder) if folder is not None else layout.state_dir(domain)
    return folder / (f"{part}{LOCK_NAME}" if part else LOCK_NAME)


def domain_lock(domain: str, run_id: str | None = None, timeout_s: float | None = None, logger=None,
                folder: Path | None = None, part: str | None = None):
    """Exclusive lock on ``domain``'s state for the block (see the module docstring).
    ``part``: one independent piece of it (``_state/<part>.lock``); ``folder``: where the
    state lives when not in the warehouse (tests, bench)."""
    what = f"{domain} state" + (f" ({part})" if part else "")
    return hold(domain_lock_path(domain, part, folder), what, run_id=run_id, timeout_s=timeout_s, logger=logger)


@contextmanager
def shared_domain_lock(domain: str, run_id: str | None = None, timeout_s: float | None = None, logger=None,
                       folder: Path | None = None, part: str | None = None) -> Iterator[Path]:
    """Hold ``domain``'s lock together with other shared holders for the block (see the module
    docstring); waits for an exclusive holder like :func:`domain_lock`. Not re-entrant."""
    path = domain_lock_path(domain, part, folder)
    if is_remote(path):
        yield path
        return
    what = f"{domain} state" + (f" ({part})" if part else "")
    timeout = lock_timeout_s() if timeout_s is None else float(timeout_s)
    fd = _open_lock_file(path, what)
    try:
        # the holder's description stays the exclusive holder's: shared holders write none
        _wait_flock(fd, fcntl.LOCK_SH, path, what, time.monotonic() + max(timeout, 0.0), timeout, logger)
        try:
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def read_holder(path: Path) -> dict:
    """Who holds (or last held) the lock at ``path``; {} when it has not said."""
    if is_remote(path):
        return leases.holder_of(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
        return json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}


def describe_holder(holder: dict) -> str:
    if not holder:
        return "a holder that has not written its description yet"
    run = f", run {holder['run_id']}" if holder.get("run_id") else ""
    return f"pid {holder.get('pid')} on {holder.get('host')}{run} since {holder.get('since')}"


@contextmanager
def hold(path: Path | str, what: str, run_id: str | None = None, timeout_s: float | None = None,
         logger=None) -> Iterator[Path]:
    """Hold the exclusive lock ``path`` for the block; wait up to ``timeout_s`` (default
    ``DOMAIN_LOCK_TIMEOUT_S``; 0 = do not wait) and raise :class:`LockTimeout` after."""
    path = as_path(path)
    timeout = lock_timeout_s() if timeout_s is None else float(timeout_s)
    deadline = time.monotonic() + max(timeout, 0.0)
    with _held_guard:
        held = _held.setdefault(str(path) if is_remote(path) else os.path.abspath(path), _Held())
    if not held.mutex.acquire(timeout=max(timeout, 0.001)):  # another thread of this process holds it
        raise _timeout(path, what, timeout)
    try:
        if held.depth == 0:
            held.fd = _acquire(path, what, run_id, deadline, timeout, logger)
        held.depth += 1
        try:
            yield path
        finally:
            held.depth -= 1
            if held.depth == 0:
                fd, held.fd = held.fd, None
                _release(fd)
    finally:
        held.mutex.release()


def _acquire(path: Path, what: str, run_id: str | None, deadline: float, timeout: float, logger):
    if is_remote(path):
        return _take_lease(path, what, run_id, deadline, timeout, logger)
    fd = _open_lock_file(path, what)
    try:
        _wait_flock(fd, fcntl.LOCK_EX, path, what, deadline, timeout, logger)
    except BaseException:
        os.close(fd)
        raise
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "run_id": run_id,
        "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "what": what,
    }
    data = json.dumps(me).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    return fd


def _open_lock_file(path: Path, what: str) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot create the lock file {path} for the {what} ({exc.strerror or exc}); "
                                 f"make the data root (ASSETS_PKG_DATA_DIR) writable") from exc


def _wait_flock(fd: int, mode: int, path: Path, what: str, deadline: float, timeout: float, logger) -> None:
    """``flock(fd, mode)``, polling until ``deadline``; then :class:`LockTimeout`."""
    waited = False
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise _timeout(path, what, timeout) from None
            if not waited:
                waited = True
                (logger or _log).warning(
                    f"waiting up to {timeout:.0f} s ({TIMEOUT_VAR}) for the {what} lock {path}, held by "
                    f"{describe_holder(read_holder(path))}"
                )
            time.sleep(_POLL_S)


def _take_lease(path, what: str, run_id: str | None, deadline: float, timeout: float, logger) -> leases.Lease:
    def on_wait(holder: dict) -> None:
        (logger or _log).warning(f"waiting up to {timeout:.0f} s ({TIMEOUT_VAR}) for the {what} lease {path}, "
                                 f"held by {describe_holder(holder)}")

    try:
        return leases.take(path, what, run_id, deadline, on_wait=on_wait)
    except TimeoutError:
        raise _timeout(path, what, timeout) from None


def confirm_held(path: Path | str) -> None:
    """Right before publishing what the lock at ``path`` guards: raise
    :class:`~assets_pkg.storage.lease.LeaseLost` when it is a lease this process lost
    (:meth:`~assets_pkg.storage.lease.Lease.confirm`). A held ``flock`` cannot be lost."""
    path = as_path(path)
    held = _held.get(str(path) if is_remote(path) else os.path.abspath(path))
    if held is None or held.fd is None:
        raise RuntimeError(f"confirm_held({path}): this process does not hold that lock")
    if isinstance(held.fd, leases.Lease):
        try:
            held.fd.confirm()
        except leases.LeaseLost:
            raise _lost(held.fd) from None


def _lost(lease: leases.Lease) -> leases.LeaseLost:
    return leases.LeaseLost(
        f"{lease.lost} (a lease not renewed for {lease.ttl_s:g} s, {leases.TTL_VAR}, is broken by the next "
        f"waiter): another writer may have written the {lease.what} meanwhile; check it (assets-pkg check) "
        f"before using it, and re-run this step",
        path=lease.path, what=lease.what)


def _release(fd) -> None:
    if isinstance(fd, leases.Lease):
        fd.release()
        if fd.lost:
            raise _lost(fd)
        return
    try:
        os.ftruncate(fd, 0)  # nobody holds it now: no stale description for the next reader
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _timeout(path: Path, what: str, timeout: float) -> LockTimeout:
    holder = read_holder(path)
    return LockTimeout(
        f"the {what} is being written by another run ({describe_holder(holder)}); waited {timeout:g} s "
        f"({TIMEOUT_VAR}) for the lock file {path}. Retry when that run has finished, or raise {TIMEOUT_VAR}; "
        f"if no such process is alive the lock is already free",
        path, holder,
    )
