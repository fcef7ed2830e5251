"""Shard discovery: which files in the transactions inbox are shards, and their numbers.

A shard is ``part-<digits>`` + ``.csv | .tsv | .parquet | .snappy.parquet`` (+ ``.gz``).
Its number, written with 5 digits, is the dynamic partition key. A file that does not match,
a number that does not fit 5 digits, or two files with one number are *refused*: they are
returned as problems naming the files, and every other shard still proceeds.

Ignored without a problem: hidden files (``.name``: editors, temp files of atomic writes),
folders, and the signature file ``_signature.txt`` (column names for header-less shards).
"""

import re
from dataclasses import dataclass
from pathlib import Path

from assets_pkg.splits.params import SIGNATURE_FILE
from assets_pkg.storage import as_path
from assets_pkg.storage.objects import list_files

SHARD_PATTERN = re.compile(
    r"^part-(?P<number>\d+)\.(?P<format>csv|tsv|snappy\.parquet|parquet)(?P<gz>\.gz)?$"
)
MAX_NUMBER = 99_999


@dataclass(frozen=True)
class Shard:
    key: str  # 5-digit partition key, e.g. "00042"
    number: int
    path: Path
    format: str  # csv | tsv | parquet
    compressed: bool

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Problem:
    files: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Discovery:
    shards: list[Shard]
    problems: list[Problem]
    signature: list[str] | None = None

    def by_key(self) -> dict[str, Shard]:
        return {s.key: s for s in self.shards}


def shard_key(number: int) -> str:
    return f"{int(number):05d}"


def parse_shard_name(name: str) -> tuple[int, str, bool] | str:
    """``(number, format, gzipped)`` for a shard name, else the reason it is refused."""
    match = SHARD_PATTERN.match(name)
    if not match:
        return (
            f"{name}: not a shard name; expected part-<digits>.csv|tsv|parquet "
            "(optionally .gz, or .snappy.parquet)"
        )
    number = int(match.group("number"))
    if number > MAX_NUMBER:
        return f"{name}: shard number {number} does not fit 5 digits (max {MAX_NUMBER})"
    fmt = "parquet" if match.group("format").endswith("parquet") else match.group("format")
    return number, fmt, match.group("gz") is not None


def classify(paths) -> tuple[list[Shard], list[Problem]]:
    """Pure core of discovery over a list of paths (no file system access)."""
    candidates: dict[int, list[tuple[Path, str, bool]]] = {}
    problems: list[Problem] = []
    for path in sorted((as_path(p) for p in paths), key=str):
        parsed = parse_shard_name(path.name)
        if isinstance(parsed, str):
            problems.append(Problem((path.name,), parsed))
            continue
        number, fmt, gz = parsed
        candidates.setdefault(number, []).append((path, fmt, gz))
    shards = []
    for number in sorted(candidates):
        entries = candidates[number]
        if len(entries) > 1:
            names = tuple(p.name for p, _, _ in entries)
            problems.append(
                Problem(names, f"{', '.join(names)}: {len(names)} files with shard number "
                               f"{shard_key(number)}; none of them is used until only one remains")
            )
            continue
        path, fmt, gz = entries[0]
        shards.append(Shard(shard_key(number), number, path, fmt, gz))
    return shards, problems


def discover(folder: Path | str) -> Discovery:
    """Shards and refused files in ``folder`` (a missing folder has neither)."""
    folder = as_path(folder)
    files = [p for p in list_files(folder) if not p.name.startswith(".") and p.name != SIGNATURE_FILE]
    shards, problems = classify(files)
    return Discovery(shards, problems, read_signature(folder / SIGNATURE_FILE))


def read_signature(path: Path) -> list[str] | None:
    """Column names for header-less shards: one per line, or comma/tab separated."""
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8").strip()
    parts = re.split(r"[,\t\n]", text)
    names = [p.strip() for p in parts if p.strip()]
    if not names:
        raise ValueError(f"{path}: signature file has no column names")
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: signature file repeats a column name")
    return names
