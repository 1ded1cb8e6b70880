"""The ``http`` protocol: the admin API, message injection, health and metrics over HTTP/1.1.

``[server.listener.http] protocol = "http"``; settings in ``http.*`` (``settings.py``). The
pieces: ``server.py`` (the connection loop on h11), ``app.py`` (routing, authentication,
validation), ``handlers/`` (what each route does), ``openapi.py`` (the document, generated from
the routes, served at ``/api/openapi.json``).
"""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING

import anyio

from protocols.http.settings import HttpSettings
from stalwart_py.plugin import Connection, ConnectionClosed, Protocol, ReadTimeout, Refusal

# The connection loop (server.py, on h11) loads with the first connection, the routes with
# the first request: a start imports only what binding the listeners needs (bench/startup.py).
if TYPE_CHECKING:
    from protocols.http.app import Application
    from protocols.http.server import ConnectionState

__all__ = ["Http", "HttpSettings"]

REFUSAL_READ_SECONDS = 2.0  # how long a refused client has to send its request head


class Http(Protocol):
    name = "http"
    api_versions = (2, 2)
    settings = HttpSettings

    def __init__(self) -> None:
        self._app: Application | None = None
        self._states: weakref.WeakKeyDictionary[Connection, ConnectionState] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def app(self) -> Application:
        """The routes and their handlers, made on the first request rather than at start:
        building them imports the whole API (a start imports only what binding the
        listeners needs; bench/startup.py)."""
        if self._app is None:
            from protocols.http.app import Application

            self._app = Application()
        return self._app

    async def handle(self, conn: Connection) -> None:
        from protocols.http.server import ConnectionState, serve

        state = self._states[conn] = ConnectionState()
        async with anyio.create_task_group() as group:
            group.start_soon(self._close_when_draining, conn, state, group.cancel_scope)
            try:
                await serve(conn, self.app.dispatch, state)
            finally:
                group.cancel_scope.cancel()

    @staticmethod
    async def _close_when_draining(
        conn: Connection, state: ConnectionState, scope: anyio.CancelScope
    ) -> None:
        """When the server starts to stop, a connection that owes no answer closes at once
        (a request still arriving is dropped unread, as if it came after the close: RFC 9112
        9.6), and one in the middle of a request closes after its answer, which says
        Connection: close."""
        await conn.server.draining.wait()
        state.closing = True
        if not state.owed:
            scope.cancel()

    async def refuse(self, conn: Connection, reason: Refusal) -> None:
        """503 Service Unavailable (RFC 9110 15.6.4), after the request head, so that the
        client reads it as the answer to its request; nothing to a connection that was idle
        between requests when the server stopped."""
        from protocols.http.messages import json_response
        from protocols.http.server import linger, render

        state = self._states.get(conn)
        if state is not None:  # a session cut short by the end of the shutdown grace period
            if not state.owed:
                return
            head = state.head
        else:
            head = await self._read_head(conn)
        headers = [] if reason is Refusal.PEER_DENIED else [("Retry-After", "5")]
        response = json_response(503, {"error": reason.text, "reason": str(reason)}, headers)
        await conn.send(render(response, head=head, close=True))
        if reason is not Refusal.SHUTDOWN:
            await linger(conn)

    @staticmethod
    async def _read_head(conn: Connection) -> bool:
        """Read the request head for a moment; True when it is a HEAD request."""
        import h11

        from protocols.http.server import RECEIVE_SIZE, new_parser

        parser = new_parser(conn.settings.max_header_size)
        deadline = time.monotonic() + REFUSAL_READ_SECONDS
        try:
            while (event := parser.next_event()) is h11.NEED_DATA:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                parser.receive_data(await conn.receive(RECEIVE_SIZE, timeout=remaining))
        except (h11.RemoteProtocolError, ReadTimeout, ConnectionClosed):
            return False
        return type(event) is h11.Request and event.method == b"HEAD"
