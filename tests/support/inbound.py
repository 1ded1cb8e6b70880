"""A server that receives mail from strangers, for the issue 15 tests: an MX listener that
trusts PROXY headers from loopback (so a test poses as any outside address), a submission
listener, and an IMAP listener to read where each message landed."""

from __future__ import annotations

import imaplib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dkim

from tests.support.auth_world import SigningKey, ed25519_key, rsa_key
from tests.support.mail_peers import ZoneServer, background_loop, txt_text
from tests.support.servers import InProcessServer
from tests.support.smtp import server_base

PASSWORD = "correct-horse-battery"
USER = "bob@example.test"


def inbound_config(cert: tuple[Path, Path], *, smtp: str = "", extra: str = "") -> str:
    """``smtp`` adds keys to [server.smtp]; ``extra`` adds tables at the end ([auth],
    [spam.dnsbl], [resolver])."""
    return f"""
{server_base(cert)}
[server.smtp]
relay-hosts = []
{smtp}

[server.listener.mx]
bind = "127.0.0.1:0"
protocol = "smtp"
proxy.trusted-networks = ["127.0.0.0/8"]

[server.listener.submission]
bind = "127.0.0.1:0"
protocol = "smtp"
smtp.auth.require = true
smtp.auth.allow-plaintext = true
proxy.trusted-networks = ["127.0.0.0/8"]

[server.listener.lmtp]
bind = "127.0.0.1:0"
protocol = "lmtp"

[server.listener.imap]
bind = "127.0.0.1:0"
protocol = "imap"
imap.auth.allow-plaintext = true
{extra}
"""


def fetch_mailbox(
    server: InProcessServer, mailbox: str, user: str = USER
) -> list[tuple[bytes, bytes]]:
    """Over IMAP, as a user's client reads it: (flags, message) for every message of
    ``mailbox``, oldest first."""
    host, port = server.address("imap")
    with imaplib.IMAP4(host, port, timeout=20) as imap:
        imap.login(user, PASSWORD)
        status, [count] = imap.select(f'"{mailbox}"', readonly=True)
        assert status == "OK", mailbox
        if count == b"0":
            return []
        status, data = imap.fetch("1:*", "(FLAGS BODY.PEEK[])")
        found = []
        for item in data:
            if isinstance(item, tuple):
                flags = re.search(rb"FLAGS \(([^)]*)\)", item[0])
                found.append((flags.group(1) if flags else b"", item[1]))
        return found


def special_use(server: InProcessServer, use: str, user: str = USER) -> list[str]:
    """Over IMAP: the names of the mailboxes LIST shows with the special use ``use``."""
    host, port = server.address("imap")
    with imaplib.IMAP4(host, port, timeout=20) as imap:
        imap.login(user, PASSWORD)
        _, data = imap.list()
        return [
            line.decode().rsplit(" ", 1)[1].strip('"')
            for line in data
            if isinstance(line, bytes) and use.encode() in line
        ]


# -- the senders' world: DNS records and signing keys ---------------------------------------

GOOD_IP = "192.0.2.10"  # a well-configured sender: PTR and A agree, allowed by SPF
LIST_IP = "192.0.2.20"  # a mailing list that forwards (and ARC-seals)
STRANGER_IP = "198.51.100.66"  # no PTR, allowed by nobody


@dataclass
class World:
    """The zone server (on a loop thread of its own) and the senders' keys."""

    zone: ZoneServer
    keys: dict[str, SigningKey]

    def sign(self, message: bytes, domain: str, selector: str) -> bytes:
        return self.keys[f"{selector}.{domain}"].sign(message, domain, selector)

    def arc_seal(self, message: bytes, domain: str, selector: str, results: str) -> bytes:
        """What a forwarding list does: add its Authentication-Results (``results``, as it
        saw the message arrive) and seal the message with ARC."""
        key = self.keys[f"{selector}.{domain}"]
        message = f"Authentication-Results: {domain}; {results}\r\n".encode() + message
        headers = dkim.arc_sign(
            message, selector.encode(), domain.encode(), key.private, domain.encode()
        )
        return b"".join(headers) + message


