"""Milters for the filter tests: purepythonmilter apps served on ephemeral ports from a
background event loop (a milter library independent of our client), and a configuration of
our server with a filter in front of its MX listener."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from purepythonmilter import PurePythonMilter
from purepythonmilter.server.milterserver import MilterServer

from tests.support.mail_peers import background_loop
from tests.support.smtp import CHECKS_OFF, server_base

PASSWORD = "correct-horse-battery"


@contextmanager
def serve_milter(app: PurePythonMilter) -> Iterator[int]:
    """Serve ``app`` on 127.0.0.1; yields the port."""
    with background_loop() as portal:

        async def start() -> asyncio.Server:
            # MilterServer.start_server binds a fixed port and takes over signals; the
            # connection handler alone on our own listening socket does neither.
            milter = MilterServer(app_factory=app._get_factory())
            return await asyncio.start_server(milter.handle_connection, "127.0.0.1", 0)

        server = portal.call(start)
        try:
            yield server.sockets[0].getsockname()[1]
        finally:

            async def stop() -> None:
                server.close()

            portal.call(stop)


def filter_config(
    cert: tuple[Path, Path], filters: str, names: str, *, imap: bool = True, smtp: str = ""
) -> str:
    """An MX listener (``smtp``) running ``smtp.filters = names`` over the ``filters``
    tables; a submission listener without filters; IMAP to read the result."""
    listener_imap = (
        '\n[server.listener.imap]\nbind = "127.0.0.1:0"\nprotocol = "imap"\n'
        "imap.auth.allow-plaintext = true\n"
        if imap
        else ""
    )
    return f"""
{server_base(cert)}
{CHECKS_OFF}

[server.smtp]
relay-hosts = []
{smtp}

[server.listener.smtp]
bind = "127.0.0.1:0"
protocol = "smtp"
smtp.filters = {names}

[server.listener.lmtp]
bind = "127.0.0.1:0"
protocol = "lmtp"
lmtp.filters = {names}
{listener_imap}
{filters}
"""


def milter_table(name: str, port: int, **keys: str) -> str:
    lines = [f'[filter."{name}"]', 'type = "milter"', 'hostname = "127.0.0.1"', f"port = {port}"]
    lines += [f"{key} = {value}" for key, value in keys.items()]
    return "\n".join(lines) + "\n"
