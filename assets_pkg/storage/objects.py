"""Publishing to an object store without rename (DESIGN section 8). No dagster import.

- One object: written to a local temp file, then uploaded with one PUT (:func:`upload`: a large
  file is streamed from the temp as a multipart upload, which is just as atomic: the object
  appears only when the upload completes). A killed writer leaves no object; an unfinished
  multipart upload is invisible to readers.
- A folder of several objects (an ingest folder, a log segment, an export set): the parts are
  uploaded first, then a commit object ``_commit.json`` listing every part and its size is
  written last. A folder without a commit does not exist for readers, checks and planners
  (:func:`committed_files`). Replacing a committed folder uploads the new parts under a new
  generation folder (``_g<id>/``), so readers of the old commit keep reading whole files until
  the new commit lands; the old generation is deleted after it.
- Parts without a commit that are older than the grace period (a killed writer's) are
  deleted by the next writer of that folder; :func:`uncommitted_objects` reports them.
"""

import datetime as dt
import fnmatch
import json
import mimetypes
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from assets_pkg.storage.root import as_path, filesystem, is_remote, local_scratch, object_key

COMMIT_NAME = "_commit.json"
GENERATION_PREFIX = "_g"
# A live writer on another machine finishes a partition's uploads well within this.
UNCOMMITTED_GRACE_S = 3600.0
GRACE_VAR = "ASSETS_PKG_UNCOMMITTED_GRACE_S"
# uploads of one step at once (the splits of one shard): s3fs sends them on its event loop
UPLOAD_THREADS = 4
# Files from this size on are streamed through pyarrow's native S3 client in pieces of
# STREAM_PIECE_BYTES; smaller ones go in one PutObject through s3fs (one request instead of
# the three of a multipart upload). For a 200 MB month file s3fs held the whole file in memory
# (its parts are read before they are sent) and spent 2.9 CPU-s per GB in the client against
# 0.8 for the stream (bench/NOTES.md, object-store root, fourth pass).
STREAM_UPLOAD_BYTES = 16 * 2**20
# Below S3's minimum part size (5 MiB), so pyarrow always copies a piece into its part buffer
# and never sends the reused read buffer itself (it would change under a part in flight).
STREAM_PIECE_BYTES = 4 * 2**20
# Parts of one stream sent at once: pyarrow sends them from its I/O threads while the next
# pieces are read, and `flush` every STREAM_INFLIGHT_BYTES waits for them. Unbounded, every
# part read ahead waited in memory (+100 MB per 200 MB month); one part at a time gave the
# store few requests to work on while the build holds both cores (a full-size summary run
# then kept only 1.6 of the 2 cores busy once; bench/NOTES.md).
STREAM_INFLIGHT_BYTES = 64 * 2**20
# not in the mimetypes table; an object store that is told the type does not sniff the bytes
CONTENT_TYPES = {".parquet": "application/vnd.apache.parquet"}


def uncommitted_grace_s() -> float:
    """Seconds an object without a commit is left alone before the next writer of its folder
    deletes it as a killed writer's (``ASSETS_PKG_UNCOMMITTED_GRACE_S``, default one hour)."""
    from assets_pkg.settings import env_float  # settings imports storage: not at import time

    return env_float(GRACE_VAR, UNCOMMITTED_GRACE_S)


class CorruptCommit(RuntimeError):
    """A commit object that cannot be read, or whose parts do not match it."""


def _local_temp(final) -> Path:
    return local_scratch("uploads") / f"{uuid.uuid4().hex[:12]}-{final.name}"


