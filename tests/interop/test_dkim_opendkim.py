"""Our DKIM verdicts beside OpenDKIM's on the same messages and keys (a reference comparison).

OpenDKIM (Debian's ``opendkim``) runs in its test mode (``-t``), with the keys given as
``TestDNSData`` and RFC 8301's ``MinimumKeyBits 1024``; it prints the Authentication-Results
field it would add. We verify through the one resolver against the same keys on the loopback
zone server. The verdicts agree, except where noted:

* ``rsa-sha1``: OpenDKIM 2.11 still accepts it (``pass``); RFC 8301 3.1 says verifiers must
  not, and we answer ``policy``;
* a key that is not published is not compared: in test mode OpenDKIM reports a name missing
  from its data set as a failed DNS query (it tempfails the message), not as NXDOMAIN.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from stalwart_py.inbound.dkim import verify_dkim
from tests.conftest import require_tool
from tests.support.auth_world import (
    DATA,
    auth_world,
    ed25519_key,
    message,
    rsa_512_key,
    rsa_key,
)

pytestmark = [pytest.mark.interop, pytest.mark.anyio]

# (case, our results, OpenDKIM's results)
EXPECTED = [
    ("rsa-sha256", ["pass"], ["pass"]),
    ("ed25519-sha256", ["pass"], ["pass"]),
    ("rfc 8463 example", ["pass", "pass"], ["pass", "pass"]),
    ("bad body hash", ["fail"], ["fail"]),
    ("bad signature", ["fail"], ["fail"]),
    ("revoked key", ["fail"], ["fail"]),
    ("512-bit key", ["policy"], ["policy"]),
    ("key of the wrong type", ["permerror"], ["permerror"]),
    ("two signatures", ["pass", "pass"], ["pass", "pass"]),
    ("a list broke one of two", ["pass", "fail"], ["pass", "fail"]),
    ("rsa-sha1", ["policy"], ["pass"]),  # RFC 8301; OpenDKIM 2.11 predates it
]


def opendkim(directory: Path, data: bytes) -> list[str]:
    """The dkim= results of OpenDKIM's Authentication-Results for ``data``, in order."""
    path = directory / "message.eml"
    path.write_bytes(data)
    done = subprocess.run(
        [require_tool("opendkim"), "-x", str(directory / "opendkim.conf"), "-t", str(path), "-vv"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    # With -vv, test mode prints the header field it would insert: ### INSHEADER: ... hvalue='...'
    inserted = re.search(
        r"INSHEADER: .*?hname='Authentication-Results' hvalue='([^']*)'",
        done.stdout + done.stderr,
        re.S,
    )
    assert inserted is not None, done.stdout + done.stderr
    return re.findall(r"\bdkim=(\w+)", inserted.group(1))


async def test_verdicts_agree_with_opendkim(tmp_path):
    require_tool("opendkim")
    rsa, ed, short = rsa_key(2048), ed25519_key(), rsa_512_key()
    async with auth_world() as world:
        keys: dict[str, str] = {}

        def publish(name: str, record: str) -> None:
            keys[name] = record
            world.publish(name, "TXT", record)

        publish("rsa1._domainkey.example.test", rsa.record)
        publish("ed1._domainkey.example.test", ed.record)
        publish("short._domainkey.example.test", short.record)
        publish("revoked._domainkey.example.test", "v=DKIM1; k=rsa; p=")
        publish("mixed._domainkey.example.test", ed.record)
        publish("list._domainkey.lists.example.org", rsa.record)
        for line in (DATA / "rfc8463" / "keys.txt").read_text().splitlines():
            publish(*line.split(" ", 1))
        (tmp_path / "keys").write_text("".join(f"{n} {r}\n" for n, r in keys.items()))
        (tmp_path / "opendkim.conf").write_text(
            "Mode v\n"
            f"TestDNSData file:{tmp_path / 'keys'}\n"
            "Syslog no\n"
            "AlwaysAddARHeader yes\n"
            "AuthservID mx.test\n"
            "MinimumKeyBits 1024\n"
        )
        plain = message()
        by_rsa = rsa.sign(plain, "example.test", "rsa1")
        listed = rsa.sign(
            by_rsa.replace(b"Subject: Lunch", b"Subject: [x] Lunch"), "lists.example.org", "list"
        )
        messages = {
            "rsa-sha256": by_rsa,
            "ed25519-sha256": ed.sign(plain, "example.test", "ed1"),
            "rfc 8463 example": (DATA / "rfc8463" / "signed.eml")
            .read_bytes()
            .replace(b"\n", b"\r\n"),
            "bad body hash": by_rsa.replace(b"noon", b"nine"),
            "bad signature": by_rsa.replace(b"Subject: Lunch", b"Subject: Dinner"),
            "revoked key": rsa.sign(plain, "example.test", "revoked"),
            "512-bit key": short.sign(plain, "example.test", "short"),
            "key of the wrong type": rsa.sign(plain, "example.test", "mixed"),
            "two signatures": ed.sign(by_rsa, "example.test", "ed1"),
            "a list broke one of two": listed,
            "rsa-sha1": rsa.sign(plain, "example.test", "rsa1", algorithm=b"rsa-sha1"),
        }
        seen = []
        for case, _ours, _theirs in EXPECTED:
            data = messages[case]
            ours = [r.result for r in await verify_dkim(world.resolver, data)]
            seen.append((case, ours, opendkim(tmp_path, data)))
    assert seen == EXPECTED
