"""Arrow and DuckDB over the data root, local or remote (DESIGN section 8). No dagster import.

pyarrow reads and writes an S3 root through its own native ``S3FileSystem`` (C++, parallel
ranged reads), built from the same AWS variables as s3fs; DuckDB reads it through the fsspec
filesystem registered on the connection (its ``httpfs`` extension cannot be downloaded here,
and is never required).
"""

import functools
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from assets_pkg.storage.root import _options_key, filesystem, is_remote, object_key, s3_options


def arrow_location(path) -> tuple[pafs.FileSystem | None, str]:
    """``(filesystem, path)`` to hand to pyarrow: (None, local path) for a local file."""
    if not is_remote(path):
        return None, str(path)
    return _arrow_filesystem(path.protocol, _options_key()), object_key(path)


@functools.lru_cache(maxsize=8)
def _arrow_filesystem(protocol: str, _env: tuple) -> pafs.FileSystem:
    if protocol in ("s3", "s3a"):
        options = s3_options()
        kwargs = {}
        endpoint = options.get("endpoint_url")
        if endpoint:
            parsed = urlparse(endpoint)
            kwargs["endpoint_override"] = parsed.netloc or endpoint
            kwargs["scheme"] = parsed.scheme or "https"
        if "key" in options:
            kwargs["access_key"] = options["key"]
            kwargs["secret_key"] = options["secret"]
            if options.get("token"):
                kwargs["session_token"] = options["token"]
        region = options.get("client_kwargs", {}).get("region_name")
        if region:
            kwargs["region"] = region
        retry = pafs.AwsStandardS3RetryStrategy(max_attempts=options["config_kwargs"]["retries"]["max_attempts"])
        return pafs.S3FileSystem(connect_timeout=options["config_kwargs"]["connect_timeout"],
                                 request_timeout=options["config_kwargs"]["read_timeout"],
                                 retry_strategy=retry, **kwargs)
    from upath import UPath

    return pafs.PyFileSystem(pafs.FSSpecHandler(UPath(f"{protocol}://").fs))


def dataset(paths, **kwargs):
    """A lazy ``pyarrow.dataset`` over Parquet files of one root, local or remote (remote:
    pyarrow's native S3 filesystem, so DuckDB scanning it gets ranged parallel reads and
    projection pushdown instead of fsspec calls)."""
    import pyarrow.dataset as pads

    filesystem, locations = None, []
    for path in paths:
        filesystem, location = arrow_location(path)
        locations.append(location)
    return pads.dataset(locations, format="parquet", filesystem=filesystem, **kwargs)


def fetch(paths: dict, folder) -> dict:
    """Download remote files concurrently into the local ``folder``: ``{name: remote path}``
    -> ``{name: local path}`` (the name is the local file name). For data a step scans
    several times (checks): one GET per file instead of ranged reads per scan."""
    from assets_pkg.storage.root import filesystem

    if not paths:
        return {}
    local = {name: folder / name for name in paths}
    first = next(iter(paths.values()))
    filesystem(first).get([object_key(p) for p in paths.values()], [str(local[n]) for n in paths])
    return local


def read_table(path, **kwargs):
    """``pq.read_table`` of a local or remote Parquet file."""
    fs, location = arrow_location(path)
    return pq.read_table(location, filesystem=fs, **kwargs)


def parquet_file(path, **kwargs) -> pq.ParquetFile:
    """``pq.ParquetFile`` of a local or remote Parquet file (remote: one ranged-read handle)."""
    fs, location = arrow_location(path)
    if fs is None:
        return pq.ParquetFile(location, **kwargs)
    return pq.ParquetFile(fs.open_input_file(location), **kwargs)


def arrow_file(path) -> ipc.RecordBatchFileReader:
    """An Arrow IPC file, local or remote (remote: one ranged-read handle). Local files are
    read, not memory-mapped: mapped pages would count in the step's resident memory."""
    fs, location = arrow_location(path)
    return ipc.open_file(pa.OSFile(location, "rb") if fs is None else fs.open_input_file(location))


def register_filesystem(con, root) -> None:
    """Let DuckDB read and write ``root``'s URLs (``read_parquet('s3://...')``, ``COPY ... TO``)
    on connection ``con``; nothing for a local root."""
    if not is_remote(root):
        return
    fs = filesystem(root)
    names = set(fs.protocol if isinstance(fs.protocol, (tuple, list)) else [fs.protocol])
    if not names & set(con.list_filesystems()):
        con.register_filesystem(fs)
