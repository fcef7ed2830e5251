"""The time-series catalog: ``data/inbox/timeseries/datasets.yaml``.

Pure module (no dagster import). Parses the YAML with node marks so that every error --
invalid YAML, an unknown field, a bad value -- names the file and the line.

Example::

    target_resolution: 1min        # 1s, 30s, 1min, 15min, 1h, 1d (must divide a day)
    tolerance: 30s                 # alignment tolerance (at most half the target resolution)
    join: outer                    # outer (default) | inner
    coverage_threshold: 0.9        # coverage check warns below this share
    max_reject_share: 0.05         # rejected rows (bad timestamps/values) per file that abort
    export:
      formats: [parquet, csv]      # parquet (zstd) and/or csv
      csv_compression: gzip        # gzip | none
    datasets:
      power:
        file: power.csv            # relative to the catalog folder; csv/tsv/parquet, .gz ok
        time_column: ts
        timezone: UTC              # naive timestamps are read in this zone
        key_columns: []
        value_columns: [kw, volts]
        resolution: 1s             # native sampling interval
        aggregation: mean          # one for all, or {kw: mean, volts: max}
        upsampling: none           # none | ffill | linear | {method: ffill, limit: 15}
"""

import re
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from assets_pkg import layout
from assets_pkg.storage import as_path
from assets_pkg.storage.objects import file_exists

CATALOG_NAME = "datasets.yaml"
AGGREGATIONS = ("mean", "sum", "min", "max", "first", "last", "count")
UPSAMPLING_METHODS = ("none", "ffill", "linear")
JOINS = ("outer", "inner")
EXPORT_FORMATS = ("parquet", "csv")
CSV_COMPRESSIONS = ("gzip", "none")
RESERVED_COLUMNS = ("bucket", "ts", "dataset", "__row")

