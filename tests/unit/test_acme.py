"""ACME without a CA: JWS and EAB encodings checked by independent verification, the
TLS-ALPN-01 certificate, Retry-After, backoff and renewal times, the client's nonce and error
handling against an in-memory ACME server (httpx.MockTransport), and the [acme] keys."""

from __future__ import annotations

import datetime
import email.utils
import hashlib
import hmac
import json
import random
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from stalwart_py.acme import challenges, schedule
from stalwart_py.acme.client import AcmeClient, AcmeProblem, parse_retry_after
from stalwart_py.acme.jws import (
    AccountKey,
    b64url,
    b64url_decode,
    external_account_binding,
    key_authorization,
)
from stalwart_py.config import ConfigError, parse_config
from stalwart_py.plugin import discover_protocols
from stalwart_py.server import protocol_settings

# Pebble's example EAB key (its examples/pebble-config-external-account-bindings.json)
EAB_KEY = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"


def _decode(part: str) -> dict:
    return json.loads(b64url_decode(part))


def _verify_es256(jws: dict[str, str], public: ec.EllipticCurvePublicKey) -> None:
    """RFC 7518 3.4: the signature is r || s, 32 bytes each, over 'protected.payload'."""
    raw = b64url_decode(jws["signature"])
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    signed = f"{jws['protected']}.{jws['payload']}".encode()
    public.verify(der, signed, ec.ECDSA(hashes.SHA256()))


def test_jws_with_kid_verifies_and_names_url_and_nonce():
    key = AccountKey.generate()
    jws = key.sign("https://ca.test/new-order", {"identifiers": []}, "n0nce", "https://ca.test/a/1")
    header = _decode(jws["protected"])
    assert header == {
        "alg": "ES256",
        "kid": "https://ca.test/a/1",
        "nonce": "n0nce",
        "url": "https://ca.test/new-order",
    }
    assert _decode(jws["payload"]) == {"identifiers": []}
    _verify_es256(jws, key.key.public_key())
    tampered = dict(jws, payload=b64url(b'{"identifiers":[1]}'))
    with pytest.raises(InvalidSignature):
        _verify_es256(tampered, key.key.public_key())


def test_new_account_jws_embeds_the_jwk_and_post_as_get_is_empty():
    key = AccountKey.generate()
    jws = key.sign("https://ca.test/acct/1", None, "n")
    header = _decode(jws["protected"])
    assert "kid" not in header and header["jwk"]["kty"] == "EC"
    assert header["jwk"]["crv"] == "P-256"
    assert jws["payload"] == ""  # POST-as-GET, RFC 8555 6.3
    _verify_es256(jws, key.key.public_key())


def test_thumbprint_and_key_authorization_follow_rfc7638():
    key = AccountKey.generate()
    jwk = key.jwk
    # RFC 7638 3.2: the required members only, sorted, no whitespace
    canonical = json.dumps(
        {k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True
    )
    expected = b64url(hashlib.sha256(canonical.encode()).digest())
    assert key.thumbprint == expected
    assert key_authorization("tok-EN_1", key) == f"tok-EN_1.{expected}"


def test_account_key_round_trips_through_pem_and_refuses_other_curves():
    key = AccountKey.generate()
    assert AccountKey.from_pem(key.pem()).thumbprint == key.thumbprint
    with pytest.raises(ValueError, match="P-256"):
        AccountKey(ec.generate_private_key(ec.SECP384R1()))


def test_external_account_binding_is_hs256_over_the_account_jwk():
    key = AccountKey.generate()
    binding = external_account_binding(key, "kid-1", EAB_KEY, "https://ca.test/new-acct")
    header = _decode(binding["protected"])
    assert header == {"alg": "HS256", "kid": "kid-1", "url": "https://ca.test/new-acct"}
    assert "nonce" not in header  # RFC 8555 7.3.4: no nonce in the inner JWS
    assert _decode(binding["payload"]) == key.jwk
    mac = hmac.new(
        b64url_decode(EAB_KEY),
        f"{binding['protected']}.{binding['payload']}".encode(),
        hashlib.sha256,
    ).digest()
    assert b64url_decode(binding["signature"]) == mac
    with pytest.raises(ValueError, match="base64url"):
        external_account_binding(key, "kid-1", "not base64!", "https://ca.test/new-acct")


def test_alpn_certificate_carries_the_critical_acme_identifier():
    cert_pem, _key = challenges.alpn_certificate("mail.example.test", "tok.thumb")
    cert = x509.load_pem_x509_certificate(cert_pem)
    ext = cert.extensions.get_extension_for_oid(challenges.ACME_IDENTIFIER)
    assert ext.critical
    digest = hashlib.sha256(b"tok.thumb").digest()
    assert ext.value.value == b"\x04\x20" + digest  # DER OCTET STRING (RFC 8737 3)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mail.example.test"]


@pytest.mark.anyio
async def test_http01_answers_are_in_the_store_and_only_base64url_tokens(tmp_path: Path):
    from stalwart_py.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path)
    await store.open()
    try:
        await challenges.publish_http01(store, "abc-DEF_123", "abc-DEF_123.thumb")
        assert await challenges.http01_answer(store, "abc-DEF_123") == b"abc-DEF_123.thumb"
        assert await challenges.http01_answer(store, "../../etc/passwd") is None
        assert await challenges.http01_answer(store, "missing") is None
        with pytest.raises(ValueError, match="base64url"):
            await challenges.publish_http01(store, "a/b", "x")
        await challenges.withdraw_http01(store, "abc-DEF_123")
        assert await challenges.http01_answer(store, "abc-DEF_123") is None
    finally:
        await store.close()


