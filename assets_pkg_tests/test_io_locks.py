"""assets_pkg.io.locks: one writer per domain state, across real processes."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from assets_pkg.io.locks import LockTimeout, domain_lock, domain_lock_path, read_holder
from assets_pkg.settings import SettingError

HOLDER = textwrap.dedent(
    """
    import sys, time
    from assets_pkg.io.locks import domain_lock
    with domain_lock("summary", run_id="run-holder"):
        print("held", flush=True)
        time.sleep(float(sys.argv[1]))
    """
)


def start_holder(seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(seconds)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_fails_after_the_wait_naming_the_holder(data_root):
    proc = start_holder(30)
    try:
        started = time.monotonic()
        with pytest.raises(LockTimeout) as err:
            with domain_lock("summary", run_id="run-2", timeout_s=0.5):
                pass
        assert 0.4 < time.monotonic() - started < 5
        message = str(err.value)
        path = data_root / "warehouse" / "summary" / "_state" / ".lock"
        assert f"pid {proc.pid}" in message and "run run-holder" in message and str(path) in message
        assert "DOMAIN_LOCK_TIMEOUT_S" in message and "since 20" in message
        assert err.value.holder["pid"] == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_waiter_gets_the_lock_when_the_holder_finishes(data_root):
    proc = start_holder(1.0)
    try:
        started = time.monotonic()
        with domain_lock("summary", run_id="run-2", timeout_s=30) as path:
            assert time.monotonic() - started > 0.3  # it waited for the holder
            assert read_holder(path)["run_id"] == "run-2" and read_holder(path)["pid"] == os.getpid()
        assert read_holder(path) == {}  # released: no stale holder left in the file
    finally:
        proc.wait()


def test_a_killed_holder_releases_the_lock(data_root):
    proc = start_holder(60)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with domain_lock("summary", timeout_s=5):
        pass


def test_reentrant_in_one_process_and_separate_per_domain_and_part(data_root):
    with domain_lock("summary", timeout_s=0):
        with domain_lock("summary", timeout_s=0):  # an engine call inside an asset that holds it
            pass
        with domain_lock("splits", timeout_s=0), domain_lock("ingest", part="a", timeout_s=0):
            pass
    assert domain_lock_path("ingest", "a") == data_root / "warehouse" / "ingest" / "_state" / "a.lock"


def test_timeout_setting_is_read_from_the_environment(data_root, monkeypatch):
    monkeypatch.setenv("DOMAIN_LOCK_TIMEOUT_S", "soon")
    with pytest.raises(SettingError, match="DOMAIN_LOCK_TIMEOUT_S"):
        with domain_lock("summary"):
            pass
    monkeypatch.setenv("DOMAIN_LOCK_TIMEOUT_S", "0.2")
    proc = start_holder(30)
    try:
        with pytest.raises(LockTimeout, match="waited 0.2 s"):
            with domain_lock("summary"):
                pass
    finally:
        proc.kill()
        proc.wait()


def test_unwritable_root_names_the_lock_file(tmp_path, monkeypatch):
    root = tmp_path / "ro"
    root.mkdir()
    (root / "warehouse").write_text("not a folder")
    monkeypatch.setenv("ASSETS_PKG_DATA_DIR", str(root))
    with pytest.raises(OSError, match=r"lock file .*_state/\.lock"):
        with domain_lock("summary"):
            pass
    assert Path(root / "warehouse").is_file()
