"""The splits demo (sensor tick -> one run -> consolidated) and the `assets-pkg splits` CLI."""

import argparse

import pytest

from assets_pkg.demo import splits as demo
from assets_pkg.demo.framework import DemoContext, DemoReport
from assets_pkg.settings import get_settings
from assets_pkg.splits import cli
from assets_pkg.splits.discovery import discover
from assets_pkg_tests.test_splits_assets import make_defs


def test_generate_demo_scale_has_gaps_mixed_formats_and_one_gzip(tmp_path):
    demo.generate(tmp_path, scale="demo")
    found = discover(tmp_path)
    assert not found.problems and len(found.shards) == 20
    numbers = [s.number for s in found.shards]
    assert numbers != list(range(numbers[0], numbers[0] + 20))  # gaps
    assert {s.format for s in found.shards} == {"csv", "tsv", "parquet"}
    assert sum(s.compressed for s in found.shards) == 1


@pytest.mark.slow
def test_demo_run_reports_rows_and_green_checks(data_root, instance):
    inbox = data_root / "inbox" / demo.INBOX
    demo.generate(inbox, scale="test")
    report = DemoReport()
    ctx = DemoContext(settings=get_settings(), instance=instance, defs=make_defs(consolidate=False),
                      report=report, scale="test")
    demo.run(ctx)
    text = report.render()
    assert "rows: in 1000," in text and "by label 0," not in text
    assert not report.failed_error_checks, text
    for check in ("no_customer_leakage", "shard_mapping", "row_accounting", "consolidated_matches_shards"):
        assert any(name == check for (_, name) in report.checks), check
    assert (data_root / "exports/splits/training_data/test/test_processed_data.parquet").exists()
    assert (data_root / "exports/splits/oot_data/oot_data.parquet").exists()
    assert instance.get_dynamic_partitions("splits_shards") == ["00001", "00005", "00010", "00042", "00099"]


def test_cli_lists_shards_and_refused_files(data_root, capsys):
    inbox = data_root / "inbox" / "transactions"
    demo.generate(inbox, scale="test")
    (inbox / "notes.txt").write_text("x")
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["splits", "shards", "--strict"])
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert "00042" in out and "part-00005.csv.gz" in out and "REFUSED  notes.txt" in out
    args = parser.parse_args(["splits", "manifest"])
    assert args.func(args) == 1  # nothing materialized yet
