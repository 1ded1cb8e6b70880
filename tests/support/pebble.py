"""Pebble, Let's Encrypt's test ACME server (Debian package ``pebble``), run for a test.

Pebble validates challenges for real: it resolves the names through ``-dnsserver`` (the
tests' ``ZoneServer``) and connects to ``httpPort`` (HTTP-01) and ``tlsPort`` (TLS-ALPN-01),
which the test sets to its own listeners' ephemeral ports. Its HTTPS certificate is made here
with trustme (Debian does not ship Pebble's test certificates); that CA is the ``ca-file``
of the ``[acme]`` section. Its CA (root and intermediate) is made anew at every start and
read over the management API (``/roots/0``, ``/intermediates/0``).

Readiness is read from its output ("ACME directory available at"), never slept for.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trustme

READY_LINE = "ACME directory available at"
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Pebble:
    directory: str
    management: str
    ca_file: Path  # trust anchor of Pebble's own HTTPS (the [acme] ca-file)
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def management_get(self, path: str) -> bytes:
        with urllib.request.urlopen(
            self.management + path, context=self._context(), timeout=10
        ) as answer:
            return answer.read()

    def intermediate_pem(self) -> bytes:
        """The intermediate that signs Pebble's certificates (regenerated at every start)."""
        return self.management_get("/intermediates/0")

    def root_pem(self) -> bytes:
        return self.management_get("/roots/0")


@contextmanager
def run_pebble(
    binary: str,
    directory: Path,
    *,
    dns_port: int,
    http_port: int,
    tls_port: int,
    blocklist: tuple[str, ...] = (),
    eab_keys: dict[str, str] | None = None,
) -> Iterator[Pebble]:
    """Start Pebble and stop it afterwards."""
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    cert_path, key_path, ca_path = (directory / n for n in ("cert.pem", "key.pem", "ca.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(cert_path))
    leaf.private_key_pem.write_to_path(str(key_path))
    ca.cert_pem.write_to_path(str(ca_path))
    acme_port, management_port = free_port(), free_port()
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{acme_port}",
            "managementListenAddress": f"127.0.0.1:{management_port}",
            "certificate": str(cert_path),
            "privateKey": str(key_path),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(eab_keys),
            "externalAccountMACKeys": eab_keys or {},
            "domainBlocklist": list(blocklist),
        }
    }
    config_path = directory / "pebble-config.json"
    config_path.write_text(json.dumps(config))
    env = {
        **os.environ,
        "PEBBLE_VA_NOSLEEP": "1",  # validate at once instead of after a random pause
        "PEBBLE_WFE_NONCEREJECT": "0",  # badNonce handling is unit-tested; keep runs exact
        "PEBBLE_AUTHZREUSE": "0",  # every order proves its names again
    }
    process = subprocess.Popen(
        [binary, "-config", str(config_path), "-dnsserver", f"127.0.0.1:{dns_port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    pebble = Pebble(
        f"https://127.0.0.1:{acme_port}/dir",
        f"https://127.0.0.1:{management_port}",
        ca_path,
        process,
    )
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            pebble.output.append(line.rstrip())
            if READY_LINE in line:
                ready.set()
        ready.set()  # it ended: let the waiter see why

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(START_TIMEOUT) or process.poll() is not None:
            raise RuntimeError("pebble did not start:\n" + "\n".join(pebble.output))
        yield pebble
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(5)
