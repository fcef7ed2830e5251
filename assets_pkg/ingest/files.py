"""Which inbox files are ingestible, and what their partition keys and folders are."""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from assets_pkg.storage import as_path
from assets_pkg.storage.objects import file_identity, list_files

INGEST_SUFFIX = re.compile(r"^(?P<stem>.+?)\.(?P<fmt>csv|tsv|jsonl|ndjson)(?P<gz>\.gz)?$", re.IGNORECASE)
# A dynamic partition key is the file name; it must be a safe single path component.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SCHEMA_SIDECAR = ".schema.json"
TYPE_NAMES = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamp_tz": pa.timestamp("us", tz="UTC"),
}


@dataclass(frozen=True)
class InboxFile:
    path: Path
    stem: str  # output folder name: the file name without its format suffixes

    @property
    def partition_key(self) -> str:
        return self.path.name

    def identity(self) -> str:
        """Name, size and mtime (and an object's ETag): a changed file is ingested again."""
        size, mtime_ns, etag = file_identity(self.path)
        return f"{size}:{mtime_ns}" + (f":{etag}" if etag else "")


@dataclass(frozen=True)
class InboxScan:
    files: list[InboxFile]
    refused: list[str]  # one message per refused file, naming it


def scan_inbox(inbox: Path) -> InboxScan:
    """List ingestible files; refuse (with a reason) names we cannot map to one output folder."""
    files: list[InboxFile] = []
    refused: list[str] = []
    by_stem: dict[str, Path] = {}
    for path in sorted((p for p in list_files(as_path(inbox)) if not p.name.startswith(".")), key=lambda p: p.name):
        if path.name.endswith(SCHEMA_SIDECAR):
            continue
        match = INGEST_SUFFIX.match(path.name)
        if not match:
            refused.append(f"{path.name}: not a .csv/.tsv/.jsonl file (optionally .gz)")
            continue
        if not SAFE_NAME.match(path.name):
            refused.append(f"{path.name}: use letters, digits, '.', '_' and '-' only")
            continue
        stem = match.group("stem")
        if stem in by_stem:
            refused.append(f"{path.name}: same output folder '{stem}' as {by_stem[stem].name}; rename one")
            continue
        by_stem[stem] = path
        files.append(InboxFile(path=path, stem=stem))
    return InboxScan(files, refused)


def find_inbox_file(inbox: Path, partition_key: str) -> InboxFile:
    for candidate in scan_inbox(inbox).files:
        if candidate.partition_key == partition_key:
            return candidate
    raise FileNotFoundError(
        f"ingest partition {partition_key!r}: no file {inbox / partition_key} (moved or renamed since "
        "the sensor registered it?)"
    )


def load_column_types(source: Path) -> dict[str, pa.DataType] | None:
    """Column types from the optional sidecar ``<file>.schema.json`` ({"col": "int64", ...}).

    Values that fail their declared type become rejects instead of silently turning into
    strings; without a sidecar the reader infers the types.
    """
    sidecar = source.with_name(source.name + SCHEMA_SIDECAR)
    if not sidecar.exists():
        return None
    try:
        declared = json.loads(sidecar.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{sidecar}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(declared, dict):
        raise ValueError(f"{sidecar}: expected an object mapping column name to type")
    types = {}
    for column, type_name in declared.items():
        if type_name not in TYPE_NAMES:
            raise ValueError(
                f"{sidecar}: column {column!r} has unknown type {type_name!r}; "
                f"use one of {', '.join(TYPE_NAMES)}"
            )
        types[column] = TYPE_NAMES[type_name]
    return types