def txt(zone: ZoneServer, name: str, value: str) -> None:
    zone.add(name, "TXT", txt_text(value))


def publish(zone: ZoneServer) -> dict[str, SigningKey]:
    """Every sender the tests pose as; the keys by ``selector.domain``."""
    keys = {
        "s1.sender.test": rsa_key(),
        "s2.sender.test": ed25519_key(),
        "revoked.sender.test": rsa_key(),
        "unpublished.sender.test": rsa_key(),
        "arc.list.test": rsa_key(),
        "arc.untrusted.test": rsa_key(),
    }
    for name, key in keys.items():
        selector, _, domain = name.partition(".")
        if selector == "revoked":
            txt(zone, f"{selector}._domainkey.{domain}", "v=DKIM1; k=rsa; p=")
        elif selector != "unpublished":
            txt(zone, f"{selector}._domainkey.{domain}", key.record)
    zone.add("10.2.0.192.in-addr.arpa", "PTR", "mx.sender.test.")
    zone.add("mx.sender.test", "A", GOOD_IP)
    zone.add("20.2.0.192.in-addr.arpa", "PTR", "lists.list.test.")
    zone.add("lists.list.test", "A", LIST_IP)
    zone.add("66.100.51.198.in-addr.arpa", "PTR", "forged.sender.test.")  # no A back: fail
    spf = {
        "sender.test": f"v=spf1 ip4:{GOOD_IP} -all",
        "pass.test": f"v=spf1 ip4:{GOOD_IP} -all",
        "softfail.test": "v=spf1 ~all",
        "neutral.test": "v=spf1 ?all",
        "permerror.test": "v=spf1 ip4:192.0.2.10 frobnicate -all",
        "quarantine.test": f"v=spf1 ip4:{GOOD_IP} -all",
        "nopolicy.test": f"v=spf1 ip4:{GOOD_IP} -all",
        "parent.test": f"v=spf1 ip4:{GOOD_IP} -all",
        "list.test": f"v=spf1 ip4:{LIST_IP} -all",
        "untrusted.test": f"v=spf1 ip4:{LIST_IP} -all",
    }
    for domain, record in spf.items():
        txt(zone, domain, record)
    zone.add("none.test", "A", "192.0.2.200")  # exists, publishes no SPF
    zone.servfail.add("temperror.test")
    txt(zone, "_dmarc.sender.test", "v=DMARC1; p=reject")
    txt(zone, "_dmarc.quarantine.test", "v=DMARC1; p=quarantine")
    txt(zone, "_dmarc.nopolicy.test", "v=DMARC1; p=none")
    txt(zone, "_dmarc.parent.test", "v=DMARC1; p=none; sp=reject")
    txt(zone, "sub.parent.test", f"v=spf1 ip4:{GOOD_IP} -all")
    return keys


@contextmanager
def world() -> Iterator[World]:
    with background_loop() as portal:
        zone = ZoneServer()
        keys = publish(zone)
        portal.call(zone.start)
        try:
            yield World(zone, keys)
        finally:
            portal.call(zone.close)


def resolver_table(zone: ZoneServer) -> str:
    return f'[resolver]\nnameservers = ["127.0.0.1:{zone.port}"]\n'


def message(sender: str, subject: str = "Lunch", body: str = "Shall we meet at noon?\r\n") -> bytes:
    """A plain message From ``sender``, CRLF throughout."""
    return (
        f"From: Alice <{sender}>\r\n"
        f"To: Bob <{USER}>\r\n"
        f"Subject: {subject}\r\n"
        "Date: Fri, 04 Dec 2026 15:00:00 +0000\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@{sender.rpartition('@')[2]}>\r\n"
        "\r\n"
        f"{body}"
    ).encode()


def our_results(stored: bytes, authserv_id: str = "mail.example.test") -> list[str]:
    """The unfolded Authentication-Results fields of a stored message claiming our id."""
    head = stored.split(b"\r\n\r\n", 1)[0].decode()
    fields = re.findall(
        r"^Authentication-Results:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head, re.MULTILINE
    )
    unfolded = [" ".join(value.split()) for value in fields]
    return [value for value in unfolded if value.split(";")[0].strip() == authserv_id]
