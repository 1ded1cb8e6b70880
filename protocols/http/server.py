"""The HTTP/1.1 connection loop: h11 (the sans-IO parser) over a Connection.

Per connection, requests are read and answered one after the other (RFC 9112 9.3: pipelined
requests are answered in order), for as long as both sides keep the connection alive:

* Waiting for a request, the listener's ``idle-timeout`` applies; when it passes, or the server
  starts to stop, an idle connection is closed without a word (RFC 9112 9.6: a server may close
  an idle persistent connection at any time).
* Once a request has begun, its head and body must arrive within ``http.request-timeout``
  (else 408), its head must fit in ``http.max-header-size`` (else 431, RFC 6585 5), and its body
  in ``http.max-body-size`` (else 413, RFC 9110 15.5.14), whether it is framed by Content-Length
  (refused before reading any of it) or chunked (RFC 9112 7.1, counted as it arrives). A client
  that waits for ``100 Continue`` (RFC 9110 10.1.1) gets it only when the body will be read.
* A request h11 cannot parse gets 400 (or the status h11 hints at). So does one framed both
  by Transfer-Encoding and by Content-Length: h11 would follow Transfer-Encoding, but a proxy in
  front may have followed Content-Length, and the bytes the two disagree on would be read as a
  second, smuggled request; RFC 9112 6.1 lets a server refuse it and makes it close the
  connection after answering.
* After an error answer the connection is closed gracefully: what the client still sends is
  read and dropped for a moment (RFC 9112 9.6), so that the answer is not lost to a reset.
* HEAD is answered like GET without the body, Content-Length included (RFC 9110 9.3.2).
"""

from __future__ import annotations

import contextlib
import email.utils
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import h11

from protocols.http.messages import HttpError, Request, Response, Session, json_response
from protocols.http.settings import HttpSettings
from stalwart_py.connection import Connection, ConnectionClosed, ReadTimeout

RECEIVE_SIZE = 65536
LINGER_SECONDS = 2.0  # how long to read and drop the rest of a refused request
LINGER_BYTES = 16 * 1024 * 1024
REASONS = {
    200: b"OK",
    201: b"Created",
    204: b"No Content",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    409: b"Conflict",
    413: b"Content Too Large",
    415: b"Unsupported Media Type",
    422: b"Unprocessable Content",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


@dataclass(eq=False)
class ConnectionState:
    """What the protocol knows of a connection besides the loop: for a graceful stop."""

    closing: bool = False  # the server is stopping: answer with Connection: close
    owed: bool = False  # a request was read and its answer not yet sent
    head: bool = False  # ... and it was a HEAD request


class _Date:
    """The Date header (RFC 9110 6.6.1), formatted once a second."""

    second = 0
    value = b""

    @classmethod
    def now(cls) -> bytes:
        second = int(time.time())
        if second != cls.second:
            cls.second, cls.value = second, email.utils.formatdate(second, usegmt=True).encode()
        return cls.value


def new_parser(max_header_size: int) -> h11.Connection:
    return h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_size)


