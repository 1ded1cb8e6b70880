"""IDLE (RFC 2177, RFC 9051 section 6.3.13): the client waits, the server tells it at once
about changes to the selected mailbox, until the client sends ``DONE``.

While the session waits for ``DONE``, a second task waits on the mailbox's change watch
and, on each wake-up, reports what changed (expunges included: IDLE is a command in
progress, so RFC 9051 section 7.5.1 allows them). Its report is written with cancellation
shielded, so ``DONE`` never cuts a response in half. The wait is bounded by
``imap.idle-timeout`` (at least 30 minutes, RFC 9051 section 5.4), after which the session
says BYE. A client that stays in IDLE must restart it before then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from protocols.imap import response
from protocols.imap.commands import Command
from protocols.imap.replies import Bad, Logout, Ok
from stalwart_py.plugin import ConnectionClosed, LineTooLong, ReadTimeout

if TYPE_CHECKING:
    from protocols.imap.session import Session

MAX_DONE_LINE = 1024


async def idle(session: Session, command: Command) -> Ok:
    session.write(response.continuation("idling"))
    await session.sync(allow_expunge=True)
    await session.flush()
    ended_by_server = False
    closed: ConnectionClosed | None = None

    async def report_changes(watch_scope: anyio.CancelScope) -> None:
        nonlocal ended_by_server, closed
        watch = session.watch
        if watch is None:
            return
        while True:
            await watch.wait()
            with anyio.CancelScope(shield=True):
                try:
                    await session.sync(allow_expunge=True, force=True)
                    await session.flush()
                except Logout:
                    ended_by_server = True
                    watch_scope.cancel()
                    return
                except ConnectionClosed as error:
                    closed = error
                    watch_scope.cancel()
                    return

    line = b""
    async with anyio.create_task_group() as group:
        notifier = session.notifier
        if notifier is not None:  # NOTIFY: its reporter covers the selected mailbox too
            group.start_soon(lambda: notifier.report_loop(group.cancel_scope, idle=True))
        else:
            group.start_soon(report_changes, group.cancel_scope)
        try:
            timeout = session.settings.idle_timeout
            deadline = await session.conn.begin_command(timeout=timeout)
            line = await session.conn.readline(MAX_DONE_LINE, timeout=timeout, deadline=deadline)
        except ReadTimeout:
            session.write(response.status("*", "BYE", "Autologout: idle for too long"))
            ended_by_server = True
        except LineTooLong:
            line = b""
        except ConnectionClosed as error:
            closed = error
        group.cancel_scope.cancel()
    if session.notifier is not None:
        session.notifier.raise_failure()
    if closed is not None:
        raise closed
    if ended_by_server:
        raise Logout
    if line.strip().upper() != b"DONE":
        raise Bad("Expected DONE to end IDLE")
    return Ok("IDLE terminated")
