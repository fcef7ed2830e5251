"""`assets-pkg demo` end to end on tiny generated data, in a temp data root."""

import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_runs_every_domain_and_reports_green_checks(data_root):
    env = {**os.environ, "ASSETS_PKG_DATA_DIR": str(data_root), "DAGSTER_HOME": str(data_root / ".dagster")}
    proc = subprocess.run(
        [sys.executable, "-m", "assets_pkg.cli", "demo", "--scale", "test"],
        capture_output=True, text=True, timeout=900, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for section in ("== ingest", "== splits", "== summary", "== logs", "== timeseries"):
        assert section in proc.stdout
    assert "demo OK" in proc.stdout
    assert (data_root / "warehouse" / "ingest" / "files" / "orders").is_dir()
    # a second run over the same inboxes is idempotent and still green
    again = subprocess.run(
        [sys.executable, "-m", "assets_pkg.cli", "check"], capture_output=True, text=True, timeout=600, env=env
    )
    assert again.returncode == 0, again.stdout + again.stderr
