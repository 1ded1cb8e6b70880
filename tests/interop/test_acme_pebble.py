"""ACME against Pebble (Let's Encrypt's test CA, Debian package ``pebble``): certificates
obtained by TLS-ALPN-01 and by HTTP-01 on a running ``stalwart-py serve``, served by IMAPS
and submissions (issuer = Pebble's intermediate, read over its management API), a forced
renewal swapped in under an open IMAP session, and a refused order (a name on Pebble's
block list) that leaves the certificate in use and reports the CA's error in the API, the
metrics and the log.

Pebble validates for real: it resolves the names through the tests' DNS server and connects
to our listeners' ports (its httpPort = our HTTP listener, its tlsPort = our IMAPS one).
"""

from __future__ import annotations

import imaplib
import re
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.abc
import anyio.from_thread
import pytest
from cryptography import x509

from stalwart_py.acme.client import AcmeClient, AcmeError, AcmeProblem
from stalwart_py.acme.jws import AccountKey
from tests.conftest import require_tool
from tests.integration.test_workers import worker_of
from tests.support.http import ApiClient
from tests.support.mail_peers import ZoneServer
from tests.support.pebble import Pebble, free_port, run_pebble
from tests.support.servers import ServerProcess, stalwart_cli, write_config

pytestmark = pytest.mark.heavy

PASSWORD = "a-long-enough-secret"
ADMIN = ("admin@mail.example.test", PASSWORD)
EAB_KEY = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"  # Pebble's example
ALPN_NAME, HTTP_NAME, BLOCKED = "mail.example.test", "web.example.test", "blocked.example.test"


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    """Our listeners' ports, chosen first: Pebble's configuration names two of them."""
    return {name: free_port() for name in ("http", "imaps", "submissions")}


@pytest.fixture(scope="module")
def dns_port() -> Iterator[int]:
    """The tests' DNS server, on an event loop in a thread of its own: each test name is
    127.0.0.1, where Pebble then connects to validate."""
    zone = ZoneServer({name: [("A", "127.0.0.1")] for name in (ALPN_NAME, HTTP_NAME, BLOCKED)})

    async def serve(*, task_status: anyio.abc.TaskStatus[int]) -> None:
        task_status.started(await zone.start())
        try:
            await anyio.sleep_forever()
        finally:
            zone.close()

    with anyio.from_thread.start_blocking_portal() as portal:
        future, port = portal.start_task(serve)
        yield port
        future.cancel()


@pytest.fixture(scope="module")
def pebble(
    tmp_path_factory: pytest.TempPathFactory, ports: dict[str, int], dns_port: int
) -> Iterator[Pebble]:
    binary = require_tool("pebble")
    with run_pebble(
        binary,
        tmp_path_factory.mktemp("pebble"),
        dns_port=dns_port,
        http_port=ports["http"],
        tls_port=ports["imaps"],
        blocklist=(BLOCKED,),
    ) as server:
        yield server


def server_config(pebble: Pebble, ports: dict[str, int], alpn_domains: list[str]) -> str:
    domains = ", ".join(f'"{d}"' for d in alpn_domains)
    return f"""
[server]
hostname = "mail.example.test"

[server.listener.http]
bind = "127.0.0.1:{ports["http"]}"
protocol = "http"

[server.listener.imaps]
bind = "127.0.0.1:{ports["imaps"]}"
protocol = "imap"
tls.implicit = true

[server.listener.submissions]
bind = "127.0.0.1:{ports["submissions"]}"
protocol = "smtp"
tls.implicit = true
smtp.auth.require = true

[acme."alpn"]
directory = "{pebble.directory}"
contact = ["postmaster@example.test"]
domains = [{domains}]
challenge = "tls-alpn-01"
renew-before = "30d"
ca-file = "{pebble.ca_file}"

[acme."web"]
directory = "{pebble.directory}"
contact = ["postmaster@example.test"]
domains = ["{HTTP_NAME}"]
challenge = "http-01"
ca-file = "{pebble.ca_file}"
"""


@pytest.fixture
def served(tmp_path: Path, pebble: Pebble, ports: dict[str, int]) -> Iterator[ServerProcess]:
    path = write_config(tmp_path, server_config(pebble, ports, [ALPN_NAME]))
    with ServerProcess(path, env={"STALWART_ADMIN_PASSWORD": PASSWORD}) as server:
        yield server


def peer_certificate(port: int, name: str, pebble: Pebble) -> x509.Certificate:
    """The leaf served for ``name``, verified against Pebble's root over a real handshake."""
    context = ssl.create_default_context(cadata=pebble.root_pem().decode())
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def renew(server: ServerProcess, acme_id: str) -> tuple[int, dict]:
    with ApiClient(server.address("http"), auth=ADMIN) as api:
        answer = api.post(f"/api/certificates/{acme_id}/renew")
        return answer.status, answer.json


