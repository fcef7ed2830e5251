"""A lock that needs no shared disk: a lease object in the object store (DESIGN section 8).
No dagster import.

Taking the lease is a conditional PUT (``If-None-Match: *``): of two machines, exactly one
creates the object. The holder renews it (a PUT conditional on its own ETag) every third of
the lease time, so a holder that dies (``kill -9``, a lost machine) stops renewing and its
lease expires after ``LEASE_TTL_S``; a waiter then deletes it conditionally on the ETag it
saw (never a lease someone else has just taken) and competes again. Release is a delete
conditional on the holder's ETag.

A holder that stalls past the TTL (a paused VM, a long GC, an unreachable store) may find its
lease taken by another writer when it resumes. Before publishing what the lease guards, the
holder calls :meth:`Lease.confirm`: a renewal conditional on its ETag, made now. If the lease
was broken, nothing is published; if it is still ours, the renewal restarts the TTL, so the
publication that follows is covered unless the process stalls a whole TTL again in between
(object stores offer no fencing token to close that last window).
"""

import datetime as dt
import json
import os
import socket
import threading
import time
import uuid

from assets_pkg.storage.root import StorageError, filesystem, object_key

TTL_VAR = "ASSETS_PKG_LEASE_TTL_S"
DEFAULT_TTL_S = 60.0
_POLL_S = 0.25


class LeaseLost(StorageError):
    """The lease expired and was broken or taken over while held: another writer may have
    written under it meanwhile. ``path`` is the lease object, ``what`` what it guarded."""

    def __init__(self, message: str, path=None, what: str = ""):
        super().__init__(message)
        self.path = path
        self.what = what


def _precondition_failed(exc: Exception) -> bool:
    text = str(exc)
    return "pre-condition" in text or "PreconditionFailed" in text or "412" in text


def lease_ttl_s() -> float:
    return float(os.environ.get(TTL_VAR) or DEFAULT_TTL_S)


class Lease:
    """One held lease (see the module docstring); :meth:`release` ends it."""

    def __init__(self, path, what: str, run_id: str | None, ttl_s: float):
        self.path = path
        self.what = what
        self.run_id = run_id
        self.ttl_s = ttl_s
        self.token = uuid.uuid4().hex
        self.etag: str | None = None
        self.lost: str | None = None
        self._stop = threading.Event()
        # one renewal at a time: two PUTs conditional on the same ETag would fail each other
        self._renewing = threading.Lock()
        self._renewer: threading.Thread | None = None
        self._bucket, self._key = object_key(path).split("/", 1)

    def _body(self) -> bytes:
        now = time.time()
        return json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(), "run_id": self.run_id, "what": self.what,
            "token": self.token,
            "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "expires_at": now + self.ttl_s,
        }).encode()

    def _put(self, **condition) -> str:
        reply = filesystem(self.path).call_s3("put_object", Bucket=self._bucket, Key=self._key,
                                              Body=self._body(), **condition)
        return reply["ETag"]

    def try_take(self) -> bool:
        try:
            self.etag = self._put(IfNoneMatch="*")
        except OSError as exc:
            if _precondition_failed(exc):
                return False
            raise
        self._renewer = threading.Thread(target=self._renew, name=f"lease {self.path}", daemon=True)
        self._renewer.start()
        return True

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                if not self._renew_once():
                    return
            except OSError:
                pass  # a transient store error: keep the lease, try again at the next beat

    def _renew_once(self) -> bool:
        """Renew now; False (and ``lost`` set) when the lease is no longer ours."""
        with self._renewing:
            if self.lost:
                return False
            try:
                self.etag = self._put(IfMatch=self.etag)
                return True
            except OSError as exc:
                # 412 (SeaweedFS, MinIO: also for a lease deleted meanwhile) or 404 (AWS: gone)
                if _precondition_failed(exc) or isinstance(exc, FileNotFoundError):
                    self.lost = f"the lease {self.path} was broken or taken over while held"
                    return False
                raise

    def confirm(self) -> None:
        """Raise :class:`LeaseLost` unless the lease is still ours, renewing it now (see the
        module docstring); a store error is raised as it is: without an answer nothing may
        be published either."""
        if not self._renew_once():
            raise LeaseLost(self.lost, path=self.path, what=self.what)

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=10)
        if self.etag is None or self.lost:
            return
        try:
            filesystem(self.path).call_s3("delete_object", Bucket=self._bucket, Key=self._key, IfMatch=self.etag)
        except OSError as exc:
            if _precondition_failed(exc) or isinstance(exc, FileNotFoundError):
                # not our ETag any more: broken after it expired (and maybe taken) since the
                # last renewal, which a stalled process never got to notice
                self.lost = f"the lease {self.path} was broken or taken over while held"
            # else a store error: the lease expires by itself after its TTL


def _read_holder(path) -> tuple[dict, str | None]:
    fs = filesystem(path)
    try:
        info = fs.info(object_key(path), refresh=True)
        data = fs.cat_file(object_key(path))
    except FileNotFoundError:
        return {}, None
    try:
        return json.loads(data), info.get("ETag")
    except ValueError:
        return {}, info.get("ETag")


def break_if_expired(path) -> bool:
    """Delete the lease at ``path`` when its holder let it expire; True if it did."""
    holder, etag = _read_holder(path)
    if etag is None:
        return True  # gone already: compete again
    if float(holder.get("expires_at") or 0) > time.time():
        return False
    bucket, key = object_key(path).split("/", 1)
    try:
        filesystem(path).call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=etag)
    except OSError as exc:
        if _precondition_failed(exc):
            return False  # renewed or replaced meanwhile: not expired after all
        raise
    return True


def take(path, what: str, run_id: str | None, deadline: float, on_wait=None) -> Lease:
    """Wait until the lease at ``path`` is ours (returned, to :meth:`Lease.release` later) or
    raise :class:`TimeoutError` when ``deadline`` (monotonic) passes; ``on_wait(holder)`` is
    called once when the first try finds the lease held."""
    lease = Lease(path, what, run_id, lease_ttl_s())
    waited = False
    while True:
        if lease.try_take():
            return lease
        if break_if_expired(path):
            continue
        if time.monotonic() >= deadline:
            raise TimeoutError(path)
        if not waited and on_wait is not None:
            waited = True
            on_wait(holder_of(path))
        time.sleep(_POLL_S)


def holder_of(path) -> dict:
    return _read_holder(path)[0]
