"""The export tree the original scripts wrote, under ``<exports>/splits/`` (no dagster import).

Three modes, as the original's settings choose them:

* ``ENABLE_TRUE_STREAMING=false`` (default), or ``true`` with ``CONSOLIDATE_STREAMING_OUTPUT=true``:
  single files ``training_data/{train,val,test}/{split}_processed_data.<ext>`` and
  ``oot_data/oot_data.<ext>``, each written even when it has no row (downstream steps
  expect them);
* ``ENABLE_TRUE_STREAMING=true`` alone: 1:1 shards ``training_data/{train,val,test}/part-NNNNN.<ext>``
  and ``oot_data/part-NNNNN.<ext>``, the input shard's number (a shard that gave a split no
  row has no file there, as in the warehouse).

``test`` and ``oot_data`` hold the same rows: the post-split (OOT) rows, as in the original
where both are written from the post-split frame. The files are built from the warehouse's
split shards (``splits/train|val|oot``), so every mode has the same rows. Each file is
published atomically; a write removes what the other mode (or another format, or the
layout before this one) left, so no stale tree survives a change of mode.
"""

import re
import shutil
from pathlib import Path

from assets_pkg import layout
from assets_pkg.io import file_extension, write_table
from assets_pkg.io.atomic import atomic_dir, atomic_path, atomic_write_json
from assets_pkg.io.formats import FORMATS
from assets_pkg.splits.discovery import parse_shard_name
from assets_pkg.splits.outputs import file_rows, files_relation, shard_output_files
from assets_pkg.splits.params import SplitParams
from assets_pkg.splits.rows import SPLITS
from assets_pkg.storage import is_remote
from assets_pkg.storage.objects import GENERATION_PREFIX, is_committed, read_commit

SINGLE, SHARDS = "single", "shards"
TRAINING = "training_data"
OOT_DATA = "oot_data"
# training_data/<folder> <- the warehouse split
TRAINING_SPLITS = {"train": "train", "val": "val", "test": "oot"}
GENERATION = re.compile(rf"^{GENERATION_PREFIX}[0-9a-f]+/")


def export_mode(params: SplitParams) -> str:
    """``shards`` with ENABLE_TRUE_STREAMING and no CONSOLIDATE_STREAMING_OUTPUT, else ``single``."""
    return SHARDS if params.enable_true_streaming and not params.consolidate_streaming_output else SINGLE


def export_root(exports: Path) -> Path:
    return layout.exports_dir("splits", exports)


def folders(exports: Path) -> dict[str, Path]:
    """{target name: folder}: ``train``, ``val``, ``test`` under training_data/, and ``oot_data``."""
    return _folders(export_root(exports))


def _folders(root: Path) -> dict[str, Path]:
    out = {name: root / TRAINING / name for name in TRAINING_SPLITS}
    out[OOT_DATA] = root / OOT_DATA
    return out


def _relative(target: str) -> str:
    """A target's folder relative to the export root."""
    return OOT_DATA if target == OOT_DATA else f"{TRAINING}/{target}"


def source_split(target: str) -> str:
    """The warehouse split a target holds (``test`` and ``oot_data``: ``oot``)."""
    return TRAINING_SPLITS.get(target, "oot")


def single_file(exports: Path, target: str, fmt: str) -> Path:
    """A target's single file: ``training_data/<t>/<t>_processed_data.<ext>`` or ``oot_data/oot_data.<ext>``."""
    return folders(exports)[target] / _single_name(target, fmt)


def _single_name(target: str, fmt: str) -> str:
    stem = "oot_data" if target == OOT_DATA else f"{target}_processed_data"
    return f"{stem}.{file_extension(fmt)}"


def split_shards(warehouse: Path, split: str) -> dict[str, Path]:
    """{5-digit key: file} of a warehouse split's shards (shard names only)."""
    return {k: p for k, p in sorted(shard_output_files(warehouse, split).items()) if k.isdigit()}


def _is_ours(path: Path) -> bool:
    """A published file of either mode (never a temp or hidden file, never a stranger's)."""
    return _is_our_name(path.name)


def _is_our_name(name: str) -> bool:
    if name.startswith("."):
        return False
    if not isinstance(parse_shard_name(name), str):
        return True
    return any(name == f"{stem}.{file_extension(f)}" for f in FORMATS
               for stem in ("oot_data", *(f"{t}_processed_data" for t in TRAINING_SPLITS)))


def _prune(folder: Path, keep: set[Path]) -> list[str]:
    removed = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else ():
        if path.is_file() and path not in keep and _is_ours(path):
            path.unlink(missing_ok=True)
            removed.append(str(path))
    return removed


def _remove_old_layout(root: Path) -> None:
    """The layout before this one (``<split>/<split>_processed_data.<ext>``): gone, so no
    reader takes it for current."""
    for split in SPLITS:
        folder = root / split
        for fmt in FORMATS:
            (folder / f"{split}_processed_data.{file_extension(fmt)}").unlink(missing_ok=True)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _empty_relation(con, warehouse: Path, schema: list | None):
    """Zero rows with the splits' columns: from any written shard, else the manifest's schema."""
    for split in SPLITS:
        files = list(split_shards(warehouse, split).values())
        if files:
            return files_relation(con, files[:1]).limit(0)
    columns = ", ".join(f'CAST(NULL AS {dtype}) AS "{name.replace(chr(34), chr(34) * 2)}"'
                        for name, dtype in (schema or [])) or "NULL AS empty"
    return con.sql(f"SELECT {columns} LIMIT 0")


def _copy(source: Path, target: Path) -> int:
    with atomic_path(target) as tmp:
        if is_remote(source):  # a warehouse shard in the object store: downloaded
            source.fs.get_file(source.path, str(tmp))
        else:
            shutil.copyfile(source, tmp)
    return target.stat().st_size