@contextmanager
def put_atomic(final) -> Iterator[Path]:
    """Yield a local temp path; upload it to ``final`` in one PUT when the body succeeds and
    left a file there. Nothing is written to the store otherwise."""
    tmp = _local_temp(final)
    try:
        yield tmp
        if tmp.exists():
            upload(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def upload(local: Path, final) -> None:
    """Publish the local file ``local`` as the object ``final``, whole or not at all."""
    if getattr(final, "protocol", "") in ("s3", "s3a") and os.path.getsize(local) >= STREAM_UPLOAD_BYTES:
        _stream_upload(Path(local), final)
    else:
        filesystem(final).put_file(str(local), object_key(final))


def content_type(path) -> str:
    suffix = Path(str(path)).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(f"x{suffix}")[0] or "application/octet-stream"


def _stream_upload(local: Path, final) -> None:
    """One multipart upload read from ``local`` through a reused buffer: memory stays under
    ``STREAM_INFLIGHT_BYTES`` plus one part per upload, and the bytes are neither signed nor
    copied in Python.

    pyarrow completes an output stream that is dropped unclosed, which would publish the bytes
    written so far; so an error before the last piece aborts the multipart upload first (the
    stream's own completion then fails, and nothing appears)."""
    from assets_pkg.storage.arrow import arrow_location

    fs, key = arrow_location(final)
    piece = bytearray(STREAM_PIECE_BYTES)
    view = memoryview(piece)
    with open(local, "rb", buffering=0) as source:
        stream = fs.open_output_stream(key, metadata={"Content-Type": content_type(final)})
        try:
            unflushed = 0
            while n := source.readinto(piece):
                stream.write(view[:n])
                unflushed += n
                if unflushed >= STREAM_INFLIGHT_BYTES:
                    stream.flush()
                    unflushed = 0
            stream.close()
        except BaseException:
            abort_multipart_uploads(final)
            raise


def abort_multipart_uploads(final) -> int:
    """Abort the unfinished multipart uploads of the object ``final`` (their parts are freed and
    none can be completed any more); the number aborted."""
    fs = filesystem(final)
    bucket, key = object_key(final).split("/", 1)
    listed = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=key)
    uploads = [u for u in listed.get("Uploads") or [] if u["Key"] == key]
    for found in uploads:
        fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=found["UploadId"])
    return len(uploads)


class BackgroundUploads:
    """Uploads that overlap with the caller's next piece of work (a summary month's PUT with
    the next month's build). :meth:`put_atomic` is :func:`put_atomic`, except that the
    finished temp is uploaded (one complete PUT) by a background thread and the body's
    caller goes on at once. At most ``depth`` uploads wait or run: a full queue blocks the
    caller, so scratch disk stays bounded (and no file is held in memory by the queue).

    Use as a context manager: leaving the block waits for every upload and raises the first
    error, so whatever the caller publishes after the block (a state file, a commit) is
    written only once every object is whole in the store. On an error in the block, uploads
    not started are dropped (their objects never appear), running ones finish, and every
    temp is removed."""

    def __init__(self, depth: int = 2):
        from concurrent.futures import ThreadPoolExecutor

        self.depth = max(1, depth)
        self._pool = ThreadPoolExecutor(max_workers=self.depth, thread_name_prefix="upload")
        self._pending: list = []
        self._lock = threading.Lock()  # callers may write from several threads (month writers)

    def __enter__(self) -> "BackgroundUploads":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.join()
        finally:
            for future in self._pending:
                future.cancel()
            self._pool.shutdown(wait=True)  # a cancelled upload's temp is removed below
            for future in self._pending:
                if future.cancelled():
                    future.tmp.unlink(missing_ok=True)
            self._pending = []

    def join(self) -> None:
        """Wait for every upload queued so far; raise the first error."""
        with self._lock:
            while self._pending:
                self._pending.pop(0).result()

    @contextmanager
    def put_atomic(self, final) -> Iterator[Path]:
        tmp = _local_temp(final)
        try:
            yield tmp
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if not tmp.exists():
            return
        with self._lock:
            while len(self._pending) >= self.depth:
                self._pending.pop(0).result()
            future = self._pool.submit(self._upload, tmp, final)
            future.tmp = tmp
            self._pending.append(future)

    @staticmethod
    def _upload(tmp: Path, final) -> None:
        try:
            upload(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)


def upload_files(pairs: dict) -> None:
    """Upload local files concurrently, each to its object with one complete PUT (as
    :func:`upload`): ``{local path: final path}``. Returns when every upload is done; the
    first error is raised (objects already uploaded stay: each is whole on its own)."""
    from concurrent.futures import ThreadPoolExecutor

    if len(pairs) <= 1:
        for local, final in pairs.items():
            upload(local, final)
        return
    with ThreadPoolExecutor(max_workers=min(len(pairs), UPLOAD_THREADS), thread_name_prefix="upload") as pool:
        for future in [pool.submit(upload, local, final) for local, final in pairs.items()]:
            future.result()


def download(remote, local: Path) -> Path:
    """Copy the object ``remote`` to the local file ``local`` (one GET; a partial copy is
    removed when it fails). For inputs a step scans several times: staged in its scratch."""
    try:
        filesystem(remote).get_file(object_key(remote), str(local))
    except BaseException:
        local.unlink(missing_ok=True)
        raise
    return local