def test_retry_after_in_seconds_and_as_http_date():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 90, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(90, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 90, usegmt=True), now=now) == 0.0


def test_backoff_doubles_to_a_ceiling_and_honours_a_longer_retry_after():
    rng = random.Random(1)
    delays = [schedule.retry_delay(n, None, rng) for n in range(1, 15)]
    assert 48 <= delays[0] <= 72
    assert 96 <= delays[1] <= 144
    assert all(d <= schedule.MAX_BACKOFF * 1.2 for d in delays)
    assert delays[-1] >= schedule.MAX_BACKOFF * 0.8
    assert schedule.retry_delay(1, 3600.0, rng) == 3600.0  # the CA's rate limit wins
    assert schedule.retry_delay(10, 5.0, rng) >= schedule.MAX_BACKOFF * 0.8  # a shorter one not
    assert schedule.retry_delay(1, 10**9, rng) == schedule.MAX_RETRY_AFTER


def test_renewal_time_is_renew_before_ahead_with_jitter_only_earlier():
    rng = random.Random(2)
    not_after = 2_000_000_000.0
    times = {schedule.renewal_time(not_after, 30 * 86400, rng) for _ in range(200)}
    assert max(times) <= not_after - 30 * 86400
    assert min(times) >= not_after - 31 * 86400  # at most a day of jitter
    assert len(times) > 100  # spread, not one instant
    short = [schedule.renewal_time(not_after, 600, rng) for _ in range(50)]
    assert all(not_after - 660 <= t <= not_after - 600 for t in short)


class FakeCA:
    """An in-memory ACME server: a directory, nonces, and answers chosen by the test."""

    def __init__(self) -> None:
        self.nonces = 0
        self.posts: list[dict] = []
        self.reject_nonces = 0
        self.polls = 0

    def nonce(self) -> str:
        self.nonces += 1
        return f"nonce-{self.nonces}"

    def handler(self, request: httpx.Request) -> httpx.Response:
        headers = {"Replay-Nonce": self.nonce()}
        if request.url.path == "/dir":
            body = {
                "newNonce": "https://ca.test/nonce",
                "newAccount": "https://ca.test/acct",
                "newOrder": "https://ca.test/order",
            }
            return httpx.Response(200, json=body, headers=headers)
        if request.method == "HEAD":
            return httpx.Response(200, headers=headers)
        jws = json.loads(request.content)
        self.posts.append(_decode(jws["protected"]))
        if self.reject_nonces:
            self.reject_nonces -= 1
            problem = {"type": "urn:ietf:params:acme:error:badNonce", "detail": "stale"}
            return httpx.Response(400, json=problem, headers=headers)
        if request.url.path == "/acct":
            return httpx.Response(
                201,
                json={"status": "valid"},
                headers={**headers, "Location": "https://ca.test/a/7"},
            )
        if request.url.path == "/order":
            problem = {
                "type": "urn:ietf:params:acme:error:rejectedIdentifier",
                "detail": "refused",
                "subproblems": [
                    {
                        "type": "urn:ietf:params:acme:error:rejectedIdentifier",
                        "detail": "blocked by policy",
                        "identifier": {"type": "dns", "value": "bad.example"},
                    }
                ],
            }
            return httpx.Response(403, json=problem, headers={**headers, "Retry-After": "42"})
        if request.url.path == "/authz":
            self.polls += 1
            status = "valid" if self.polls >= 3 else "pending"
            return httpx.Response(
                200, json={"status": status}, headers={**headers, "Retry-After": "0"}
            )
        return httpx.Response(404, headers=headers)


