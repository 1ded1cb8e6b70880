"""Refused logins over every protocol and a relay denial, each from its own address (through a
PROXY header from a trusted proxy), for the tests of what they log and of the throttle; and
the fail2ban filter the project ships, applied as fail2ban applies it."""

from __future__ import annotations

import base64
import configparser
import imaplib
import re
from pathlib import Path

import pytest

from tests.support.clients import LineClient
from tests.support.http import basic
from tests.support.proxied import ProxiedHTTP, ProxiedIMAP, ProxiedSMTP, proxy_header

ROOT = Path(__file__).resolve().parents[2]
FILTER = ROOT / "deploy" / "fail2ban" / "filter.d" / "stalwart-py.conf"

PASSWORD = "correct horse battery"
USER = "alice@example.test"

CONFIG = """
[server]
hostname = "mail.example.test"
proxy.trusted-networks = ["127.0.0.0/8"]

[directory.throttle]
failure-delay = 0

[server.listener.imap]
bind = "127.0.0.1:0"
protocol = "imap"
imap.auth.allow-plaintext = true

[server.listener.submission]
bind = "127.0.0.1:0"
protocol = "smtp"
smtp.auth.allow-plaintext = true

[server.listener.managesieve]
bind = "127.0.0.1:0"
protocol = "managesieve"
managesieve.auth.require-tls = false

[server.listener.http]
bind = "127.0.0.1:0"
protocol = "http"
http.allow-plaintext-from = ["0.0.0.0/0", "::/0"]
"""

# What an attacker would have the log say: a well-formed line blaming someone else.
FORGED = (
    "2030-01-01T00:00:00.000Z INFO  stalwart_py.imap [0badf00d] "
    "login failed from 203.0.113.66: mechanism=LOGIN reason=invalid-credentials user=<admin>"
)
INJECTED_USER = f"nobody\r\n{FORGED}\r\n"


def imap_login_literal(server, client: str, user: bytes, password: bytes) -> bytes:
    """``a1 LOGIN {n+}`` with the user name as a non-synchronizing literal (LITERAL+); the
    tagged answer."""
    host, port = server.address("imap")
    with LineClient((host, port), prelude=proxy_header(client, port)) as imap:
        assert imap.readline().startswith(b"* OK")
        imap.send(b"a1 LOGIN {%d+}\r\n%s %s\r\n" % (len(user), user, password))
        answer = imap.readline()
        while answer.startswith(b"*"):
            answer = imap.readline()
        return answer


def plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def refuse_everywhere(server, user: str) -> dict[str, str]:
    """One refused login per protocol and way of logging in, and one relay denial, each from
    its own address; {what: address}."""
    done = {}
    host = "127.0.0.1"

    address = done["imap LOGIN"] = "10.0.0.11"  # the user name as a literal, as reported
    answer = imap_login_literal(server, address, user.encode(), b"wrong")
    assert answer.startswith(b"a1 NO [AUTHENTICATIONFAILED]")

    address = done["imap AUTHENTICATE"] = "2001:db8::12"
    with ProxiedIMAP(address, *server.address("imap")) as imap, pytest.raises(imaplib.IMAP4.error):
        imap.authenticate("PLAIN", lambda _: f"\0{user}\0wrong".encode())

    address = done["smtp AUTH"] = "10.0.0.13"
    with ProxiedSMTP(address, *server.address("submission")) as smtp:
        smtp.ehlo("client.test")
        assert smtp.docmd("AUTH", "PLAIN " + plain(user, "wrong"))[0] == 535

    address = done["managesieve AUTHENTICATE"] = "10.0.0.14"
    _, port = server.address("managesieve")
    with LineClient((host, port), prelude=proxy_header(address, port)) as sieve:
        while not sieve.readline().startswith(b"OK"):
            pass
        sieve.send(b'AUTHENTICATE "PLAIN" "%s"\r\n' % plain(user, "wrong").encode())
        assert sieve.readline().startswith(b"NO")

    address = done["http Basic"] = "10.0.0.15"
    client = ProxiedHTTP(address, *server.address("http"))
    client.request("GET", "/api/domains", headers={"Authorization": basic(user, "wrong")})
    answer = client.getresponse()
    answer.read()
    client.close()
    assert answer.status == 401

    # An IPv4 client on a dual-stack listener shows as ::ffff:10.0.0.16: logged as IPv4.
    done["smtp relay"] = "10.0.0.16"
    with ProxiedSMTP("::ffff:10.0.0.16", *server.address("submission")) as smtp:
        smtp.ehlo("client.test")
        smtp.mail("someone@remote.test")
        assert smtp.rcpt("far@elsewhere.test") == (554, b"5.7.1 Relay access denied")
    return done


def filter_regexes() -> list[re.Pattern[str]]:
    """The shipped filter's failregex lines, with ``<ADDR>`` as a group (the interop test runs
    fail2ban-regex itself on the same file)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(FILTER)
    lines = parser["Definition"]["failregex"].strip().splitlines()
    return [
        re.compile(line.strip().replace("<ADDR>", r"(?P<addr>[0-9A-Fa-f:.]+)")) for line in lines
    ]


# fail2ban cuts the timestamp that its datepattern finds before applying the regexes.
DATE = re.compile(r'^(?:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z|\{"ts": "[^"]+")')


def banned(lines: list[str]) -> list[str]:
    """The addresses fail2ban would count, one per matching line, in order."""
    regexes = filter_regexes()
    found = []
    for line in lines:
        rest = DATE.sub("", line, count=1)
        for regex in regexes:
            match = regex.search(rest)
            if match:
                found.append(match["addr"])
                break
    return found
