"""Mangled signatures, seals and keys never crash the checks: each gets a verdict.

Deterministic mutations (seeded) of signed and sealed messages, and of published key records:
bytes replaced, deleted and duplicated in the header block, tags cut short, folding broken.
"""

from __future__ import annotations

import random

import dkim
import pytest

from stalwart_py.inbound.arc import verify_arc
from stalwart_py.inbound.dkim import verify_dkim
from stalwart_py.inbound.dmarc import from_domains
from tests.support.auth_world import auth_world, ed25519_key, message, rsa_key

pytestmark = pytest.mark.anyio

DKIM_RESULTS = {"pass", "fail", "neutral", "policy", "temperror", "permerror"}
NOISE = b"=;:, \t\r\n\x00\xff@.abvhdis0123456789+/"


def mutate(data: bytes, rng: random.Random) -> bytes:
    end = data.find(b"\r\n\r\n")
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(max(1, end))
        kind = rng.randrange(4)
        if kind == 0:
            data = data[:at] + bytes([rng.choice(NOISE)]) + data[at + 1 :]
        elif kind == 1:
            data = data[:at] + data[at + rng.randint(1, 20) :]
        elif kind == 2:
            data = data[:at] + data[at : at + rng.randint(1, 40)] + data[at:]
        else:
            data = data[:at] + b"\r\n" + data[at:]
    return data


async def test_mangled_messages_and_keys_get_verdicts():
    rsa, ed = rsa_key(1024), ed25519_key()
    rng = random.Random(8463)
    async with auth_world() as world:
        world.publish_key(rsa, "example.test", "rsa1")
        world.publish_key(ed, "example.test", "ed1")
        signed = ed.sign(rsa.sign(message(), "example.test", "rsa1"), "example.test", "ed1")
        data = b"Authentication-Results: lists.example.org; dkim=pass\r\n" + signed
        sealed = (
            b"".join(
                dkim.arc_sign(data, b"rsa1", b"example.test", rsa.private, b"lists.example.org")
            )
            + data
        )
        for n, record in enumerate(
            [
                "v=DKIM1; p=%%%",
                "v=DKIM1; k=ed25519; p=AAAA",
                "k=rsa; p=" + rsa.record.split("p=")[1][:40],
                "v=DKIM2; p=abc",
                "p",
                ";;;;",
                "v=DKIM1; h=sha1; p=" + rsa.record.split("p=")[1],
                "v=DKIM1; t=s; p=" + rsa.record.split("p=")[1],
            ]
        ):
            world.publish(f"odd{n}._domainkey.example.test", "TXT", record)
            results = await verify_dkim(
                world.resolver, signed.replace(b"s=rsa1;", f"s=odd{n};".encode())
            )
            assert {r.result for r in results} <= DKIM_RESULTS
            assert results[1].result != "pass", record
        for _ in range(150):
            results = await verify_dkim(world.resolver, mutate(signed, rng))
            assert {r.result for r in results} <= DKIM_RESULTS
            arc = await verify_arc(world.resolver, mutate(sealed, rng))
            assert arc.result in {"pass", "fail", "none"}
            from_domains(mutate(signed, rng))
