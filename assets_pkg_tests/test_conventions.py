"""Dagster conventions over the whole code location, and resources that clean up."""

import os
import subprocess
import sys

import dagster as dg
import duckdb
import pytest

from assets_pkg.definitions import defs
from assets_pkg.resources.duckdb import DuckDBResource


def _specs():
    repo = defs.get_repository_def()
    for key, assets_def in repo.assets_defs_by_key.items():
        yield next(s for s in assets_def.specs if s.key == key)


def test_every_asset_has_owners_kinds_code_version_group_and_description():
    missing = {
        spec.key.to_user_string(): [name for name, value in (
            ("owners", spec.owners), ("kinds", spec.kinds), ("code_version", spec.code_version),
            ("group_name", spec.group_name), ("description", spec.description)) if not value]
        for spec in _specs()
    }
    assert {k: v for k, v in missing.items() if v} == {}


def test_every_check_has_a_description():
    repo = defs.get_repository_def()
    specs = [spec for assets_def in repo.assets_defs_by_key.values() for spec in assets_def.check_specs]
    specs += [spec for checks_def in repo.asset_checks_defs_by_key.values() for spec in checks_def.check_specs]
    assert specs
    assert [s.key for s in specs if not s.description] == []


HANDED_OUT: list = []


@dg.asset
def uses_duckdb(duckdb: DuckDBResource) -> None:
    """Keeps the connections it got so the test can see they were closed."""
    HANDED_OUT.append(duckdb.connect())
    with duckdb.get_connection() as con:
        HANDED_OUT.append(con)
        con.execute("SELECT 1").fetchall()


def test_duckdb_connections_are_closed_when_the_step_ends(data_root, instance):
    HANDED_OUT.clear()
    assert dg.materialize([uses_duckdb], resources={"duckdb": DuckDBResource()}, instance=instance).success
    assert len(HANDED_OUT) == 2
    for con in HANDED_OUT:
        with pytest.raises(duckdb.ConnectionException):
            con.execute("SELECT 1")


def test_log_api_token_never_lands_in_resource_config():
    # what the launchpad and run config see is the resource's config: an env reference
    code = (
        "from assets_pkg.definitions import defs\n"
        "rd = defs.resolve_job_def('logs_daily_job').resource_defs['log_source']\n"
        "print(rd.config_schema.as_field().default_value['api_token'])\n"
    )
    env = {**os.environ, "LOG_API_TOKEN": "secret-token"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "{'env': 'LOG_API_TOKEN'}"
