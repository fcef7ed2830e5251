"""`assets-pkg timeseries validate|days` on the demo's test data."""

from assets_pkg.cli import main
from assets_pkg.demo import timeseries as demo


def test_validate_and_days(data_root, capsys):
    inbox = data_root / "inbox" / demo.INBOX
    demo.generate(inbox, scale="test")
    assert main(["timeseries", "validate"]) == 0
    out = capsys.readouterr().out
    assert "power:" in out and "-> down (kw:mean, volts:max)" in out
    assert "meters:" in out and "-> same (passthrough)" in out
    assert "weather:" in out and "-> up (ffill limit 15)" in out
    assert main(["timeseries", "days"]) == 0
    assert capsys.readouterr().out.split() == demo.day_keys("test")
    (inbox / "meters.parquet").unlink()
    assert main(["timeseries", "validate"]) == 1
    assert "(MISSING)" in capsys.readouterr().out
    (inbox / "datasets.yaml").write_text("datasets: [\n")
    assert main(["timeseries", "validate"]) == 1
    assert "invalid YAML" in capsys.readouterr().out
