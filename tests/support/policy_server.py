"""An HTTPS server on loopback serving MTA-STS policies (RFC 8461 3.3), as a receiving
domain's ``mta-sts.<domain>`` web server would: one answer per Host, from a dict the test
changes as it goes, every request recorded."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field


@dataclass
class Answer:
    body: str
    status: int = 200
    content_type: str = "text/plain"
    location: str | None = None  # for a redirect


def policy(mode: str, *mx: str, max_age: int = 86400) -> str:
    """A policy text (RFC 8461 3.2)."""
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {m}" for m in mx), f"max_age: {max_age}"]
    return "\r\n".join(lines) + "\r\n"


@dataclass
class PolicyServer:
    tls: ssl.SSLContext
    answers: dict[str, Answer] = field(default_factory=dict)  # Host -> answer
    requests: list[tuple[str, str]] = field(default_factory=list)  # (host, path)
    port: int = 0

    def __post_init__(self) -> None:
        self._server: asyncio.base_events.Server | None = None

    async def start(self, host: str = "127.0.0.1") -> int:
        self._server = await asyncio.start_server(self._serve, host, 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            _, path, _ = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
            }
            host = headers.get("host", "")
            self.requests.append((host, path))
            answer = self.answers.get(host)
            if answer is None or path != "/.well-known/mta-sts.txt":
                answer = Answer("not found", 404)
            body = answer.body.encode()
            extra = f"Location: {answer.location}\r\n" if answer.location else ""
            writer.write(
                f"HTTP/1.1 {answer.status} X\r\nContent-Type: {answer.content_type}\r\n"
                f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, ValueError):
            pass
        finally:
            writer.close()
