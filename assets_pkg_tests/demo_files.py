"""The data files of a demo's outputs as a reader sees them, on a local root or in an S3
bucket, to compare two roots row for row (test_cluster_faults: the whole demo through
Celery on an S3 root against the embedded demo on a local one)."""

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

OUTPUTS = ("warehouse", "exports", "cache")
DATA_SUFFIXES = (".parquet", ".csv", ".csv.gz", ".tsv", ".tsv.gz")


def _logical_name(relative: str) -> str | None:
    """A data file's name with the store's publishing details taken out: a remote
    multi-object folder may hold its parts under a ``_g<id>/`` generation folder."""
    if not relative.endswith(DATA_SUFFIXES) or "/_state/" in relative or relative.startswith("."):
        return None
    return "/".join(part for part in relative.split("/") if not part.startswith("_g"))


def _table(data: bytes, name: str) -> pa.Table:
    if name.endswith(".parquet"):
        return pq.read_table(pa.BufferReader(data))
    if name.endswith(".gz"):
        import gzip

        data = gzip.decompress(data)
    delimiter = "\t" if ".tsv" in name else ","
    return pcsv.read_csv(pa.BufferReader(data), parse_options=pcsv.ParseOptions(delimiter=delimiter))


# the one recorded fact that differs by root: a shard profile keeps its input file's mtime
# (the file's identity), and the two inboxes were written at different times
ROOT_SPECIFIC_ROWS = ({"kind": "stat:file_mtime_ns"},)


def _sorted_rows(table: pa.Table) -> list:
    rows = [row for row in table.to_pylist()
            if not any(all(row.get(k) == v for k, v in pattern.items()) for pattern in ROOT_SPECIFIC_ROWS)]
    return sorted(rows, key=repr)


def _local_files(root: Path) -> dict[str, bytes]:
    found = {}
    for folder in OUTPUTS:
        for p in sorted((root / folder).rglob("*")):
            name = _logical_name(p.relative_to(root).as_posix()) if p.is_file() else None
            if name:
                found[name] = p.read_bytes()
    return found


def _remote_files(fs, prefix: str) -> dict[str, bytes]:
    """The data files a reader of the store sees: parts of committed folders, single objects."""
    from assets_pkg.storage import as_path, objects

    found = {}
    keys = [k for folder in OUTPUTS for k in fs.find(f"{prefix}/{folder}")]
    committed = {k.rsplit("/", 1)[0] for k in keys if k.endswith("/_commit.json")}
    listed = set()
    for folder in committed:
        for part in objects.committed_files(as_path(f"s3://{folder}")):
            listed.add(part.path)
    for key in keys:
        parent_commit = any(key.startswith(folder + "/") for folder in committed)
        if parent_commit and key not in listed:
            continue  # a part no commit lists does not exist for readers
        name = _logical_name(key[len(prefix) + 1:])
        if name:
            found[name] = fs.cat_file(key)
    return found