def render(response: Response, *, head: bool, close: bool = False) -> bytes:
    """The bytes of a response (RFC 9112 4 to 6): every body has a known length, so it is
    framed by Content-Length (none for 204 and 304, RFC 9110 8.6); HEAD gets the headers of
    GET without the body (RFC 9110 9.3.2). A header value with CR, LF or NUL raises
    ValueError: no field may be split into two (RFC 9110 5.5)."""
    status = response.status
    parts = [
        b"HTTP/1.1 %d %s\r\ndate: %s\r\nserver: stalwart-py\r\n"
        % (status, REASONS.get(status, b""), _Date.now())
    ]
    if response.content_type is not None:
        parts.append(b"content-type: %s\r\n" % response.content_type.encode("latin-1"))
    framed = status != 204 and status != 304
    if framed:
        parts.append(b"content-length: %d\r\n" % len(response.body))
    for name, value in response.headers:
        if "\r" in value or "\n" in value or "\0" in value:
            raise ValueError(f"header {name} has a line break in its value")
        parts.append(f"{name.lower()}: {value}\r\n".encode("latin-1"))
    if close:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    if framed and not head:
        parts.append(response.body)
    return b"".join(parts)


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _Refused(Exception):
    """The request is answered with an error and the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _keep_alive(event: h11.Request) -> bool:
    """RFC 9112 9.3: HTTP/1.1 persists unless either side says ``Connection: close``; we do
    not keep HTTP/1.0 connections alive (as h11 does not)."""
    if event.http_version != b"1.1":
        return False
    for name, value in event.headers:
        if name == b"connection" and any(
            token.strip() == b"close" for token in value.lower().split(b",")
        ):
            return False
    return True


Dispatch = Callable[[Request], Awaitable[Response]]


async def serve(conn: Connection, dispatch: Dispatch, state: ConnectionState) -> None:
    """Serve requests on ``conn`` until either side closes; ``dispatch`` is the application.

    h11 parses; each request gets a fresh parser fed with what the last one left over
    (pipelined bytes), and responses are written by ``render``: h11's writer costs as much as
    its parser, and every answer here is a whole body of known length.
    """
    settings = conn.settings
    session = Session(
        conn.server, settings, conn.peer, conn.tls, conn.session_id, conn.listener.id, conn.log
    )
    idle_timeout = conn.listener.settings.idle_timeout
    leftover = b""
    while True:
        parser = new_parser(settings.max_header_size)
        state.head = False
        try:
            if leftover:
                parser.receive_data(leftover)
                event = parser.next_event()
            else:
                data = await _wait_for_request(conn, state, idle_timeout)
                if data is None:
                    return
                parser.receive_data(data)
                event = parser.next_event()
            deadline = time.monotonic() + settings.request_timeout
            while event is h11.NEED_DATA:
                parser.receive_data(await _receive(conn, deadline, idle_timeout))
                event = parser.next_event()
            if type(event) is not h11.Request:  # the client closed between requests
                return
            state.owed, state.head = True, event.method == b"HEAD"
            request = _request(event, settings, session)
            request.body = await _body(conn, parser, settings.max_body_size, deadline)
        except ConnectionClosed:
            return
        except h11.RemoteProtocolError as exc:
            await _refuse(conn, state, exc.error_status_hint, str(exc))
            return
        except (_Refused, HttpError) as exc:
            await _refuse(conn, state, exc.status, str(exc))
            return
        response = await dispatch(request)
        conn.log.debug("%s %s -> %d", request.method, request.target, response.status)
        close = state.closing or conn.draining or not _keep_alive(event)
        try:
            data = render(response, head=state.head, close=close)
        except ValueError as exc:
            conn.log.error("%s %s: cannot send the answer: %s", request.method, request.target, exc)
            data = render(
                json_response(500, {"error": "internal error"}), head=state.head, close=True
            )
            close = True
        await conn.send(data)
        state.owed = False
        if close:
            return
        leftover = parser.trailing_data[0]


async def _wait_for_request(
    conn: Connection, state: ConnectionState, idle_timeout: float
) -> bytes | None:
    """The first bytes of the next request, or None: idle too long, closed, or stopping."""
    if state.closing or conn.draining:
        return None
    try:
        return await conn.receive(RECEIVE_SIZE, timeout=idle_timeout)
    except (ReadTimeout, ConnectionClosed):
        return None


async def _receive(conn: Connection, deadline: float, idle_timeout: float) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _Refused(408, "the request did not arrive in time")
    try:
        return await conn.receive(RECEIVE_SIZE, timeout=min(remaining, idle_timeout))
    except ReadTimeout:
        raise _Refused(408, "the request did not arrive in time") from None


def _request(event: h11.Request, settings: HttpSettings, session: Session) -> Request:
    size = len(event.method) + len(event.target) + 12
    headers: dict[str, str] = {}
    for name, value in event.headers:
        size += len(name) + len(value) + 4
        key = name.decode("latin-1")
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    if size > settings.max_header_size:
        raise _Refused(431, f"the request head is larger than {settings.max_header_size} bytes")
    length = headers.get("content-length")
    if length is not None and "transfer-encoding" in headers:
        raise _Refused(400, "a request may not have both Transfer-Encoding and Content-Length")
    if length is not None and int(length.partition(",")[0]) > settings.max_body_size:
        raise _Refused(413, f"the body is larger than {settings.max_body_size} bytes")
    return Request.build(
        event.method.decode("ascii"), event.target.decode("latin-1"), headers, b"", session
    )


async def _body(conn: Connection, parser: h11.Connection, limit: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    if parser.they_are_waiting_for_100_continue:
        await conn.send(CONTINUE)
    idle_timeout = conn.listener.settings.idle_timeout
    while True:
        item = parser.next_event()
        if item is h11.NEED_DATA:
            parser.receive_data(await _receive(conn, deadline, idle_timeout))
            continue
        if type(item) is h11.Data:
            size += len(item.data)
            if size > limit:
                raise _Refused(413, f"the body is larger than {limit} bytes")
            chunks.append(item.data)
        elif type(item) is h11.EndOfMessage:
            return b"".join(chunks)
        else:  # ConnectionClosed in the middle of a body
            raise ConnectionClosed("the client closed in the middle of a request")


async def _refuse(conn: Connection, state: ConnectionState, status: int, reason: str) -> None:
    """Answer an error, then close gracefully."""
    conn.log.info("HTTP %d: %s", status, reason)
    from protocols.http.app import request_counter  # the whole API: loaded lazily

    request_counter(conn.server.metrics).labels("unread", str(status)).inc()
    response = json_response(status, {"error": reason})
    with contextlib.suppress(ConnectionClosed):
        await conn.send(render(response, head=state.head, close=True))
    state.owed = False
    await linger(conn)


async def linger(conn: Connection) -> None:
    """Close gracefully: half-close (the client sees the end of our answer at once), then read
    and drop what the client still sends, for a moment, so that closing with unread data does
    not reset the connection before the client has read our answer."""
    conn.send_eof()  # after what is still buffered; TLS has no half-close
    deadline = time.monotonic() + LINGER_SECONDS
    dropped = 0
    with contextlib.suppress(ConnectionClosed, ReadTimeout):
        while dropped < LINGER_BYTES and (remaining := deadline - time.monotonic()) > 0:
            dropped += len(await conn.receive(RECEIVE_SIZE, timeout=remaining))
