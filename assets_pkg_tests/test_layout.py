"""The one path-layout module: names, and that no other module builds data-root paths by hand."""

import re
from pathlib import Path

import pytest

from assets_pkg import layout

PACKAGE = Path(__file__).resolve().parents[1] / "assets_pkg"
# a data-root folder joined with a literal: ``settings.warehouse / "x"``, ``get_settings().inbox / "y"``
HAND_BUILT = re.compile(r"(\.|Path\()(warehouse|exports|inbox|cache|data_root)\)? ?/ ?[\"']")
ALLOWED = {"layout.py", "settings.py", "instance.py"}  # instance.py: DAGSTER_HOME's default


def test_names_follow_the_design(data_root):
    assert layout.shard_stem("7") == "part-00007" and layout.shard_stem(123456) == "part-123456"
    assert layout.partition_stem("00042") == "part-00042"
    assert layout.partition_stem("2025-06", layout.MONTH) == "2025-06"
    assert layout.multi_stem([("log_id", "app")], "2025-01-02") == "log_id=app/2025-01-02"
    assert layout.partition_file(["summary", "account_summary"], "2025-06") == (
        data_root / "warehouse" / "summary" / "account_summary" / "2025-06.parquet"
    )
    assert layout.asset_file(["summary", "latest_summary"]) == data_root / "warehouse" / "summary" / "latest_summary.parquet"
    assert layout.state_dir("summary") == data_root / "warehouse" / "summary" / "_state"
    assert layout.exports_dir("timeseries") == data_root / "exports" / "timeseries"
    assert layout.inbox_dir("files") == data_root / "inbox" / "files"
    assert layout.cache_dir("logs") == data_root / "cache" / "logs"


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b"])
def test_a_key_that_is_not_a_file_name_is_refused(bad):
    with pytest.raises(ValueError, match="cannot be a file name"):
        layout.partition_stem(bad)


def test_partition_files_skip_temp_and_hidden_files(data_root):
    folder = layout.asset_dir(["summary", "account_summary"])
    folder.mkdir(parents=True)
    for name in ("2025-01.parquet", "2025-02.parquet", ".2025-03.parquet.tmp-1", ".hidden.parquet"):
        (folder / name).write_bytes(b"x")
    assert [p.name for p in layout.partition_files(["summary", "account_summary"])] == ["2025-01.parquet", "2025-02.parquet"]


def test_no_module_builds_data_root_paths_by_hand():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.name in ALLOWED or rel.parts[0] == "demo":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if HAND_BUILT.search(line):
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert offenders == []
