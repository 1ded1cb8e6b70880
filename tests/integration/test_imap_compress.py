"""COMPRESS=DEFLATE (RFC 4978) with imaplib and zlib on the client side: plain, over TLS and
behind a PROXY header; megabyte literals both ways; the replies to a second COMPRESS and to
an unknown mechanism; corrupt input; and a decompression bomb, with the server's memory
measured while it arrives."""

from __future__ import annotations

import contextlib
import imaplib
import io
import logging
import os
import socket
import subprocess
import threading
import time
import zlib
from typing import Any

import pytest

from tests.integration.imap_support import (
    PASSWORD,
    TIMEOUT,
    USER,
    Raw,
    append,
    message,
    start,
)
from tests.support.logs import capture_log
from tests.support.proxied import proxied_socket
from tests.support.servers import LOG_OF_ONE_WORKER
from tests.unit.test_compression import bomb, rle_deflater

# imaplib knows the commands of RFC 3501 only.
imaplib.Commands.setdefault("COMPRESS", ("AUTH", "SELECTED"))


class _Inflating(io.RawIOBase):
    """The server's half of the connection, inflated: what imaplib reads its lines from."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inflater = zlib.decompressobj(-15)
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                return 0
            self.pending = self.inflater.decompress(data)
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


class Compressing:
    """imaplib with COMPRESS=DEFLATE: ``compress()`` sends the command and, on OK, swaps
    in a deflating ``send`` and an inflating reader."""

    sock: socket.socket
    file: Any
    deflater: Any = None

    def compress(self) -> tuple[str, list[Any]]:
        typ, data = self._simple_command("COMPRESS", "DEFLATE")  # type: ignore[attr-defined]
        if typ == "OK" and self.deflater is None:
            self.deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
            self.file = io.BufferedReader(_Inflating(self.sock))
        return typ, data

    def send(self, data: bytes) -> None:
        if self.deflater is not None:
            data = self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)


class CompressingIMAP4(Compressing, imaplib.IMAP4):
    pass


class CompressingIMAP4_SSL(Compressing, imaplib.IMAP4_SSL):
    pass


class CompressingProxiedIMAP4(Compressing, imaplib.IMAP4):
    def _create_socket(self, timeout: float | None) -> socket.socket:
        return proxied_socket((self.host, self.port), "192.0.2.7", timeout or TIMEOUT)


@pytest.fixture
def server(start_server, server_cert):
    return start(
        start_server,
        server_cert,
        '[server.listener.proxied]\nbind = "127.0.0.1:0"\nprotocol = "imap"\n'
        'proxy.trusted-networks = ["127.0.0.0/8"]\nimap.auth.allow-plaintext = true\n',
    )


def exercise(client: Compressing, server) -> None:
    """Log in, compress, and move megabytes both ways through the compressed stream."""
    imap: Any = client
    imap.login(USER, PASSWORD)
    assert b"COMPRESS=DEFLATE" in b" ".join(imap.capability()[1])
    typ, data = imap.compress()
    assert (typ, data) == ("OK", [b"DEFLATE active"])
    body = (os.urandom(600_000).hex() + "\r\n").encode()  # 1.2 MB, compresses to about half
    big = message("big", body)
    assert imap.append("INBOX", None, None, big)[0] == "OK"
    append(server, USER, "INBOX", message("small"))
    assert imap.select("INBOX") == ("OK", [b"2"])
    typ, data = imap.fetch("1", "BODY.PEEK[]")
    assert typ == "OK" and data[0][1] == big
    typ, data = imap.fetch("2", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"Subject: small" in data[0][1]
    typ, data = imap.compress()  # RFC 4978 section 3: once per connection
    assert typ == "NO" and data == [b"[COMPRESSIONACTIVE] Compression is already active"]
    assert imap.noop()[0] == "OK"  # and the stream goes on
    imap.logout()


def test_compress_on_a_plain_connection(server):
    host, port = server.address("imap")
    exercise(CompressingIMAP4(host, port, timeout=TIMEOUT), server)


def test_compress_under_tls(server, client_tls):
    host, port = server.address("imaps")
    exercise(CompressingIMAP4_SSL(host, port, ssl_context=client_tls, timeout=TIMEOUT), server)


def test_compress_behind_a_proxy_header(server):
    host, port = server.address("proxied")
    exercise(CompressingProxiedIMAP4(host, port, timeout=TIMEOUT), server)


def test_unknown_mechanism_and_state(server):
    with Raw(server) as raw:
        _, tagged = raw.command("COMPRESS DEFLATE")
        assert tagged == b"t1 BAD COMPRESS is not valid in the not authenticated state"
        raw.login()
        _, tagged = raw.command("COMPRESS LZMA")
        assert tagged == b"t1 BAD Unknown compression mechanism LZMA"
        _, tagged = raw.command("COMPRESS")
        assert tagged.startswith(b"t1 BAD")
        _, tagged = raw.command("NOOP")  # still uncompressed
        assert tagged == b"t1 OK NOOP completed"


def _compress_raw(raw: Raw) -> None:
    raw.login()
    _, tagged = raw.command("COMPRESS DEFLATE")
    assert tagged == b"t1 OK DEFLATE active"
    assert raw.buffer == b""


@pytest.mark.single_worker(LOG_OF_ONE_WORKER)
def test_corrupt_input_ends_the_connection_with_a_log_line(server):
    with Raw(server) as raw, capture_log() as log:
        _compress_raw(raw)
        raw.send(b"\xff" * 64)
        raw.sock.settimeout(TIMEOUT)
        assert raw.sock.recv(100) == b""  # closed, without a word: nothing can be read
        server.wait_until(lambda: "corrupt compressed data" in log.text)
    assert "Traceback" not in log.text
    lines = [line for line in log.text_lines() if "corrupt compressed data" in line]
    assert len(lines) == 1 and "WARNING" in lines[0]


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_bomb_as_a_command_line_is_refused_at_the_line_limit(server):
    with Raw(server) as raw:
        _compress_raw(raw)
        inflater = zlib.decompressobj(-15)
        reply = b""
        # The server may close before it has read everything: a reset is its answer too.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            raw.sock.sendall(bomb(150, b"\r\n"))
        with contextlib.suppress(ConnectionResetError):
            while chunk := raw.sock.recv(65536):
                reply += inflater.decompress(chunk)
    assert reply.startswith(b"* BYE [TOOBIG] Command line too long")


def test_a_decompression_bomb_is_inflated_without_growing_memory(server):
    """A 150 MB line in 155 KB of deflate, sent where the server reads it all: as the line
    that should end IDLE. The server inflates every byte of it (it discards the line up to
    its end, then answers the next command), and its memory (it runs in this process) does
    not grow by more than a few megabytes meanwhile."""
    with Raw(server) as raw:
        _compress_raw(raw)
        deflater = rle_deflater()
        inflater = zlib.decompressobj(-15)

        def send(text: bytes) -> None:
            raw.send(deflater.compress(text) + deflater.flush(zlib.Z_SYNC_FLUSH))

        def line() -> bytes:
            while b"\r\n" not in raw.buffer:
                chunk = raw.sock.recv(65536)
                assert chunk, "connection closed"
                raw.buffer += inflater.decompress(chunk)
            out, raw.buffer = raw.buffer.split(b"\r\n", 1)
            return out

        send(b"i1 IDLE\r\n")
        assert line() == b"+ idling"
        # The bomb continues the client's deflate stream (its own, fresh, would not be one).
        wire = bomb(150, b"\r\nn1 NOOP\r\n", deflater)
        before = peak = _rss()
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.wait(0.001):
                peak = max(peak, _rss())

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.monotonic()
        try:
            raw.send(wire)
            assert line() == b"i1 BAD Expected DONE to end IDLE"
            assert line() == b"n1 OK NOOP completed"
        finally:
            stop.set()
            sampler.join()
        elapsed = time.monotonic() - started
    growth = peak - before
    print(
        f"\nbomb: 150 MiB line as {len(wire)} bytes of deflate, inflated and discarded in "
        f"{elapsed:.2f}s; peak RSS growth {growth / 1024:.0f} KiB"
    )
    assert growth < 8 * 1024 * 1024


@pytest.mark.interop
@pytest.mark.single_worker(LOG_OF_ONE_WORKER)
def test_mbsync_syncs_through_compression(server, tmp_path):
    """mbsync (isync 1.4, built with zlib) asks for COMPRESS DEFLATE when it is offered, and
    then syncs the whole account through the compressed stream."""
    from tests.conftest import require_tool
    from tests.interop.test_imap_mbsync import maildir_messages, write_config

    mbsync = require_tool("mbsync")
    for index in range(20):
        append(server, USER, "INBOX", message(f"compressed {index}", "x" * 5000 + "\r\n"))
    maildir = tmp_path / "Mail"
    maildir.mkdir()
    config = write_config(tmp_path, server.address("imap")[1], maildir)
    with capture_log(logging.DEBUG) as log:
        result = subprocess.run(
            [mbsync, "-c", str(config), "-a", "-D"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "COMPRESS DEFLATE" in result.stdout + result.stderr
    assert "compression started" in log.text
    assert len(maildir_messages(maildir / "INBOX")) == 20


def test_unsolicited_responses_are_flushed_at_once(server):
    """NOTIFY under compression: a notification written while the client sends nothing
    arrives whole (each send ends with a sync flush), or the client would wait forever."""
    with Raw(server) as raw, Raw(server) as other:
        _compress_raw(raw)
        other.login()
        deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
        inflater = zlib.decompressobj(-15)

        def line() -> bytes:
            while b"\r\n" not in raw.buffer:
                chunk = raw.sock.recv(65536)
                assert chunk, "connection closed"
                raw.buffer += inflater.decompress(chunk)
            out, raw.buffer = raw.buffer.split(b"\r\n", 1)
            return out

        raw.send(deflater.compress(b"n1 NOTIFY SET (personal (MailboxName))\r\n"))
        raw.send(deflater.flush(zlib.Z_SYNC_FLUSH))
        assert line() == b"n1 OK NOTIFY completed"
        assert other.command("CREATE Compressed")[1] == b"t1 OK CREATE completed"
        listed = line()  # whether CREATE subscribes is not this test's business
        assert listed.startswith(b"* LIST (\\HasNoChildren") and listed.endswith(
            b'"/" "Compressed"'
        )
