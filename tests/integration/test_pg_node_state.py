"""What every node must share lives in the database (issue 18), tested with two real server
processes on one PostgreSQL database, each with its own data directory and ports:

- a DKIM key made on node A (``stalwart-py dkim generate`` with A's configuration) signs the
  next message node B's queue sends, and B's ``/api/dns/{domain}`` lists its record; B hears
  of the key by the NOTIFY of the write (``DKIM_CHANNEL``), not at a restart.
- a certificate installed on node A (ACME's ``CertificateStore.install``, here by the test
  process on A's data directory, as the renewing worker does) is served by node B in the next
  TLS handshake after B read it (B says so in its log; no reload, no restart), and the ACME
  challenges A sets (TLS-ALPN-01, HTTP-01) are answered by B, which the CA may reach instead.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import smtplib
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import dkim
import pytest
from cryptography import x509

from stalwart_py import cli
from stalwart_py.certificates import CertificateStore
from tests.integration.test_certificates_store import ACME_IDENTIFIER, challenge_certificate
from tests.support.mail_peers import dkim_key_lookup, txt_text
from tests.support.nodes import certificates_of, node_config, node_pair, queue_tables
from tests.support.queue_world import outside_world
from tests.support.servers import WAIT, ServerProcess
from tests.support.smtp import CHECKS_OFF

pytest.importorskip("psycopg")
pytestmark = [pytest.mark.own_blob_backend, pytest.mark.own_store_backend("nodes of their own")]

MX_ADDRESS = "127.0.0.14"
ADMIN, ADMIN_PASSWORD = "admin@example.test", "admin password of the test"


@contextlib.contextmanager
def two_nodes(postgres, tmp_path: Path, zone, peer) -> Iterator[tuple[Path, ServerProcess]]:
    """Node a's configuration (its queue held: only b sends) and node b, running."""

    def node(name: str) -> str:
        return node_config(
            ("smtp", "http", "imaps"),
            hostname=f"{name}.example.test",
            server='shutdown-timeout = "1s"\n',
            tables=queue_tables(peer.port, zone.port, hold=name == "a") + CHECKS_OFF,
        )

    accounts = [(ADMIN, ADMIN_PASSWORD, True)]
    with node_pair(postgres.database(), tmp_path, node, accounts=accounts) as (a, b):
        yield a.config_path, b, a


def send(node: ServerProcess, subject: str) -> None:
    with smtplib.SMTP(*node.address("smtp"), timeout=WAIT) as client:
        client.sendmail(
            "alice@example.test",
            ["bob@remote.test"],
            f"From: alice@example.test\r\nTo: bob@remote.test\r\nSubject: {subject}\r\n\r\n"
            "Hello.\r\n",
        )


def api_get(node: ServerProcess, path: str) -> dict:
    host, port = node.address("http")
    api = http.client.HTTPConnection(host, port, timeout=WAIT)
    token = base64.b64encode(f"{ADMIN}:{ADMIN_PASSWORD}".encode()).decode()
    try:
        api.request("GET", path, headers={"Authorization": f"Basic {token}"})
        response = api.getresponse()
        body = response.read()
        assert response.status == 200, body
        return json.loads(body)
    finally:
        api.close()


def test_a_dkim_key_made_on_a_signs_on_b(postgres, tmp_path, capsys):
    with (
        outside_world(MX_ADDRESS) as (_portal, zone, peer),
        two_nodes(postgres, tmp_path, zone, peer) as (config_a, b, _a),
    ):
        send(b, "before the key")
        [first] = peer.wait_for(1)
        assert not first.data.startswith(b"DKIM-Signature")  # b read the keys: none yet
        command = ["dkim", "generate", "example.test", "--selector", "shared"]
        assert cli.main([*command, "--algorithm", "ed25519", "--config", str(config_a)]) == 0
        record = capsys.readouterr().out.split("value ")[-1].rstrip(")\n")
        assert record.startswith("v=DKIM1; k=ed25519; p=")
        zone.add("shared._domainkey.example.test", "TXT", txt_text(record))
        send(b, "after the key")
        _, second = peer.wait_for(2)
        assert second.data.startswith(b"DKIM-Signature: v=1; a=ed25519-sha256;")
        assert b" s=shared;" in second.data
        assert dkim.verify(second.data, dnsfunc=dkim_key_lookup(zone.port))
        listed = api_get(b, "/api/dns/example.test")
        assert any(r["value"] == record for r in listed["records"]), listed
        assert "PRIVATE" not in json.dumps(listed)


NAME = "mail.cluster.test"
TOKEN = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"