def write_export(con, warehouse: Path, exports: Path, params: SplitParams, schema: list | None = None,
                 manifest: dict | None = None, manifest_name: str = "split_manifest.json") -> dict:
    """Write the export tree in the chosen mode, and ``manifest`` (with the export's summary
    under ``"export"``) beside it; returns ``{target: {rows, bytes, files}}`` (targets
    ``train``, ``val``, ``test``, ``oot_data``) and the mode under ``"mode"``.

    Local root: each file is published on its own (atomic rename). Object-store root: the
    whole tree is one committed folder (:func:`assets_pkg.io.atomic.atomic_dir`), built in
    local scratch and visible only once its commit object lands, so a reader never sees a
    train file of one export beside a val file of another; readers go through
    :func:`published_files`."""
    root = export_root(exports)
    if not is_remote(root):
        out = _write_tree(con, warehouse, root, params, schema)
        if manifest is not None:
            atomic_write_json(root / manifest_name, {**manifest, "export": out})
        return out
    with atomic_dir(root, replace=True) as work:
        out = _write_tree(con, warehouse, work, params, schema)
        for target in _folders(work):
            out[target]["files"] = [str(root / Path(f).relative_to(work).as_posix()) for f in out[target]["files"]]
        if manifest is not None:
            atomic_write_json(work / manifest_name, {**manifest, "export": out})
    return out


def published_files(root: Path) -> dict[str, Path]:
    """{path relative to the export root: file} of the export tree as published now: the
    files under the folder (local root), or the parts of its commit (object store; none
    before the first commit, and a killed writer's uploads are not among them)."""
    if not is_remote(root):
        if not root.is_dir():
            return {}
        return {p.relative_to(root).as_posix(): p for p in root.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)}
    commit = read_commit(root)
    return {_logical(name): root / name for name in sorted(commit["parts"])} if commit else {}


def _logical(name: str) -> str:
    """A part's name without the generation folder a replaced commit puts it in."""
    return GENERATION.sub("", name)


def _write_tree(con, warehouse: Path, root: Path, params: SplitParams, schema: list | None) -> dict:
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET enable_progress_bar = false")
    fmt, mode = params.output_format, export_mode(params)
    ext = file_extension(fmt)
    out: dict = {"mode": mode}
    written: dict[str, set[Path]] = {}
    for target, folder in _folders(root).items():
        shards = split_shards(warehouse, source_split(target))
        folder.mkdir(parents=True, exist_ok=True)
        if mode == SHARDS:
            files, size, rows = [], 0, 0
            for key, source in shards.items():
                path = folder / f"{layout.shard_stem(key)}.{ext}"
                size += _copy(source, path)
                rows += file_rows(path)
                files.append(path)
        else:
            path = folder / _single_name(target, fmt)
            if target == OOT_DATA and out.get("test", {}).get("files"):
                source = out["test"]["files"][0]  # the same rows: copied, not read again
                size, rows = _copy(source, path), out["test"]["rows"]
            else:
                rel = files_relation(con, list(shards.values())) if shards else None
                res = write_table(rel if rel is not None else _empty_relation(con, warehouse, schema), path, fmt,
                                  keep_empty=True)
                size, rows = res.bytes, res.rows
            files = [path]
        written[target] = set(files)
        out[target] = {"rows": rows, "bytes": size, "files": files, "shards": len(shards)}
    for target, folder in _folders(root).items():
        _prune(folder, written[target])
    _remove_old_layout(root)
    for target in _folders(root):
        out[target]["files"] = [str(p) for p in out[target]["files"]]
    return out


def export_problems(warehouse: Path, exports: Path, params: SplitParams) -> tuple[list[str], dict]:
    """What differs between the export tree (chosen mode) and the warehouse split shards:
    rows per target, and in shard mode each part's rows and the set of parts; files of the
    other mode are a problem too."""
    fmt, mode = params.output_format, export_mode(params)
    ext = file_extension(fmt)
    problems, meta = [], {"mode": mode}
    root = export_root(exports)
    tree = published_files(root)  # relative name -> file: one listing (or one commit) for all targets
    for target in _folders(root):
        shards = split_shards(warehouse, source_split(target))
        shard_rows = {k: file_rows(p) for k, p in shards.items()}
        folder = _relative(target)
        present = sorted(rel for rel in tree if rel.rpartition("/")[0] == folder and _is_our_name(rel.rpartition("/")[2]))
        if mode == SHARDS:
            expected = {f"{folder}/{layout.shard_stem(k)}.{ext}": n for k, n in shard_rows.items()}
            rows = 0
            for rel, n in expected.items():
                got = file_rows(tree[rel]) if rel in tree else None
                rows += got or 0
                if got != n:
                    problems.append(f"{root / rel}: {got if got is not None else 'missing'} rows, shard has {n}")
        else:
            single = f"{folder}/{_single_name(target, fmt)}"
            expected = {single: sum(shard_rows.values())}
            rows = file_rows(tree[single]) if single in tree else 0
            if single not in tree:
                problems.append(f"{root / single}: missing (written even when empty)")
            elif rows != expected[single]:
                problems.append(f"{root / single}: {rows} rows, shards have {expected[single]}")
        extra = [str(root / rel) for rel in present if rel not in expected]
        if extra:
            problems.append(f"{target}: file(s) not of the {mode} mode: {extra[:5]}")
        meta[f"{target}_shards"] = sum(shard_rows.values())
        meta[f"{target}_exported"] = rows
    return problems, meta


def export_exists(exports: Path) -> bool:
    root = export_root(exports)
    return is_committed(root) if is_remote(root) else (root / TRAINING).is_dir()
