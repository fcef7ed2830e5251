"""The split outputs as files: which shard files a split has, their rows, one relation
over them, and the label rates they hold (no dagster import).
"""

from pathlib import Path

import pyarrow as pa

from assets_pkg import layout
from assets_pkg.duck import quote_ident
from assets_pkg.splits.discovery import parse_shard_name, shard_key
from assets_pkg.splits.params import SplitParams
from assets_pkg.splits.rows import SPLITS
from assets_pkg.storage import as_path, is_remote
from assets_pkg.storage.arrow import arrow_location, parquet_file


def output_folder(warehouse: Path, split: str) -> Path:
    return layout.asset_dir(["splits", split], warehouse)


def shard_output_files(warehouse: Path, split: str) -> dict[str, Path]:
    """{5-digit key: file} of one split's materialized shards (any format)."""
    folder = output_folder(warehouse, split)
    out = {}
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            if p.name.startswith("."):
                continue
            parsed = parse_shard_name(p.name)
            if isinstance(parsed, str):
                out[p.name] = p  # not a shard name: shard_mapping reports it
            else:
                out[shard_key(parsed[0])] = p
    return out


def file_rows(path: Path) -> int:
    """Rows of one output file (a Parquet footer, or a text file read through)."""
    path = as_path(path)
    if path.suffix == ".parquet":
        return parquet_file(path).metadata.num_rows
    return sum(b.num_rows for b in _text_batches(path))


def _text_batches(path: Path):
    from assets_pkg.reader import StreamingReader

    return StreamingReader(path, continue_on_error=False).to_record_batch_reader()


def files_relation(con, files: list[Path], columns: list[str] | None = None):
    """One relation over output shard files (parquet scanned by DuckDB, text via the reader)."""
    files = [as_path(f) for f in files]
    cols = ", ".join(quote_ident(c) for c in columns) if columns else "*"
    if not files:
        return None
    if all(f.suffix == ".parquet" for f in files):
        rel = parquet_relation(con, files)
        return rel.project(cols) if columns else rel
    parts = []
    for i, f in enumerate(files):
        name = f"__files_{i}"
        rel = con.from_arrow(_text_batches(f))
        rel.create_view(name, replace=True)
        parts.append(f"SELECT {cols} FROM {name}")
    return con.sql(" UNION ALL BY NAME ".join(parts))


def parquet_relation(con, files: list):
    """One relation over Parquet files, columns matched by name. An object store's files are
    scanned through pyarrow's native S3 client (parallel ranged reads, only the columns
    asked for) rather than DuckDB's fsspec filesystem, which reads them in Python."""
    if not is_remote(files[0]):
        return con.read_parquet([str(f) for f in files], union_by_name=True)
    import pyarrow.dataset as pads

    fs, first = arrow_location(files[0])
    locations = [first, *(arrow_location(f)[1] for f in files[1:])]
    schemas = [parquet_file(f).schema_arrow for f in files]  # footers only: union by name
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    return con.from_arrow(pads.dataset(locations, schema=schema, format="parquet", filesystem=fs))


def output_label_rates(con, warehouse: Path, params: SplitParams, labels: dict) -> dict:
    """Label statistics per split over the written shards: rows per label value, its share
    and, for numeric labels, the mean (the positive rate of a 0/1 label). One column scan."""
    names = {code: value for value, code in labels.get("map", {}).items()}
    out: dict = {}
    if not params.labelled:
        return out
    for split in SPLITS:
        files = [p for k, p in sorted(shard_output_files(warehouse, split).items()) if k.isdigit()]
        rel = files_relation(con, files, [params.output_label])
        if rel is None:
            out[split] = {"rows": 0, "by_label": {}, "share": {}}
            continue
        rel.create_view("__labels_out", replace=True)
        rows = con.execute(
            f"SELECT {quote_ident(params.output_label)} AS v, count(*) FROM __labels_out GROUP BY 1 ORDER BY 1"
        ).fetchall()
        total = sum(n for _, n in rows) or 1
        by_label = {str(names.get(v, v)): int(n) for v, n in rows}
        entry = {"rows": sum(n for _, n in rows), "by_label": by_label,
                 "share": {k: round(n / total, 6) for k, n in by_label.items()}}
        if labels["mode"] == "numeric":
            entry["mean"] = round(sum(float(v) * n for v, n in rows if v is not None) / total, 6)
        out[split] = entry
    return out
