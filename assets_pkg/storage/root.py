"""Where the data root is: a local folder (the embedded default) or an object-store prefix
(``s3://bucket/prefix``, DESIGN section 8). No dagster import.

Every data-root location is a path object: :class:`pathlib.Path` for a local root (so the
local profile keeps its speed and its ``os`` calls), :class:`upath.UPath` for a URL root
(fsspec underneath, ``s3fs`` for the S3 API). Code that needs to know which one it holds
asks :func:`is_remote`; nothing else in the project parses URLs.

The S3 endpoint and keys come from the standard variables (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``), so one set of settings
works on AWS, MinIO, SeaweedFS or GCS interoperability.
"""

import functools
import os
import tempfile
from pathlib import Path

from upath import UPath

# How often a request to the object store is tried before the error is raised: bounded so
# that an unreachable endpoint fails in seconds, not after botocore's default back-off.
ATTEMPTS_VAR = "ASSETS_PKG_S3_ATTEMPTS"
DEFAULT_ATTEMPTS = 3
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 120.0
LOCAL_PROTOCOLS = ("", "file", "local")


class StorageError(RuntimeError):
    """The data root cannot be used: missing bucket, refused credentials, no endpoint."""


def is_url(text: str) -> bool:
    return "://" in str(text) and not str(text).startswith("file://")


def is_remote(path) -> bool:
    """Whether ``path`` lives in an object store (not on this machine's disk)."""
    return isinstance(path, UPath) and path.protocol not in LOCAL_PROTOCOLS


def s3_options() -> dict:
    """s3fs options from the standard AWS variables, with bounded retries and timeouts."""
    attempts = int(os.environ.get(ATTEMPTS_VAR) or DEFAULT_ATTEMPTS)
    options: dict = {
        # another machine writes the same prefix: a cached listing would hide its objects from
        # a long-lived process (the sensor daemon, a code server) for good
        "use_listings_cache": False,
        "config_kwargs": {
            "connect_timeout": CONNECT_TIMEOUT_S,
            "read_timeout": READ_TIMEOUT_S,
            "retries": {"max_attempts": attempts, "mode": "standard"},
        },
    }
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
    if endpoint:
        options["endpoint_url"] = endpoint
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        options["key"] = os.environ["AWS_ACCESS_KEY_ID"]
        options["secret"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    if os.environ.get("AWS_SESSION_TOKEN"):
        options["token"] = os.environ["AWS_SESSION_TOKEN"]
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["client_kwargs"] = {"region_name": region}
    return options


def _options_key() -> tuple:
    """What a cached path object or filesystem depends on: the settings, and the process. A
    filesystem made before a fork (a Celery worker imports the code location, then forks
    its pool) holds its parent's event loop; s3fs refuses it in the child ("This class is
    not fork-safe"), so each process makes its own."""
    names = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
             "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", ATTEMPTS_VAR)
    return (os.getpid(), *(os.environ.get(name) for name in names))


def as_path(location) -> Path | UPath:
    """A path object for ``location`` (a str, Path or UPath): UPath for a URL, Path otherwise.
    Use this instead of ``Path(x)`` on anything that may be under the data root."""
    if isinstance(location, UPath):
        return location if is_remote(location) else Path(location.path)
    if isinstance(location, Path):
        return location
    text = os.fspath(location) if not isinstance(location, str) else location
    if is_url(text):
        return _url_path(text, _options_key())
    return Path(text)


@functools.lru_cache(maxsize=64)
def _url_path(text: str, _env: tuple) -> UPath:
    protocol = text.split("://", 1)[0]
    options = s3_options() if protocol in ("s3", "s3a") else {}
    return UPath(text, **options)


def data_root_from(text: str) -> Path | UPath:
    """The data root named by ``ASSETS_PKG_DATA_DIR``: a resolved local folder, or a URL."""
    if is_url(text):
        return as_path(text.rstrip("/"))
    return Path(text).expanduser().resolve()


def filesystem(path):
    """The fsspec filesystem of a remote path."""
    return path.fs


def object_key(path) -> str:
    """``bucket/key`` of a remote path: what fsspec's methods take."""
    return path.path


def url(path) -> str:
    """The full URL (``s3://bucket/key``) of a remote path, the path itself for a local one:
    what DuckDB (with the filesystem registered) and log messages take."""
    return str(path)


SCRATCH_PREFIX = "assets_pkg-"
_swept_scratch: set[int] = set()


def local_scratch(name: str = "") -> Path:
    """A folder of this process on this machine's disk, for spill files, staged text shards and
    temps: never shared with another step, never in the object store. The first call of a
    process removes the scratch folders of processes that are gone (a killed step's)."""
    parent = Path(os.environ.get("ASSETS_PKG_SCRATCH_DIR") or tempfile.gettempdir())
    if os.getpid() not in _swept_scratch:
        _swept_scratch.add(os.getpid())
        remove_dead_scratch(parent)
    base = parent / f"{SCRATCH_PREFIX}{os.getpid()}"
    folder = base / name if name else base
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def remove_dead_scratch(parent: Path) -> int:
    """Delete ``assets_pkg-<pid>`` scratch folders under ``parent`` whose process is gone."""
    import shutil

    removed = 0
    try:
        entries = list(parent.glob(f"{SCRATCH_PREFIX}*"))
    except OSError:
        return 0
    for entry in entries:
        pid = entry.name[len(SCRATCH_PREFIX):]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_checked: set[str] = set()


def check_reachable(root) -> None:
    """Fail fast, with words a user can act on, when a remote data root cannot be used: the
    bucket is missing, the credentials are refused, or the endpoint does not answer (after
    the bounded retries). No key or secret is ever part of the message. Once per process."""
    if not is_remote(root) or str(root) in _checked:
        return
    fs = filesystem(root)
    bucket = object_key(root).split("/", 1)[0]
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or "the default AWS endpoint"
    exists = True
    try:
        fs.invalidate_cache(bucket)
        fs.ls(bucket, refresh=True)
    except FileNotFoundError:
        exists = False
    except PermissionError as exc:
        raise StorageError(
            f"the object store at {endpoint} refused the credentials for {root} ({_reason(exc)}); check "
            f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (ASSETS_PKG_DATA_DIR={root})"
        ) from None
    except (OSError, TimeoutError, *_connection_errors()) as exc:
        raise StorageError(
            f"cannot reach the object store at {endpoint} for {root} ({_reason(exc)}); check AWS_ENDPOINT_URL "
            f"and that the service runs (tried {os.environ.get(ATTEMPTS_VAR) or DEFAULT_ATTEMPTS} times, "
            f"{ATTEMPTS_VAR})"
        ) from None
    except Exception as exc:  # botocore/aiohttp errors that are not OSErrors
        raise StorageError(f"cannot use the data root {root} at {endpoint}: {_reason(exc)}") from None
    if not exists:
        raise StorageError(
            f"bucket {bucket!r} of the data root {root} does not exist at {endpoint}; create it "
            f"(e.g. `aws s3 mb s3://{bucket}`) or fix ASSETS_PKG_DATA_DIR"
        )
    _checked.add(str(root))


def _connection_errors() -> tuple:
    from botocore.exceptions import ConnectionError as BotoConnectionError

    return (BotoConnectionError,)  # EndpointConnectionError, ConnectTimeoutError, ...


def _reason(exc: BaseException) -> str:
    """The error's own words, first line, without anything that looks like a credential."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"):
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text[:300]
