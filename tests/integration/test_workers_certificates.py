"""Certificates with ``server.workers = 2``: a certificate installed by one process is served
by every worker at the next handshake (not at the next reload), and a TLS-ALPN-01 challenge
set in one process is answered by whichever worker the CA's connection reaches.

The installing process here is the test itself, on the same data directory and the store the
workers' configuration names (SQLite, or PostgreSQL with ``--store-backend postgresql``): it
installs through ``CertificateStore`` into the store, whose write announces it
(``CERTIFICATES_CHANNEL`` in the batch's change set), exactly as the worker holding the ``acme``
lease does after an order. Each worker hears of it by the datagram sent with the commit and
then reads the rows (a read of the store, so a handshake in the few milliseconds before may
still get the old certificate): the tests wait for each worker's log line saying it is in force,
then shake hands. (Across nodes: tests/integration/test_pg_node_state.py.)"""

from __future__ import annotations

import socket
import ssl
import time

import anyio
import pytest
from cryptography import x509

from tests.integration.test_certificates_store import ACME_IDENTIFIER, challenge_certificate
from tests.integration.test_workers import worker_of
from tests.support.nodes import certificates_of, node_config
from tests.support.servers import WAIT, ServerProcess, write_config

NAME = "mail.example.test"

CONFIG = node_config(("imaps",), workers=2, server='shutdown-timeout = "1s"\n')


def wait_for_log(server: ServerProcess, text: str, count: int = 2) -> None:
    """Until ``text`` is in the log ``count`` times (once per worker)."""
    deadline = time.monotonic() + WAIT
    while server.log().count(text) < count:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.01)  # ok: the workers say in their log when they have read the store


def handshake(address, alpn: list[str] | None) -> tuple[x509.Certificate, int]:
    """The leaf served to SNI ``NAME``, and the local port (which worker: from the log)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # what is served is the question, not whether trusted
    if alpn:
        context.set_alpn_protocols(alpn)
    with (
        socket.create_connection(address, timeout=WAIT) as raw,
        context.wrap_socket(raw, server_hostname=NAME) as tls,
    ):
        leaf = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
        return leaf, tls.getsockname()[1]


def served_by_each(server: ServerProcess, alpn: list[str] | None = None) -> list[x509.Certificate]:
    """What each of the two workers serves (connections until both have answered)."""
    by_worker: dict[int, x509.Certificate] = {}
    for _ in range(60):
        leaf, port = handshake(server.address("imaps"), alpn)
        by_worker.setdefault(worker_of(server, port), leaf)
        if len(by_worker) == 2:
            return list(by_worker.values())
    raise AssertionError("every connection went to one worker")


@pytest.fixture
def workers(tmp_path):
    with ServerProcess(write_config(tmp_path, CONFIG)) as server:
        yield server, server.config_path


def test_a_certificate_installed_by_one_process_is_served_by_both_workers(workers, ca):
    server, config = workers
    assert all(leaf.issuer == leaf.subject for leaf in served_by_each(server))  # self-signed
    issued = ca.issue_cert(NAME)
    chain = b"".join(blob.bytes() for blob in issued.cert_chain_pems)
    leaf_pem = issued.cert_chain_pems[0].bytes()

    async def install() -> None:
        async with certificates_of(config) as certificates:
            await certificates.install("acme-one", chain, issued.private_key_pem.bytes())

    anyio.run(install)
    wait_for_log(server, "certificate acme-one in force")
    wanted = x509.load_pem_x509_certificate(leaf_pem)
    assert [leaf.serial_number for leaf in served_by_each(server)] == [wanted.serial_number] * 2
    assert server.log().count("certificate acme-one in force") == 2  # each worker, no reload
    assert "reloaded" not in server.log()


def test_a_tls_alpn_01_challenge_set_in_one_process_is_answered_by_both(workers, tmp_path):
    server, config = workers
    cert_pem, key_pem, digest = challenge_certificate(NAME, "token.thumbprint")

    async def challenge() -> None:
        async with certificates_of(config) as certificates:
            await certificates.set_alpn_challenge(NAME, cert_pem, key_pem)
            await anyio.to_thread.run_sync(check_answered)
            await certificates.clear_alpn_challenge(NAME)
            await anyio.to_thread.run_sync(check_withdrawn)

    def check_answered() -> None:
        wait_for_log(server, f"answering the challenge for {NAME} (set by another process)")
        for leaf in served_by_each(server, ["acme-tls/1"]):
            assert leaf.extensions.get_extension_for_oid(ACME_IDENTIFIER).value.value == digest
        for leaf in served_by_each(server, ["imap"]):  # a mail client meanwhile: the real one
            assert leaf.issuer == leaf.subject and ACME_IDENTIFIER not in _oids(leaf)

    def check_withdrawn() -> None:
        wait_for_log(server, f"challenge for {NAME} withdrawn (by another process)")
        for leaf in served_by_each(server, ["acme-tls/1"]):
            assert ACME_IDENTIFIER not in _oids(leaf)

    anyio.run(challenge)
    assert not (tmp_path / "var" / "acme").exists()  # in the store, not in files


def _oids(leaf: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return [extension.oid for extension in leaf.extensions]


def test_a_worker_started_while_a_challenge_is_pending_answers_it(tmp_path):
    """Worker 1 starts after worker 0 may have set its challenge (and announced it before
    worker 1 listened): the store's challenges are read at start."""
    config = write_config(tmp_path, CONFIG)  # first: it names the store (either backend)
    cert_pem, key_pem, digest = challenge_certificate(NAME, "token.thumbprint")

    async def challenge() -> None:
        async with certificates_of(config) as certificates:
            await certificates.set_alpn_challenge(NAME, cert_pem, key_pem)  # nobody to tell

    anyio.run(challenge)
    with ServerProcess(config) as server:
        for leaf in served_by_each(server, ["acme-tls/1"]):
            assert leaf.extensions.get_extension_for_oid(ACME_IDENTIFIER).value.value == digest
