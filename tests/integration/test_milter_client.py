"""The milter client against scripted milters (replies purepythonmilter cannot send:
SMFIR_QUARANTINE, progress, a skip of the body, a broken packet), over TCP and a Unix socket."""

from __future__ import annotations

import asyncio
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from stalwart_py.connection import Address
from stalwart_py.filters.api import Accept, FilterMessage, Quarantine, TempFail
from stalwart_py.milter import codec
from stalwart_py.milter.client import filter_message
from stalwart_py.milter.settings import MilterSettings, MilterTimeouts
from tests.support.mail_peers import background_loop

pytestmark = pytest.mark.anyio

BODY = b"x" * 200_000 + b"\r\n"  # four body chunks
MESSAGE = FilterMessage(
    session_id="s1",
    listener="smtp",
    hostname="mail.example.test",
    peer=Address.from_sockaddr(2, ("192.0.2.7", 40000)),
    local=Address.from_sockaddr(2, ("127.0.0.1", 25)),
    tls=None,
    helo="client.test",
    authenticated=None,
    sender="a@remote.test",
    recipients=("bob@example.test",),
    content=b"Subject: hi\r\nFrom: a@remote.test\r\n\r\n" + BODY,
)

Script = Callable[[bytes, bytes], list[bytes]]  # (command, data) -> reply packets


def pkt(code: bytes, data: bytes = b"") -> bytes:
    return struct.pack("!I", len(data) + 1) + code + data


def optneg_reply(steps: int = 0) -> bytes:
    return pkt(b"O", struct.pack("!III", 6, 0x1FF, steps))


async def run_script(reader, writer, script: Script, seen: list[bytes]) -> None:
    while True:
        try:
            head = await reader.readexactly(4)
        except asyncio.IncompleteReadError:
            break
        (length,) = struct.unpack("!I", head)
        packet = await reader.readexactly(length)
        seen.append(packet[:1])
        for reply in script(packet[:1], packet[1:]):
            writer.write(reply)
        await writer.drain()
        if packet[:1] == b"Q":
            break
    writer.close()


@contextmanager
def serve(script: Script, unix: Path | None = None) -> Iterator[tuple[MilterSettings, list]]:
    """A scripted milter in a background loop; (settings to reach it, commands seen)."""
    seen: list[bytes] = []
    with background_loop() as portal:

        async def start():
            def handler(reader, writer):
                return run_script(reader, writer, script, seen)

            if unix is not None:
                return await asyncio.start_unix_server(handler, str(unix))
            return await asyncio.start_server(handler, "127.0.0.1", 0)

        server = portal.call(start)
        timeouts = MilterTimeouts(connect=5, command=5, data=1)
        if unix is not None:
            yield MilterSettings(hostname=str(unix), timeout=timeouts), seen
        else:
            port = server.sockets[0].getsockname()[1]
            yield MilterSettings(hostname="127.0.0.1", port=port, timeout=timeouts), seen

        async def stop() -> None:
            server.close()

        portal.call(stop)


def answers(eom: list[bytes], steps: int = 0, body: bytes = b"c") -> Script:
    def script(command: bytes, data: bytes) -> list[bytes]:
        if command == b"O":
            return [optneg_reply(steps)]
        if command in (b"D", b"Q"):
            return []
        if command == b"B":
            return [pkt(body)]
        if command == b"E":
            return eom
        return [pkt(b"p"), pkt(b"c")]  # progress first: the wait goes on

    return script


async def test_quarantine_is_a_modification_then_the_final_answer():
    eom = [pkt(b"h", b"X-Scanned\0yes\0"), pkt(b"q", b"virus found\0"), pkt(b"c")]
    with serve(answers(eom)) as (settings, seen):
        verdict = await filter_message(settings, MESSAGE)
    assert isinstance(verdict, Quarantine)
    assert verdict.reason == "virus found"
    assert verdict.changes.headers[0].name == "X-Scanned"
    assert seen.count(b"B") == 4 and seen[-1] == b"Q"


async def test_a_skip_ends_the_body_and_no_reply_steps_are_not_awaited():
    steps = int(codec.Step.NR_HDR | codec.Step.NOHELO | codec.Step.SKIP)

    def script(command: bytes, data: bytes) -> list[bytes]:
        if command == b"L":
            return []  # negotiated: headers are not answered
        return answers([pkt(b"a")], steps, body=b"s")(command, data)

    with serve(script) as (settings, seen):
        verdict = await filter_message(settings, MESSAGE)
    assert verdict == Accept()
    assert b"H" not in seen  # NOHELO: HELO not sent
    assert seen.count(b"B") == 1  # skipped after the first chunk


async def test_over_a_unix_socket():
    with tempfile.TemporaryDirectory(prefix="milter", dir="/tmp") as directory:
        path = Path(directory) / "milter.sock"
        with serve(answers([pkt(b"a")]), unix=path) as (settings, seen):
            assert await filter_message(settings, MESSAGE) == Accept()
    assert seen[0] == b"O" and b"C" in seen


@pytest.mark.parametrize(
    ("eom", "error"),
    [
        ([pkt(b"Z")], "unknown reply code"),
        ([struct.pack("!I", 0)], "reply packet of 0 octets"),
        ([], "timed out"),  # silence after end of message: timeout.data
    ],
)
async def test_a_broken_milter_is_an_error_for_on_error(eom, error):
    from stalwart_py.filters.config import FilterConfig, FilterSettings
    from stalwart_py.filters.runner import Filters
    from stalwart_py.metrics import Metrics
    from stalwart_py.milter import MilterFilter

    configured: dict[str, FilterConfig] = {}
    filters = Filters(lambda: configured, Metrics(), {"milter": MilterFilter})

    class Log:
        lines: list[str] = []

        def warning(self, text, *args):
            self.lines.append(text % args)

        info = warning

    log = Log()
    with serve(answers(eom)) as (settings, _):
        configured["m"] = FilterConfig("m", FilterSettings(), settings)
        outcome = await filters.run(["m"], MESSAGE, log)
    assert isinstance(outcome.stop, TempFail) and outcome.stop.code == 451
    assert error in log.lines[0]
