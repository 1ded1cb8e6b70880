"""Starting servers from TOML snippets: what the ``stalwart_servers`` fixture hands a test."""

from __future__ import annotations

import re
import ssl
from contextlib import AbstractContextManager
from pathlib import Path

from stalwart_py.plugin import Protocol
from stalwart_py.testing.server import RunningServer, write_config


def with_certificate(text: str, certificate: Path, key: Path) -> str:
    """``text`` with ``certificate`` and ``key`` as the server-wide TLS default, unless it
    names a certificate of its own. TOML allows a table to be defined once, so the keys go
    into ``[server.tls]`` or ``[server]`` when the text has them, else into a new table."""
    if re.search(r"^\s*(tls\.)?certificate\s*=", text, re.MULTILINE):
        return text
    keys = f'certificate = "{certificate}"\nprivate-key = "{key}"\n'
    for header, prefix in ((r"\[server\.tls\]", ""), (r"\[server\]", "tls.")):
        match = re.search(rf"^\s*{header}[ \t]*(#.*)?$", text, re.MULTILINE)
        if match:
            lines = "".join(prefix + line + "\n" for line in keys.splitlines())
            return text[: match.end()] + "\n" + lines + text[match.end() :]
    return text.rstrip("\n") + "\n\n[server.tls]\n" + keys


class ServerFactory(AbstractContextManager["ServerFactory"]):
    """Starts servers (by default in the test's directory) and stops them all, last started
    first, when it exits."""

    def __init__(
        self,
        directory: Path,
        protocols: dict[str, type[Protocol]],
        *,
        certificate: tuple[Path, Path] | None = None,
        client_tls: ssl.SSLContext | None = None,
    ) -> None:
        self.directory = directory
        self.protocols = protocols
        self.certificate = certificate
        self.client_tls = client_tls
        self.started: list[RunningServer] = []

    def start(
        self,
        text: str,
        protocols: dict[str, type[Protocol]] | None = None,
        *,
        tls: bool = False,
        directory: Path | None = None,
    ) -> RunningServer:
        """Start a server on the TOML ``text`` (a ``[storage]`` table in a directory of the
        test's own is added unless the text has one; bind to port 0 for ephemeral ports) and
        return it once every listener is bound. ``protocols`` replaces the fixture's set;
        ``tls``: the test CA's certificate for every listener that does not name one.
        The file is written as ``config.toml`` in ``directory`` (the test's own by default;
        a server started again there finds the data of the one before it): give each server
        its own directory to run two at once."""
        if tls:
            if self.certificate is None:
                raise ValueError("tls=True needs the factory's certificate")
            text = with_certificate(text, *self.certificate)
        directory = self.directory if directory is None else directory
        directory.mkdir(parents=True, exist_ok=True)
        path = write_config(directory, text)
        server = RunningServer(
            path, protocols if protocols is not None else self.protocols, client_tls=self.client_tls
        )
        self.started.append(server.__enter__())
        return server

    def __exit__(self, *exc_info: object) -> None:
        while self.started:
            self.started.pop().__exit__(None, None, None)