def wait_for_log(node: ServerProcess, text: str) -> None:
    deadline = time.monotonic() + WAIT
    while text not in node.log():
        assert time.monotonic() < deadline, node.log()
        time.sleep(0.01)  # ok: the node says in its log when it has read the store


def handshake(node: ServerProcess, context: ssl.SSLContext) -> x509.Certificate:
    with (
        socket.create_connection(node.address("imaps"), timeout=WAIT) as raw,
        context.wrap_socket(raw, server_hostname=NAME) as tls,
    ):
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


async def on_node_a(config_a: Path, work) -> None:
    """``work(certificates, store)`` with A's store and data directory (A's node id)."""
    async with certificates_of(config_a) as certificates:
        await work(certificates, certificates.store)


def test_a_certificate_installed_on_a_is_served_by_b(postgres, tmp_path, ca):
    from stalwart_py.acme import challenges

    with (
        outside_world(MX_ADDRESS) as (_portal, zone, peer),
        two_nodes(postgres, tmp_path, zone, peer) as (config_a, b, a),
    ):
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(b, trusting)  # b's self-signed one
        issued = ca.issue_cert(NAME)
        chain = b"".join(blob.bytes() for blob in issued.cert_chain_pems)

        async def install(certificates, _store) -> None:
            await certificates.install("acme-main", chain, issued.private_key_pem.bytes())

        anyio.run(on_node_a, config_a, install)
        wait_for_log(b, "certificate acme-main in force")
        leaf = handshake(b, trusting)  # verified against the CA, for NAME
        assert leaf.serial_number == x509.load_pem_x509_certificate(chain).serial_number
        wait_for_log(a, "certificate acme-main in force")  # a's server process too
        assert "reloaded" not in b.log()
        assert not (tmp_path / "a" / "var" / "certificates").exists()

        # the challenges of an order a runs, answered by b
        cert_pem, key_pem, digest = challenge_certificate(NAME, "token.thumbprint")

        async def challenge(certificates, store) -> None:
            await certificates.set_alpn_challenge(NAME, cert_pem, key_pem)
            await challenges.publish_http01(store, TOKEN, f"{TOKEN}.thumbprint")

        anyio.run(on_node_a, config_a, challenge)
        wait_for_log(b, f"answering the challenge for {NAME} (set by another process)")
        validating = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        validating.check_hostname, validating.verify_mode = False, ssl.CERT_NONE
        validating.set_alpn_protocols(["acme-tls/1"])
        answer = handshake(b, validating)
        assert answer.extensions.get_extension_for_oid(ACME_IDENTIFIER).value.value == digest
        host, port = b.address("http")
        client = http.client.HTTPConnection(host, port, timeout=WAIT)
        try:
            client.request("GET", f"/.well-known/acme-challenge/{TOKEN}")
            response = client.getresponse()
            assert (response.status, response.read()) == (200, f"{TOKEN}.thumbprint".encode())
        finally:
            client.close()


@pytest.mark.anyio
async def test_an_order_another_node_runs_holds_this_ones_back(postgres, tmp_path):
    """Two nodes asked to renew one id at once (each node's API): the second waits for the
    id's advisory lock rather than ordering a second certificate."""
    from stalwart_py.acme.manager import AcmeManager
    from stalwart_py.config.acme import AcmeSettings
    from stalwart_py.metrics import Metrics
    from stalwart_py.store.postgresql import PostgresStore
    from tests.unit.test_acme_manager import closed_port

    url = postgres.database()
    store = PostgresStore(url, tmp_path / "b")
    await store.open()
    other_node = store.cluster_lease("acme-order:le")  # as node a's order holds it
    assert other_node is not None and await anyio.to_thread.run_sync(other_node.try_acquire)
    try:
        certificates = CertificateStore(tmp_path / "b")
        certificates.store = store
        settings = AcmeSettings(
            directory=f"https://127.0.0.1:{closed_port()}/dir", domains=("mail.example.test",)
        )
        acme = AcmeManager({"le": settings}, tmp_path / "b", certificates, Metrics(), store=store)
        async with anyio.create_task_group() as tg:
            tg.start_soon(acme.renew_now, "le")
            with anyio.move_on_after(2.5):  # a moment in which it would have ordered
                await acme.slots["le"].finished.wait()
            assert acme.slots["le"].state.renewing and acme.slots["le"].state.attempts == 0
            await anyio.to_thread.run_sync(other_node.release)
            with anyio.fail_after(WAIT):
                state = await acme.renew_now("le")  # the one under way, waited for
            assert state.attempts == 1 and state.failures == 1  # ordered now (no CA here)
    finally:
        await anyio.to_thread.run_sync(other_node.release)
        await store.close()