def read_commit(folder) -> dict | None:
    """The commit of ``folder`` (``{"parts": {relative name: size}, ...}``), None when the
    folder has none. A commit that is not valid JSON raises :class:`CorruptCommit`."""
    fs = filesystem(folder)
    key = object_key(folder / COMMIT_NAME)
    try:
        data = fs.cat_file(key)
    except FileNotFoundError:
        return None
    try:
        commit = json.loads(data)
        if not isinstance(commit.get("parts"), dict):
            raise ValueError("no parts")
        return commit
    except ValueError as exc:
        raise CorruptCommit(f"the commit object {folder / COMMIT_NAME} is not a valid commit ({exc}); "
                            f"re-materialize that partition") from None


def committed_files(folder, pattern: str = "*") -> list:
    """The parts of a committed folder whose file name matches ``pattern``, sorted by name;
    [] for a folder without a commit (being written, or abandoned)."""
    commit = read_commit(folder)
    if commit is None:
        return []
    names = sorted(commit["parts"], key=lambda name: (name.rsplit("/", 1)[-1], name))
    return [folder / name for name in names if fnmatch.fnmatch(name.rsplit("/", 1)[-1], pattern)]


def is_committed(folder) -> bool:
    return read_commit(folder) is not None


def verify_commit(folder) -> list[str]:
    """Problems of a committed folder: parts listed but missing, or of another size than
    listed. [] when every part is whole (or the folder has no commit)."""
    commit = read_commit(folder)
    if commit is None:
        return []
    fs = filesystem(folder)
    problems = []
    for name, size in sorted(commit["parts"].items()):
        try:
            # refresh: the store as it is now, not a size cached by an earlier listing
            actual = fs.info(object_key(folder / name), refresh=True)["size"]
        except FileNotFoundError:
            problems.append(f"{folder / name} is listed in {COMMIT_NAME} but missing")
            continue
        if int(actual) != int(size):
            problems.append(f"{folder / name} has {actual} bytes, its commit lists {size}")
    return problems


def _objects_under(folder) -> dict[str, dict]:
    """Every object under ``folder`` (relative name -> info)."""
    fs = filesystem(folder)
    base = object_key(folder).rstrip("/") + "/"
    try:
        found = fs.find(base, detail=True, withdirs=False)
    except FileNotFoundError:
        return {}
    return {key[len(base):]: info for key, info in found.items() if key.startswith(base)}


def list_objects(folder) -> dict[str, dict]:
    """Every object under ``folder`` (name relative to it, ``a/b`` below a sub-folder -> info
    with ``size``, ``LastModified``, ``ETag``), listed from the store now: never from s3fs's
    listing cache, which another process's writes leave stale (a sensor in a long-lived
    daemon would never see a new file)."""
    return _objects_under(folder)


def object_info(path) -> dict | None:
    """The store's info of one object now (not from a cached listing), None when absent."""
    try:
        info = filesystem(path).info(object_key(path), refresh=True)
    except FileNotFoundError:
        return None
    return info if info.get("type") != "directory" else None


def file_exists(path) -> bool:
    """``path.is_file()`` for a local path; for a remote one, asked of the store now (see
    :func:`list_objects` on s3fs's cache)."""
    return object_info(path) is not None if is_remote(path) else path.is_file()


def _age_s(info: dict) -> float:
    modified = info.get("LastModified") or info.get("mtime")
    if isinstance(modified, dt.datetime):
        return time.time() - modified.timestamp()
    return float("inf") if modified is None else time.time() - float(modified)


def uncommitted_objects(folder, older_than_s: float = 0.0) -> list[str]:
    """Objects under ``folder`` that its commit does not list (all of them when it has no
    commit), untouched for longer than ``older_than_s``: relative names, sorted."""
    commit = read_commit(folder)
    listed = set(commit["parts"]) if commit else set()
    return sorted(name for name, info in _objects_under(folder).items()
                  if name != COMMIT_NAME and name not in listed and _age_s(info) > older_than_s)


def remove_uncommitted(folder, older_than_s: float | None = None) -> int:
    """Delete a killed writer's leftovers in ``folder`` (see :func:`uncommitted_objects`)
    untouched for ``older_than_s`` (default :func:`uncommitted_grace_s`)."""
    older_than_s = uncommitted_grace_s() if older_than_s is None else older_than_s
    names = uncommitted_objects(folder, older_than_s)
    if names:
        filesystem(folder).rm([object_key(folder / name) for name in names])
    return len(names)


def write_commit(folder, parts: dict[str, int], **extra) -> None:
    commit = {
        "parts": dict(sorted(parts.items())),
        "written_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "writer": {"host": socket.gethostname(), "pid": os.getpid()},
        **extra,
    }
    filesystem(folder).pipe_file(object_key(folder / COMMIT_NAME), json.dumps(commit, indent=1).encode())


