"""The HTTP/1.1 connection loop: h11 (the sans-IO protocol state machine) over a Connection.

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
* A request h11 cannot parse gets 400 (or the status h11 hints at).
* After an error answer the connection is closed gracefully: what the client still sends is
  read and dropped for a moment (RFC 9112 9.6), so that the answer is not lost to a reset.
* HEAD is answered like GET without the body (h11 keeps Content-Length as for GET).
"""

from __future__ import annotations

import contextlib
import email.utils
import socket
import time
from dataclasses import dataclass

import anyio
import h11

from protocols.http.messages import Request, Response, Session, json_response
from stalwart_py.connection import Connection, ConnectionClosed, ReadTimeout

RECEIVE_SIZE = 65536
LINGER_SECONDS = 2.0  # how long to read and drop the rest of a refused request
LINGER_BYTES = 16 * 1024 * 1024
SERVER_HEADER = (b"server", b"stalwart-py")
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

    h11: h11.Connection
    idle_scope: anyio.CancelScope | None = None  # set while waiting for a request
    closing: bool = False  # the server is stopping: answer with Connection: close


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


def new_state(max_header_size: int) -> ConnectionState:
    return ConnectionState(h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_size))


def render(
    connection: h11.Connection, response: Response, *, head: bool, close: bool = False
) -> bytes:
    """The bytes of a response; h11 checks the framing and notes whether to close."""
    status = response.status
    headers = [(b"date", _Date.now()), SERVER_HEADER]
    if response.content_type is not None:
        headers.append((b"content-type", response.content_type.encode()))
    if status != 204 and status != 304 and status >= 200:
        headers.append((b"content-length", str(len(response.body)).encode()))
    for name, value in response.headers:
        headers.append((name.encode("latin-1"), value.encode("latin-1")))
    if close:
        headers.append((b"connection", b"close"))
    data = connection.send(
        h11.Response(status_code=status, headers=headers, reason=REASONS.get(status, b""))
    )
    if response.body and not head and status != 204:
        data += connection.send(h11.Data(data=response.body))
    return data + connection.send(h11.EndOfMessage())


class _Refused(Exception):
    """The request is answered with an error and the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def serve(conn: Connection, dispatch, state: ConnectionState) -> None:
    """Serve requests on ``conn`` until either side closes; ``dispatch`` is the application."""
    settings = conn.settings
    session = Session(
        conn.server, settings, conn.peer, conn.tls, conn.session_id, conn.listener.id, conn.log
    )
    connection = state.h11
    idle_timeout = conn.listener.settings.idle_timeout
    while True:
        try:
            event = connection.next_event()
            if event is h11.NEED_DATA and not connection.trailing_data[0]:
                data = await _wait_for_request(conn, state, idle_timeout)
                if data is None:
                    return
                connection.receive_data(data)
                event = connection.next_event()
            deadline = time.monotonic() + settings.request_timeout
            while event is h11.NEED_DATA:
                connection.receive_data(await _receive(conn, deadline, idle_timeout))
                event = connection.next_event()
            if type(event) is h11.ConnectionClosed:
                return
            assert type(event) is h11.Request
            request = _request(event, settings, session)
            body = await _body(conn, connection, event, settings.max_body_size, deadline)
        except ConnectionClosed:
            return
        except h11.RemoteProtocolError as exc:
            await _refuse(conn, connection, exc.error_status_hint, str(exc))
            return
        except _Refused as exc:
            await _refuse(conn, connection, exc.status, str(exc))
            return
        request.body = body
        response = await dispatch(request)
        close = state.closing or conn.draining
        await conn.send(render(connection, response, head=request.method == "HEAD", close=close))
        if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
            return  # MUST_CLOSE: Connection: close, HTTP/1.0, or our own close
        connection.start_next_cycle()


async def _wait_for_request(
    conn: Connection, state: ConnectionState, idle_timeout: float
) -> bytes | None:
    """The first bytes of the next request, or None: idle too long, closed, or stopping."""
    if state.closing or conn.draining:
        return None
    with anyio.CancelScope() as scope:
        state.idle_scope = scope
        try:
            return await conn.receive(RECEIVE_SIZE, timeout=idle_timeout)
        except (ReadTimeout, ConnectionClosed):
            return None
        finally:
            state.idle_scope = None
    return None  # cancelled: the server is stopping


async def _receive(conn: Connection, deadline: float, idle_timeout: float) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _Refused(408, "the request did not arrive in time")
    try:
        return await conn.receive(RECEIVE_SIZE, timeout=min(remaining, idle_timeout))
    except ReadTimeout:
        raise _Refused(408, "the request did not arrive in time") from None


def _request(event: h11.Request, settings, session: Session) -> Request:
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
    if length is not None and int(length.partition(",")[0]) > settings.max_body_size:
        raise _Refused(413, f"the body is larger than {settings.max_body_size} bytes")
    return Request.build(
        event.method.decode("ascii"), event.target.decode("latin-1"), headers, b"", session
    )


async def _body(
    conn: Connection, connection: h11.Connection, event: h11.Request, limit: int, deadline: float
) -> bytes:
    chunks: list[bytes] = []
    size = 0
    if connection.they_are_waiting_for_100_continue:
        await conn.send(connection.send(h11.InformationalResponse(status_code=100, headers=[])))
    while True:
        item = connection.next_event()
        if item is h11.NEED_DATA:
            connection.receive_data(
                await _receive(conn, deadline, conn.listener.settings.idle_timeout)
            )
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


async def _refuse(conn: Connection, connection: h11.Connection, status: int, reason: str) -> None:
    """Answer an error (when h11 still lets us answer), then close gracefully."""
    conn.log.info("HTTP %d: %s", status, reason)
    conn.server.metrics.counter(
        "stalwart_http_requests", "HTTP requests answered, by route and status", ["route", "status"]
    ).labels("unread", str(status)).inc()
    if connection.our_state in (h11.IDLE, h11.SEND_RESPONSE):
        response = json_response(status, {"error": reason})
        with contextlib.suppress(h11.LocalProtocolError, ConnectionClosed):
            await conn.send(render(connection, response, head=False, close=True))
    await linger(conn)


async def linger(conn: Connection) -> None:
    """Close gracefully: half-close (the client sees the end of our answer at once), then read
    and drop what the client still sends, for a moment, so that closing with unread data does
    not reset the connection before the client has read our answer."""
    if conn.tls is None and conn.raw_socket is not None:  # TLS has no half-close
        with contextlib.suppress(OSError):
            conn.raw_socket.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + LINGER_SECONDS
    dropped = 0
    with contextlib.suppress(ConnectionClosed, ReadTimeout):
        while dropped < LINGER_BYTES and (remaining := deadline - time.monotonic()) > 0:
            dropped += len(await conn.receive(RECEIVE_SIZE, timeout=remaining))