@pytest.mark.anyio
async def test_client_retries_bad_nonces_with_the_fresh_one_and_uses_kid_after_register():
    ca = FakeCA()
    ca.reject_nonces = 2
    async with AcmeClient(
        "https://ca.test/dir", AccountKey.generate(), transport=httpx.MockTransport(ca.handler)
    ) as client:
        account = await client.register(["mailto:postmaster@example.test"])
        assert account == "https://ca.test/a/7"
        nonces = [post["nonce"] for post in ca.posts]
        assert len(nonces) == 3 and len(set(nonces)) == 3  # never the same nonce twice
        assert all("jwk" in post for post in ca.posts)
        data = await client.poll("https://ca.test/authz", {"valid"}, timeout=10, what="authz")
        assert data["status"] == "valid" and ca.polls == 3
        assert all(post.get("kid") == account for post in ca.posts[3:])


@pytest.mark.anyio
async def test_client_reports_problem_documents_with_subproblems_and_retry_after():
    ca = FakeCA()
    async with AcmeClient(
        "https://ca.test/dir", AccountKey.generate(), transport=httpx.MockTransport(ca.handler)
    ) as client:
        await client.register([])
        with pytest.raises(AcmeProblem) as caught:
            await client.new_order(["bad.example"])
    problem = caught.value
    assert problem.short_type == "rejectedIdentifier" and problem.status == 403
    assert problem.retry_after == 42.0
    assert "bad.example: rejectedIdentifier blocked by policy" in str(problem)


def _config(text: str):
    return parse_config(
        text, Path("/etc/stalwart-py/test.toml"), protocol_settings(discover_protocols()), env={}
    )


LISTENER = '[server]\nhostname = "mail.example.test"\n'


def test_acme_keys_parse_with_stalwart_names():
    config = _config(
        LISTENER
        + """
[acme."le"]
directory = "https://acme.test/dir"
contact = "postmaster@example.test"
domains = ["mail.example.test", "autoconfig.example.test"]
challenge = "http-01"
renew-before = "20d"
ca-file = "pebble.pem"
eab.kid = "kid-1"
eab.hmac-key = "abc"
"""
    )
    acme = config.acme["le"]
    assert acme.contact == ("mailto:postmaster@example.test",)
    assert acme.domains == ("mail.example.test", "autoconfig.example.test")
    assert acme.renew_before == 20 * 86400
    assert acme.ca_file == Path("/etc/stalwart-py/pebble.pem")
    assert acme.eab is not None and acme.eab.hmac_key == "abc"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('directory = "http://acme.test/dir"\ndomains = ["a.test"]', "https"),
        ('directory = "https://acme.test/dir"\ndomains = []', "at least one"),
        (
            'directory = "https://acme.test/dir"\ndomains = ["a.test"]\nchallenge = "dns-01"',
            "one of",
        ),
        ('directory = "https://acme.test/dir"\ndomains = ["a.test"]\nrenew = "1d"', "renew"),
    ],
)
def test_bad_acme_keys_are_config_errors(body: str, message: str):
    with pytest.raises(ConfigError) as caught:
        _config(LISTENER + '[acme."le"]\n' + body + "\n")
    assert message in str(caught.value)
    assert "acme" in str(caught.value)


def test_certificate_expiry_of_an_issued_chain_is_read(tmp_path: Path):
    # the renewal planner reads notAfter from the stored chain
    from stalwart_py.acme.manager import _not_after

    cert_pem, _ = challenges.alpn_certificate("a.test", "x.y")
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert _not_after(cert_pem) == cert.not_valid_after_utc.timestamp()
    assert _not_after(b"garbage") is None
    assert datetime.datetime.fromtimestamp(_not_after(cert_pem) or 0, datetime.UTC).year >= 2026