@contextmanager
def put_folder_atomic(final, replace: bool = False, grace_s: float | None = None) -> Iterator[Path]:
    """Yield a local folder; when the body succeeds, upload its files under ``final`` and
    commit them (see the module docstring). ``replace=False`` refuses a committed ``final``."""
    previous = read_commit(final)
    if previous is not None and not replace:
        raise FileExistsError(f"{final} already exists; refusing to overwrite a published folder")
    remove_uncommitted(final, older_than_s=grace_s)
    work = local_scratch("uploads") / f"{uuid.uuid4().hex[:12]}-{final.name}"
    work.mkdir(parents=True)
    try:
        yield work
        generation = "" if previous is None else f"{GENERATION_PREFIX}{uuid.uuid4().hex[:12]}/"
        fs = filesystem(final)
        parts: dict[str, int] = {}
        for local in sorted(p for p in work.rglob("*") if p.is_file()):
            name = generation + local.relative_to(work).as_posix()
            upload(local, final / name)
            parts[name] = local.stat().st_size
        write_commit(final, parts)
        if previous is not None:
            stale = [name for name in previous["parts"] if name not in parts]
            if stale:
                fs.rm([object_key(final / name) for name in stale])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def remove_files(paths) -> None:
    """Delete files that may or may not exist, like ``unlink(missing_ok=True)`` on each. On an
    object store: one bulk delete request (deleting a missing key is not an error there),
    where ``UPath.unlink`` asks HEAD and LIST before each delete."""
    paths = [as_path(p) for p in paths]
    remote = [p for p in paths if is_remote(p)]
    for path in paths:
        if not is_remote(path):
            path.unlink(missing_ok=True)
    if not remote:
        return
    fs = filesystem(remote[0])
    keys = [object_key(p) for p in remote]
    # literal keys: s3fs expands nothing (no HEAD/LIST) and sends one DeleteObjects
    literal = [k for k in keys if not any(c in k for c in "*?[")]
    try:
        if literal:
            fs.rm(literal)
    except FileNotFoundError:  # a filesystem that refuses missing names: one at a time
        for key in literal:
            if fs.exists(key):
                fs.rm_file(key)
    for key in sorted(set(keys) - set(literal)):
        fs.rm_file(key)


def delete_folder(folder) -> None:
    """Remove a folder: its commit first (readers stop seeing it at once), then its parts."""
    fs = filesystem(folder)
    try:
        fs.rm_file(object_key(folder / COMMIT_NAME))
    except FileNotFoundError:
        pass
    names = list(_objects_under(folder))
    if names:
        fs.rm([object_key(folder / name) for name in names])


def list_files(folder, folders: bool = False) -> list:
    """The files (``folders``: the sub-folders) directly in ``folder``, [] when it does not
    exist. An object-store folder is listed with one fresh request (s3fs would answer from
    its listing cache, blind to another process's uploads), which also refreshes what
    ``stat()`` of its files returns."""
    if not is_remote(folder):
        if not folder.is_dir():
            return []
        return [p for p in folder.iterdir() if (p.is_dir() if folders else p.is_file())]
    try:
        listed = filesystem(folder).ls(object_key(folder), detail=True, refresh=True)
    except FileNotFoundError:
        return []
    kind = "directory" if folders else "file"
    return [folder / entry["name"].rstrip("/").rsplit("/", 1)[-1] for entry in listed if entry["type"] == kind]


def file_identity(path, st=None) -> tuple[int, int, str]:
    """(bytes, mtime in ns, ETag or ''): what tells a changed input file from the one seen
    before. Object stores keep mtimes in whole seconds, so a remote file's ETag counts too.
    ``st``: ``path.stat()`` the caller just took (saves a request)."""
    path = as_path(path)
    st = st if st is not None else path.stat()
    etag = str(st.as_info().get("ETag") or "").strip('"') if is_remote(path) else ""
    return st.st_size, st.st_mtime_ns, etag


def local_copy(path, st=None) -> Path:
    """A local file with the bytes of ``path``: the path itself on a local root; for an object,
    one download into this process's scratch, reused while the object is unchanged (same size,
    time and ETag). For inputs that DuckDB scans several times (a splits shard: pass 1 and
    pass 2): one GET instead of ranged reads through Python on every scan. ``st``: see
    :func:`file_identity`."""
    if not is_remote(path):
        return Path(path)
    import hashlib

    identity = repr((str(path), file_identity(path, st)))
    name = f"{hashlib.sha1(identity.encode()).hexdigest()[:16]}-{path.name}"
    local = local_scratch("inputs") / name
    if not local.exists():
        part = local.with_name(f".{name}.part")
        download(path, part)
        os.replace(part, local)  # local scratch: a half download never has the final name
    return local
