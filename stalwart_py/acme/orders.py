"""One issuance, start to end (RFC 8555 7.4 and 7.5): order, prove each name, finalize, fetch.

1. ``newOrder`` with the configured names; the order lists one authorization per name.
2. For each authorization still ``pending``: pick the configured challenge type, publish its
   answer (HTTP-01 file, or the TLS-ALPN-01 certificate in the certificate store), tell the
   server it is ready (POST ``{}``), poll the authorization until ``valid`` (or ``invalid``,
   whose challenge carries the problem document), and withdraw the answer whatever happened.
3. The order becomes ``ready``; a new key (ECDSA P-256) is made for the certificate, never
   reused from the last one, and a CSR with every name as a SAN is sent to ``finalize``.
4. The order becomes ``valid`` with a certificate URL; the PEM chain is downloaded.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stalwart_py.acme.client import AcmeClient, AcmeError, AcmeProblem
from stalwart_py.acme.jws import key_authorization

log = logging.getLogger("stalwart_py.acme")

AUTHORIZATION_TIMEOUT = 120.0  # the CA checks the challenge within this, or the order fails
ISSUANCE_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class Challenge:
    """What a responder publishes: for ``domain``, answer ``token`` with ``key_authorization``."""

    kind: str  # "http-01" or "tls-alpn-01"
    domain: str
    token: str
    key_authorization: str


@dataclass(frozen=True, slots=True)
class Responder:
    """Publishes and withdraws challenge answers (see ``challenges.py``)."""

    present: Callable[[Challenge], Awaitable[None]]
    cleanup: Callable[[Challenge], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Issued:
    chain_pem: bytes  # leaf first
    key_pem: bytes


def make_csr(domains: list[str]) -> tuple[bytes, bytes]:
    """A fresh private key (PEM) and the DER CSR naming ``domains`` (the first as CN)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, csr.public_bytes(serialization.Encoding.DER)


async def issue(client: AcmeClient, domains: list[str], kind: str, responder: Responder) -> Issued:
    """Run one order for ``domains`` proving control by ``kind``; AcmeError on failure."""
    order = await client.new_order(domains)
    log.info("ACME order %s for %s: %s", order.url, ", ".join(domains), order.status)
    if order.status == "invalid":
        raise _order_problem(order.data)
    for url in order.data.get("authorizations", []):
        await _authorize(client, url, kind, responder)
    if order.status != "ready":
        order.data = await client.poll(
            order.url, {"ready", "valid"}, timeout=AUTHORIZATION_TIMEOUT, what="order ready"
        )
        if order.status == "invalid":
            raise _order_problem(order.data)
    key_pem, csr = make_csr(domains)
    order = await client.finalize(order, csr, timeout=ISSUANCE_TIMEOUT)
    chain = await client.certificate(order)
    return Issued(chain, key_pem)


async def _authorize(client: AcmeClient, url: str, kind: str, responder: Responder) -> None:
    authz = (await client.get(url)).json()
    domain = str(authz.get("identifier", {}).get("value", ""))
    if authz.get("status") == "valid":
        return  # proven recently for this account; the CA may reuse it (7.1.4)
    if authz.get("status") != "pending":
        raise _authz_problem(domain, authz)
    found = [c for c in authz.get("challenges", []) if c.get("type") == kind]
    if not found:
        offered = ", ".join(str(c.get("type")) for c in authz.get("challenges", []))
        raise AcmeError(f"the ACME server offers no {kind} challenge for {domain} ({offered})")
    data = found[0]
    challenge = Challenge(
        kind, domain, str(data["token"]), key_authorization(str(data["token"]), client.key)
    )
    await responder.present(challenge)
    try:
        await client.answer_challenge(str(data["url"]))
        authz = await client.poll(
            url, {"valid"}, timeout=AUTHORIZATION_TIMEOUT, what=f"authorization of {domain}"
        )
    finally:
        await responder.cleanup(challenge)
    if authz.get("status") != "valid":
        raise _authz_problem(domain, authz)
    log.info("ACME: %s proven by %s", domain, kind)


def _authz_problem(domain: str, authz: dict) -> AcmeProblem:
    for challenge in authz.get("challenges", []):
        if isinstance(challenge.get("error"), dict):
            problem = AcmeProblem.from_document(challenge["error"])
            problem.detail = f"{domain}: {problem.detail}"
            problem.args = (problem.describe(),)
            return problem
    return AcmeProblem(
        "about:blank", f"the authorization of {domain} is {authz.get('status', '?')}"
    )


def _order_problem(order: dict) -> AcmeProblem:
    if isinstance(order.get("error"), dict):
        return AcmeProblem.from_document(order["error"])
    return AcmeProblem("about:blank", "the order is invalid")
