"""An example stalwart-py protocol plugin: every line the client sends comes back to it."""

from dataclasses import dataclass

from stalwart_py.plugin import Connection, ConnectionClosed, LineTooLong, Protocol, Refusal


@dataclass(frozen=True)
class EchoSettings:
    """The ``echo.*`` table: merged from [server.echo], the listener and peer scopes."""

    greeting: str = "echo ready"
    max_line_length: int = 1000


class Echo(Protocol):
    name = "echo"
    api_versions = (1, 2)  # uses nothing version 2 added
    settings = EchoSettings

    async def handle(self, conn: Connection) -> None:
        settings: EchoSettings = conn.settings
        await conn.send(f"+OK {conn.listener.settings.hostname} {settings.greeting}\r\n".encode())
        while True:
            try:
                line = await conn.readline(settings.max_line_length)
            except LineTooLong:
                await conn.send(b"-ERR line too long\r\n")
                continue
            except ConnectionClosed:
                return
            if line.strip().upper() == b"QUIT":
                await conn.send(b"+OK bye\r\n")
                return
            await conn.send(line)

    async def refuse(self, conn: Connection, reason: Refusal) -> None:
        await conn.send(f"-ERR {reason.text}\r\n".encode())
