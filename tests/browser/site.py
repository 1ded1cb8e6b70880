"""The server the browser tests sign in to, and the steps they share (signing in, out)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pyotp

from tests.support.browser import Browser
from tests.support.mail_peers import Peer, ZoneServer, background_loop

ADMIN = ("admin@example.test", "the administrator's password")
ALICE = ("alice@example.test", "alice's own password")
BOB = ("bob@example.test", "bob's own password")

HELD = """[queue]
hold = true  # nothing the pages make leave is sent anywhere
"""

CONFIG = """
[server]
hostname = "mail.example.test"

[directory.throttle]
failure-delay = "0s"

{queue}

# Plain HTTP on loopback, as `make run` serves the pages to a local browser (cookies then
# without Secure, which Chromium would drop over http://127.0.0.1).
[server.listener.http]
bind = "127.0.0.1:0"
protocol = "http"

[server.listener.imap]
bind = "127.0.0.1:0"
protocol = "imap"
imap.auth.allow-plaintext = true

[server.listener.smtp]
bind = "127.0.0.1:0"
protocol = "smtp"
"""


def start_site(start_server, extra: str = "", queue: str = HELD):
    """A server with the pages, IMAP and SMTP, an administrator and two accounts; its
    ``[queue]`` table is ``queue`` (held by default; ``outside_queue`` sends to the peer)."""
    server = start_server(CONFIG.format(queue=queue) + extra)
    server.add_account(*ADMIN, is_admin=True)
    server.add_account(*ALICE)
    server.add_account(*BOB)
    return server


@contextmanager
def outside_world() -> Iterator[tuple[ZoneServer, Peer]]:
    """remote.test on loopback: its DNS (an MX) and its receiving SMTP server (aiosmtpd,
    which records what it receives), in a thread of their own."""
    with background_loop() as portal:
        zone = ZoneServer({"remote.test": [("MX", "10 mx.remote.test.")]})
        zone.add("mx.remote.test", "A", "127.0.0.1")
        portal.call(zone.start)
        peer = Peer()
        portal.call(peer.start, "127.0.0.1")
        try:
            yield zone, peer
        finally:
            portal.call(peer.stop)
            portal.call(zone.close)


def outside_queue(zone: ZoneServer, peer: Peer) -> str:
    """A ``[queue]`` that delivers to ``outside_world`` at once."""
    return f"""[queue]
port = {peer.port}
retry = ["1h"]

[queue.dns]
nameservers = ["127.0.0.1:{zone.port}"]
"""


def base_url(server) -> str:
    host, port = server.address("http")
    return f"http://{host}:{port}"


def sign_in(
    browser: Browser,
    who: tuple[str, str],
    *,
    totp: pyotp.TOTP | None = None,
    at: float | None = None,
    page: str = "/account/",
    shots: bool = True,
) -> None:
    """Open ``page`` signed out (the sign-in form comes instead), sign in as ``who`` and,
    with ``totp``, type its code (of the time ``at``, default now); ends on ``page``."""
    browser.open(page)
    browser.wait_path("/account/sign-in")
    browser.submit(
        {"address": who[0], "password": who[1]},
        form="form[action='/account/sign-in']",
        shot="sign-in form filled" if shots else None,
    )
    if totp is not None:
        browser.wait_path("/account/sign-in/code")
        code = totp.now() if at is None else totp.at(at)
        browser.submit({"code": code}, shot="code typed" if shots else None)
    browser.wait_path(page)


def sign_out(browser: Browser) -> None:
    browser.click("form.sign-out button[type=submit]")
    browser.wait_path("/account/sign-in")
