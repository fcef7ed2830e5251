"""The whole demo graph with the data root in an S3 bucket (a real SeaweedFS server) equals
the same demo on a local root, row for row: every asset, every partition, every export,
every log segment; with every ERROR check green on both."""

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

OUTPUTS = ("warehouse", "exports", "cache")
DATA_SUFFIXES = (".parquet", ".csv", ".csv.gz", ".tsv", ".tsv.gz")


def _demo(env: dict) -> str:
    proc = subprocess.run([sys.executable, "-m", "assets_pkg.cli", "demo", "--scale", "test"],
                          capture_output=True, text=True, timeout=1200, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "demo OK" in proc.stdout
    return proc.stdout


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


@pytest.mark.slow
def test_demo_on_an_s3_root_equals_the_local_demo_row_for_row(tmp_path, seaweed, s3_env):
    local = tmp_path / "local"
    (local / ".dagster").mkdir(parents=True)
    _demo({**os.environ, "ASSETS_PKG_DATA_DIR": str(local), "DAGSTER_HOME": str(local / ".dagster")})

    bucket = seaweed.make_bucket()
    home = tmp_path / "s3_home"
    home.mkdir()
    # `demo` exits non-zero when an ERROR check fails: _demo asserts exit 0 on both roots
    s3_run = {**os.environ, **s3_env, "ASSETS_PKG_DATA_DIR": f"s3://{bucket}/data", "DAGSTER_HOME": str(home)}
    _demo(s3_run)
    # every check of every group, against what is in the bucket now
    check = subprocess.run([sys.executable, "-m", "assets_pkg.cli", "check"], capture_output=True, text=True,
                           timeout=900, env=s3_run)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]

    expected = _local_files(local)
    actual = _remote_files(seaweed.filesystem(), f"{bucket}/data")
    assert sorted(actual) == sorted(expected), "the same files under the same names"
    assert len(expected) > 50, "every domain wrote its outputs"
    different = [name for name in expected
                 if _sorted_rows(_table(expected[name], name)) != _sorted_rows(_table(actual[name], name))]
    assert different == [], f"files whose rows differ between the local and the S3 root: {different[:10]}"
    assert not any(Path(home).glob("**/*.parquet")), "no data file lands in the local DAGSTER_HOME"