def certificates(server: ServerProcess) -> dict[str, dict]:
    with ApiClient(server.address("http"), auth=ADMIN) as api:
        answer = api.get("/api/certificates")
    assert answer.status == 200
    return {entry["id"]: entry for entry in answer.json["certificates"]}


def test_both_challenges_issue_and_imaps_and_submissions_serve_pebbles_certificate(
    served: ServerProcess, pebble: Pebble, ports: dict[str, int]
):
    # at start there is no certificate: both are ordered at once; these wait for them
    for acme_id in ("alpn", "web"):
        status, state = renew(served, acme_id)
        assert status == 200, state
        assert state["last_error"] is None and state["next_renewal"]
    intermediate = x509.load_pem_x509_certificate(pebble.intermediate_pem())
    for port in (ports["imaps"], ports["submissions"]):
        for name in (ALPN_NAME, HTTP_NAME):
            leaf = peer_certificate(port, name, pebble)
            assert leaf.issuer == intermediate.subject
            sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert sans.get_values_for_type(x509.DNSName) == [name]
    listed = certificates(served)
    assert listed["alpn"]["source"] == "acme" and listed["alpn"]["last-error"] is None
    assert listed["web"]["names"] == [HTTP_NAME]
    log = served.log()
    assert "proven by tls-alpn-01" in log and "proven by http-01" in log

    # a forced renewal (the command line) swaps the certificate in under an open session
    old = peer_certificate(ports["imaps"], ALPN_NAME, pebble)
    context = ssl.create_default_context(cadata=pebble.root_pem().decode())
    session = NamedIMAP("127.0.0.1", ports["imaps"], ssl_context=context)
    try:
        assert session.noop()[0] == "OK"
        result = stalwart_cli(served.config_path, "acme", "renew", "alpn")
        assert result.returncode == 0, result.stderr
        assert "alpn" in result.stdout
        new = peer_certificate(ports["imaps"], ALPN_NAME, pebble)
        assert new.serial_number != old.serial_number
        assert new.issuer == intermediate.subject
        # the open session goes on, on the certificate it started with
        assert session.noop()[0] == "OK"
        held = x509.load_der_x509_certificate(session.sock.getpeercert(binary_form=True))
        assert held.serial_number == old.serial_number
    finally:
        session.logout()
    with ApiClient(served.address("http"), auth=ADMIN) as api:
        metrics = api.get("/metrics").body.decode()
    assert 'stalwart_acme_renewals_total{id="alpn",result="success"} 2.0' in metrics
    assert 'stalwart_acme_renewal_failing{id="alpn"} 0.0' in metrics


def test_a_refused_order_keeps_the_certificate_in_use_and_reports_the_error(
    served: ServerProcess, pebble: Pebble, ports: dict[str, int]
):
    status, _ = renew(served, "alpn")
    assert status == 200
    before = peer_certificate(ports["imaps"], ALPN_NAME, pebble)
    # the same id now asks for a name Pebble refuses (its domainBlocklist)
    write_config(served.config_path.parent, server_config(pebble, ports, [ALPN_NAME, BLOCKED]))
    served.signal(signal.SIGHUP)
    served.wait_event("reloaded")
    status, state = renew(served, "alpn")
    assert status == 502
    assert "rejectedIdentifier" in state["last_error"] and BLOCKED in state["last_error"]
    assert state["failures"] == 1
    # still served, and still ready
    assert peer_certificate(ports["imaps"], ALPN_NAME, pebble).serial_number == (
        before.serial_number
    )
    listed = certificates(served)
    assert "rejectedIdentifier" in listed["alpn"]["last-error"]
    with ApiClient(served.address("http"), auth=ADMIN) as api:
        assert api.get("/readyz", auth=False).status == 200
        metrics = api.get("/metrics").body.decode()
    assert 'stalwart_acme_renewal_failing{id="alpn"} 1.0' in metrics
    assert 'stalwart_acme_renewals_total{id="alpn",result="failure"} 1.0' in metrics
    deadline = time.monotonic() + 5
    while "renewal failed" not in served.log() and time.monotonic() < deadline:
        time.sleep(0.05)  # ok: the log file is written by the child; the API answered first
    assert "ACME alpn: renewal failed (keeping the certificate in use)" in served.log()
    assert "rejectedIdentifier" in served.log()


