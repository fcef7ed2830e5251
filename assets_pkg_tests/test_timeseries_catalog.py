"""Catalog parsing: valid files, and every error names the line."""

import pytest

from assets_pkg.timeseries.catalog import CatalogError, load_catalog, parse_catalog, parse_duration

VALID = """\
target_resolution: 1min
tolerance: 30s
join: inner
coverage_threshold: 0.5
export:
  formats: [parquet]
  csv_compression: none
datasets:
  power:
    file: power.csv
    time_column: ts
    value_columns: [kw, volts]
    resolution: 1s
    aggregation: {kw: sum}
  meters:
    file: /abs/meters.parquet
    time_column: t
    key_columns: [meter]
    value_columns: [reading]
    resolution: 15min
    timezone: Europe/Berlin
    upsampling: {method: linear, limit: 4}
"""


def test_parse_valid_catalog(tmp_path):
    path = tmp_path / "datasets.yaml"
    path.write_text(VALID)
    cat = load_catalog(path)
    assert cat.target_resolution_us == 60_000_000
    assert cat.tolerance_us == 30_000_000
    assert cat.join == "inner"
    assert cat.export_formats == ("parquet",)
    assert cat.csv_compression == "none"
    power, meters = cat.datasets
    assert power.file == tmp_path / "power.csv"
    assert power.aggregation == {"kw": "sum", "volts": "mean"}
    assert power.mode(cat.target_resolution_us) == "down"
    assert meters.mode(cat.target_resolution_us) == "up"
    assert meters.upsampling.method == "linear" and meters.fill_limit(cat.target_resolution_us) == 4
    assert str(meters.file) == "/abs/meters.parquet"
    assert cat.key_columns == ("meter",)
    assert cat.value_columns() == ["power__kw", "power__volts", "meters__reading"]
    assert cat.buckets_per_day == 1440


@pytest.mark.parametrize(
    "text,expected",
    [("1s", 1_000_000), ("1min", 60_000_000), ("15min", 900_000_000), ("1h", 3_600_000_000), ("500ms", 500_000), ("0s", 0)],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["1m", "abc", "1.5s", "", "-1s"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_unknown_field_names_the_line():
    text = VALID.replace("    resolution: 1s\n", "    resolution: 1s\n    colour: red\n")
    with pytest.raises(CatalogError, match=r"line 14: unknown field 'colour' in datasets.power"):
        parse_catalog(text)


def test_unknown_top_level_field():
    with pytest.raises(CatalogError, match=r"line 1: unknown field 'target'"):
        parse_catalog("target: 1min\n" + VALID)


def test_invalid_yaml_names_the_line():
    with pytest.raises(CatalogError, match=r"line \d+ column \d+: invalid YAML"):
        parse_catalog("datasets:\n  a: [1, 2\n  b: 3\n")


@pytest.mark.parametrize(
    "old,new,message",
    [
        ("resolution: 1s", "resolution: 1 sec", r"line 13: datasets.power.resolution"),
        ("aggregation: {kw: sum}", "aggregation: {kw: median}", r"line 14: datasets.power.aggregation.kw: 'median'"),
        ("aggregation: {kw: sum}", "aggregation: {watts: sum}", r"'watts' is not one of the value_columns"),
        ("method: linear", "method: cubic", r"upsampling.method: 'cubic'"),
        ("limit: 4", "limit: 0", r"upsampling.limit must be a whole number"),
        ("join: inner", "join: left", r"line 3: join: 'left'"),
        ("tolerance: 30s", "tolerance: 45s", r"more than half the target resolution"),
        ("target_resolution: 1min", "target_resolution: 7min", r"must divide a day"),
        ("timezone: Europe/Berlin", "timezone: Mars/Olympus", r"unknown time zone"),
        ("formats: [parquet]", "formats: [xlsx]", r"unknown format 'xlsx'"),
        ("coverage_threshold: 0.5", "coverage_threshold: 2", r"between 0 and 1"),
    ],
)
def test_bad_values_are_clear(old, new, message):
    assert old in VALID
    with pytest.raises(CatalogError, match=message):
        parse_catalog(VALID.replace(old, new))


def test_missing_required_field():
    with pytest.raises(CatalogError, match=r"datasets.power: missing required field 'time_column'"):
        parse_catalog(VALID.replace("    time_column: ts\n", ""))


def test_keyed_datasets_must_share_keys():
    text = VALID.replace("    value_columns: [kw, volts]\n", "    key_columns: [site]\n    value_columns: [kw, volts]\n")
    with pytest.raises(CatalogError, match="must share the same key columns"):
        parse_catalog(text)


def test_missing_catalog_file(tmp_path):
    with pytest.raises(CatalogError, match="catalog not found"):
        load_catalog(tmp_path / "datasets.yaml")