_UNITS_US = {"us": 1, "ms": 1_000, "s": 1_000_000, "min": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
_DURATION = re.compile(r"^\s*(\d+)\s*(us|ms|s|min|h|d)\s*$")
DAY_US = _UNITS_US["d"]

_TOP_FIELDS = {"target_resolution", "tolerance", "join", "coverage_threshold", "max_reject_share", "export", "datasets"}
_EXPORT_FIELDS = {"formats", "csv_compression"}
_DATASET_FIELDS = {
    "file", "time_column", "timezone", "key_columns", "value_columns", "resolution", "aggregation", "upsampling",
}
_UPSAMPLING_FIELDS = {"method", "limit"}


class CatalogError(ValueError):
    """The catalog is missing, not valid YAML, or has an unknown field or a bad value."""


def parse_duration(text) -> int:
    """'1s', '1min', '15min', '1h', '500ms', '1d' -> microseconds. 0 is allowed ('0s')."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration like 1s, 30s, 1min, 15min, 1h (units us, ms, s, min, h, d)")
    return int(match.group(1)) * _UNITS_US[match.group(2)]


def format_duration(us: int) -> str:
    for unit in ("d", "h", "min", "s", "ms"):
        size = _UNITS_US[unit]
        if us and us % size == 0:
            return f"{us // size}{unit}"
    return f"{us}us"


@dataclass(frozen=True)
class Upsampling:
    method: str = "ffill"  # none | ffill | linear
    limit: int | None = None  # target buckets a value may be carried/interpolated; None -> default


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    file: Path
    time_column: str
    value_columns: tuple[str, ...]
    resolution_us: int
    aggregation: dict  # value column -> aggregation
    upsampling: Upsampling = field(default_factory=Upsampling)
    timezone: str = "UTC"
    key_columns: tuple[str, ...] = ()
    line: int = 0  # line of the dataset in the catalog (for messages)

    def mode(self, target_us: int) -> str:
        """'down' (aggregate), 'same' (passthrough) or 'up' (fill)."""
        if self.resolution_us < target_us:
            return "down"
        if self.resolution_us == target_us:
            return "same"
        return "up"

    def fill_limit(self, target_us: int) -> int:
        """Buckets a value may be carried forward / interpolated across when upsampling."""
        if self.upsampling.limit is not None:
            return self.upsampling.limit
        return max(1, -(-self.resolution_us // target_us))

    def output_columns(self) -> list[str]:
        return [f"{self.name}__{col}" for col in self.value_columns]


@dataclass(frozen=True)
class Catalog:
    path: Path
    datasets: tuple[DatasetSpec, ...]
    target_resolution_us: int = 60_000_000
    tolerance_us: int = 0
    join: str = "outer"
    coverage_threshold: float = 0.9
    max_reject_share: float = 0.05
    export_formats: tuple[str, ...] = ("parquet", "csv")
    csv_compression: str = "gzip"

    @property
    def key_columns(self) -> tuple[str, ...]:
        for spec in self.datasets:
            if spec.key_columns:
                return spec.key_columns
        return ()

    @property
    def buckets_per_day(self) -> int:
        return DAY_US // self.target_resolution_us

    def dataset(self, name: str) -> DatasetSpec:
        for spec in self.datasets:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def value_columns(self) -> list[str]:
        return [col for spec in self.datasets for col in spec.output_columns()]


def catalog_path() -> Path:
    """Where the catalog lives: ``<data>/inbox/timeseries/datasets.yaml``."""
    return layout.inbox_dir("timeseries") / CATALOG_NAME


def load_catalog(path: Path | str) -> Catalog:
    path = as_path(path)
    if not file_exists(path):
        raise CatalogError(f"{path}: time-series catalog not found (declare the datasets there)")
    return parse_catalog(path.read_text(encoding="utf-8"), path)


# ------------------------------------------------------------------------------------------
class _Ctx:
    def __init__(self, text: str, path: Path):
        self.path = path
        self.loader = yaml.SafeLoader(text)

    def fail(self, node, message: str):
        line = node.start_mark.line + 1 if node is not None else 0
        raise CatalogError(f"{self.path} line {line}: {message}")

    def value(self, node):
        return self.loader.construct_object(node, deep=True)


def parse_catalog(text: str, path: Path | str = CATALOG_NAME) -> Catalog:
    """Parse and validate catalog text. ``path`` is used for messages and relative files."""
    path = as_path(path)
    ctx = _Ctx(text, path)
    try:
        root = ctx.loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CatalogError(f"{path}{where}: invalid YAML: {problem}") from None
    if root is None or not isinstance(root, yaml.MappingNode):
        ctx.fail(root, "the catalog must be a mapping with 'datasets' and global settings")
    top = _mapping(ctx, root, _TOP_FIELDS, "catalog")
    kwargs: dict = {}
    if "target_resolution" in top:
        kwargs["target_resolution_us"] = _duration(ctx, top["target_resolution"], "target_resolution", positive=True)
        if DAY_US % kwargs["target_resolution_us"]:
            ctx.fail(top["target_resolution"], "target_resolution must divide a day (e.g. 1s, 1min, 15min, 1h)")
    target = kwargs.get("target_resolution_us", Catalog.target_resolution_us)
    if "tolerance" in top:
        kwargs["tolerance_us"] = _duration(ctx, top["tolerance"], "tolerance")
        if kwargs["tolerance_us"] * 2 > target:
            ctx.fail(
                top["tolerance"],
                f"tolerance {format_duration(kwargs['tolerance_us'])} is more than half the target resolution "
                f"{format_duration(target)}: a row would be closer to another bucket",
            )
    if "join" in top:
        kwargs["join"] = _choice(ctx, top["join"], JOINS, "join")
    for name in ("coverage_threshold", "max_reject_share"):
        if name in top:
            kwargs[name] = _share(ctx, top[name], name)
    if "export" in top:
        export = _mapping(ctx, top["export"], _EXPORT_FIELDS, "export")
        if "formats" in export:
            formats = _str_list(ctx, export["formats"], "export.formats")
            for fmt in formats:
                if fmt not in EXPORT_FORMATS:
                    ctx.fail(export["formats"], f"export.formats: unknown format {fmt!r}; expected {', '.join(EXPORT_FORMATS)}")
            if not formats:
                ctx.fail(export["formats"], "export.formats must name at least one format")
            kwargs["export_formats"] = tuple(dict.fromkeys(formats))
        if "csv_compression" in export:
            kwargs["csv_compression"] = _choice(ctx, export["csv_compression"], CSV_COMPRESSIONS, "export.csv_compression")
    if "datasets" not in top:
        ctx.fail(root, "missing 'datasets' (a mapping: dataset name -> settings)")
    ds_node = top["datasets"]
    if not isinstance(ds_node, yaml.MappingNode) or not ds_node.value:
        ctx.fail(ds_node, "'datasets' must be a non-empty mapping: dataset name -> settings")
    datasets = []
    for key_node, value_node in ds_node.value:
        name = str(ctx.value(key_node))
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            ctx.fail(key_node, f"dataset name {name!r} must be an identifier (letters, digits, _)")
        if any(d.name == name for d in datasets):
            ctx.fail(key_node, f"dataset {name!r} is declared twice")
        datasets.append(_dataset(ctx, name, value_node, path.parent, key_node.start_mark.line + 1))
    keyed = {spec.key_columns for spec in datasets if spec.key_columns}
    if len(keyed) > 1:
        ctx.fail(ds_node, f"datasets with key columns must share the same key columns, got {sorted(keyed)}")
    return Catalog(path=path, datasets=tuple(datasets), **kwargs)


def _dataset(ctx: _Ctx, name: str, node, base: Path, line: int) -> DatasetSpec:
    where = f"datasets.{name}"
    fields = _mapping(ctx, node, _DATASET_FIELDS, where)
    for required in ("file", "time_column", "value_columns", "resolution"):
        if required not in fields:
            ctx.fail(node, f"{where}: missing required field {required!r}")
    file = as_path(_str(ctx, fields["file"], f"{where}.file"))
    if not file.is_absolute():
        file = base / file
    time_column = _str(ctx, fields["time_column"], f"{where}.time_column")
    values = _str_list(ctx, fields["value_columns"], f"{where}.value_columns")
    if not values:
        ctx.fail(fields["value_columns"], f"{where}.value_columns must list at least one column")
    keys = _str_list(ctx, fields["key_columns"], f"{where}.key_columns") if "key_columns" in fields else []
    all_cols = [time_column, *keys, *values]
    dupes = sorted({c for c in all_cols if all_cols.count(c) > 1})
    if dupes:
        ctx.fail(node, f"{where}: column(s) {dupes} used twice among time, key and value columns")
    for col in all_cols:
        if col in RESERVED_COLUMNS and col != time_column:
            ctx.fail(node, f"{where}: column name {col!r} is reserved ({', '.join(RESERVED_COLUMNS)})")
    tz = "UTC"
    if "timezone" in fields:
        tz = _str(ctx, fields["timezone"], f"{where}.timezone")
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            ctx.fail(fields["timezone"], f"{where}.timezone: unknown time zone {tz!r} (use an IANA name like Europe/Berlin)")
    resolution = _duration(ctx, fields["resolution"], f"{where}.resolution", positive=True)
    aggregation = {col: "mean" for col in values}
    if "aggregation" in fields:
        agg_node = fields["aggregation"]
        if isinstance(agg_node, yaml.ScalarNode):
            agg = _choice(ctx, agg_node, AGGREGATIONS, f"{where}.aggregation")
            aggregation = {col: agg for col in values}
        elif isinstance(agg_node, yaml.MappingNode):
            for k_node, v_node in agg_node.value:
                col = str(ctx.value(k_node))
                if col not in values:
                    ctx.fail(k_node, f"{where}.aggregation: {col!r} is not one of the value_columns {values}")
                aggregation[col] = _choice(ctx, v_node, AGGREGATIONS, f"{where}.aggregation.{col}")
        else:
            ctx.fail(agg_node, f"{where}.aggregation must be one of {AGGREGATIONS} or a mapping column -> aggregation")
    upsampling = Upsampling()
    if "upsampling" in fields:
        up_node = fields["upsampling"]
        if isinstance(up_node, yaml.ScalarNode):
            upsampling = Upsampling(method=_choice(ctx, up_node, UPSAMPLING_METHODS, f"{where}.upsampling"))
        elif isinstance(up_node, yaml.MappingNode):
            up = _mapping(ctx, up_node, _UPSAMPLING_FIELDS, f"{where}.upsampling")
            method = _choice(ctx, up["method"], UPSAMPLING_METHODS, f"{where}.upsampling.method") if "method" in up else "ffill"
            limit = None
            if "limit" in up:
                limit = ctx.value(up["limit"])
                if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
                    ctx.fail(up["limit"], f"{where}.upsampling.limit must be a whole number of target buckets >= 1")
            upsampling = Upsampling(method=method, limit=limit)
        else:
            ctx.fail(up_node, f"{where}.upsampling must be one of {UPSAMPLING_METHODS} or {{method, limit}}")
    return DatasetSpec(
        name=name, file=file, time_column=time_column, value_columns=tuple(values), resolution_us=resolution,
        aggregation=aggregation, upsampling=upsampling, timezone=tz, key_columns=tuple(keys),
        line=line,
    )


def _mapping(ctx: _Ctx, node, allowed: set, where: str) -> dict:
    if not isinstance(node, yaml.MappingNode):
        ctx.fail(node, f"{where} must be a mapping")
    out = {}
    for key_node, value_node in node.value:
        key = str(ctx.value(key_node))
        if key not in allowed:
            ctx.fail(key_node, f"unknown field {key!r} in {where}; allowed: {', '.join(sorted(allowed))}")
        if key in out:
            ctx.fail(key_node, f"field {key!r} given twice in {where}")
        out[key] = value_node
    return out


def _str(ctx: _Ctx, node, where: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or ctx.value(node) in (None, ""):
        ctx.fail(node, f"{where} must be a non-empty text value")
    return str(ctx.value(node))


def _str_list(ctx: _Ctx, node, where: str) -> list[str]:
    if isinstance(node, yaml.ScalarNode) and ctx.value(node) is None:
        return []
    if not isinstance(node, yaml.SequenceNode):
        ctx.fail(node, f"{where} must be a list")
    out = []
    for item in node.value:
        out.append(_str(ctx, item, where))
    return out


def _choice(ctx: _Ctx, node, choices, where: str) -> str:
    value = str(ctx.value(node)) if isinstance(node, yaml.ScalarNode) else None
    if value is None or value not in choices:
        ctx.fail(node, f"{where}: {value!r} is not one of {', '.join(choices)}")
    return value


def _duration(ctx: _Ctx, node, where: str, positive: bool = False) -> int:
    value = ctx.value(node) if isinstance(node, yaml.ScalarNode) else None
    try:
        us = parse_duration(value)
    except ValueError as exc:
        ctx.fail(node, f"{where}: {exc}")
    if positive and us <= 0:
        ctx.fail(node, f"{where} must be greater than zero")
    return us


def _share(ctx: _Ctx, node, where: str) -> float:
    value = ctx.value(node) if isinstance(node, yaml.ScalarNode) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        ctx.fail(node, f"{where} must be a number between 0 and 1")
    return float(value)