def test_with_two_workers_either_answers_the_challenge_and_both_serve_the_certificate(
    tmp_path: Path, pebble: Pebble, ports: dict[str, int]
):
    """``server.workers = 2``: renewals are scheduled in the worker holding the ``acme``
    lease, a forced one runs in the worker the API request reached; the TLS-ALPN-01 answer is
    given by whichever worker Pebble's connection reaches, and each certificate is served by
    both workers at once."""
    text = server_config(pebble, ports, [ALPN_NAME]).replace(
        "[server]\n", "[server]\nworkers = 2\n"
    )
    path = write_config(tmp_path, text)
    intermediate = x509.load_pem_x509_certificate(pebble.intermediate_pem())
    with ServerProcess(path, env={"STALWART_ADMIN_PASSWORD": PASSWORD}) as server:
        holders = re.findall(r"process (\d+) runs the acme", server.log())
        deadline = time.monotonic() + 60
        while not certificates(server).get("alpn", {}).get("names"):
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)  # ok: the order at start runs in the lease holder; the API polls it
        first = served_by_each_worker(server, ports["imaps"], pebble)
        assert {leaf.issuer for leaf in first} == {intermediate.subject}
        assert len({leaf.serial_number for leaf in first}) == 1
        crossed = False
        for _ in range(8):  # until a challenge set in one worker was answered by the other
            status, state = renew(server, "alpn")
            assert status == 200 and state["last_error"] is None, state
            serials = {
                leaf.serial_number for leaf in served_by_each_worker(server, ports["imaps"], pebble)
            }
            assert len(serials) == 1 and serials != {first[0].serial_number}
            crossed = answered_by_another_worker(server.log())
            if crossed:
                break
        assert crossed, "every validation reached the worker that ordered"
        assert len(holders) <= 1 and len(re.findall(r"runs the acme", server.log())) == 1


def served_by_each_worker(
    server: ServerProcess, port: int, pebble: Pebble
) -> list[x509.Certificate]:
    """The verified leaf each of the two workers serves for ``ALPN_NAME``."""
    context = ssl.create_default_context(cadata=pebble.root_pem().decode())
    by_worker: dict[int, x509.Certificate] = {}
    for _ in range(60):
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=ALPN_NAME) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            local = tls.getsockname()[1]
        assert der is not None
        by_worker.setdefault(worker_of(server, local), x509.load_der_x509_certificate(der))
        if len(by_worker) == 2:
            return list(by_worker.values())
    raise AssertionError("every connection went to one worker")


def answered_by_another_worker(log: str) -> bool:
    """Whether a TLS-ALPN-01 validation was answered by a worker other than the one whose
    order it was (the log's lines in order; each names its worker)."""
    ordering = None
    for line in log.splitlines():
        worker = re.search(r"worker=(\d+)", line)
        if worker is None:
            continue
        if "ACME alpn: ordering a certificate" in line:
            ordering = worker.group(1)
        elif "TLS-ALPN-01 validation handshake done" in line and ordering not in (
            None,
            worker.group(1),
        ):
            return True
    return False


class NamedIMAP(imaplib.IMAP4_SSL):
    """IMAPS to an address, verifying (and sending as SNI) the mail name, as a client that
    resolved that name would."""

    def _create_socket(self, timeout: float | None) -> socket.socket:
        sock = imaplib.IMAP4._create_socket(self, timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=ALPN_NAME)


@pytest.fixture(scope="module")
def pebble_eab(tmp_path_factory: pytest.TempPathFactory, dns_port: int) -> Iterator[Pebble]:
    """A second Pebble that requires external account binding (as ZeroSSL does)."""
    binary = require_tool("pebble")
    with run_pebble(
        binary,
        tmp_path_factory.mktemp("pebble-eab"),
        dns_port=dns_port,
        http_port=free_port(),
        tls_port=free_port(),
        eab_keys={"kid-1": EAB_KEY},
    ) as server:
        yield server


@pytest.mark.anyio
async def test_external_account_binding_is_accepted_and_required(pebble_eab: Pebble):
    key = AccountKey.generate()
    async with AcmeClient(pebble_eab.directory, key, ca_file=pebble_eab.ca_file) as client:
        with pytest.raises(AcmeError, match="external account binding"):
            await client.register(["mailto:postmaster@example.test"])
        url = await client.register(["mailto:postmaster@example.test"], ("kid-1", EAB_KEY))
        assert url.startswith("https://127.0.0.1:")
    wrong = "A" * 64  # base64url, but not the CA's key: Pebble refuses the binding
    async with AcmeClient(
        pebble_eab.directory, AccountKey.generate(), ca_file=pebble_eab.ca_file
    ) as client:
        with pytest.raises(AcmeProblem) as refused:
            await client.register([], ("kid-1", wrong))
    assert refused.value.status is not None and refused.value.status >= 400
