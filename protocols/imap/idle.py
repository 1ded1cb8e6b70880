"""IDLE (RFC 2177, RFC 9051 section 6.3.13): the client waits, the server tells it at once
about changes to the selected mailbox, until the client sends ``DONE``.

The session waits for the client's next line and for the mailbox's change watch at once,
in its own task: a change cancels the wait for input (nothing is lost: what arrives meanwhile
stays in the connection's buffer), the session reports what changed (expunges included: IDLE
is a command in progress, so RFC 9051 section 7.5.1 allows them), and waits again. One task,
not a reporter task beside it, because a server holds thousands of sessions in IDLE and each
task costs a few kilobytes for as long as it waits. With NOTIFY (RFC 5465), its reporter
task runs beside the wait instead, its reports written with cancellation shielded so that
``DONE`` never cuts one in half. The wait is bounded by ``imap.idle-timeout`` (at least 30
minutes, RFC 9051 section 5.4) in all, however many changes were reported, after which the
session says BYE. A client that stays in IDLE must restart it before then.
"""

from __future__ import annotations

import time
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
    line = b""
    timeout = session.settings.idle_timeout
    try:
        if session.notifier is not None:
            deadline = await _wait_beside_notify(session, timeout)
        else:
            deadline = await _wait_reporting(session, time.monotonic() + timeout)
        if deadline is not None:  # None: the NOTIFY reporter ended the wait (raise_failure)
            line = await session.conn.readline(MAX_DONE_LINE, timeout=timeout, deadline=deadline)
    except ReadTimeout:
        session.write(response.status("*", "BYE", "Autologout: idle for too long"))
        ended_by_server = True
    except LineTooLong:
        line = b""
    except ConnectionClosed as error:
        closed = error
    except Logout:
        ended_by_server = True
    if session.notifier is not None:
        session.notifier.raise_failure()
    if closed is not None:
        raise closed
    if ended_by_server:
        raise Logout
    if line.strip().upper() != b"DONE":
        raise Bad("Expected DONE to end IDLE")
    return Ok("IDLE terminated")


async def _wait_reporting(session: Session, until: float) -> float:
    """Until the client sends something (returned: the deadline for its whole line), telling
    it of each change of the selected mailbox meanwhile. Raises ReadTimeout at ``until``,
    ConnectionClosed, or Logout when the mailbox is gone."""
    watch = session.watch
    while True:
        with anyio.CancelScope() as waiting:
            if watch is not None:
                watch.on_change = waiting.cancel
                if watch.pending:
                    waiting.cancel()
            try:
                remaining = until - time.monotonic()
                if remaining <= 0:
                    raise ReadTimeout("idle for too long")
                return await session.conn.begin_command(timeout=remaining)
            finally:
                if watch is not None:
                    watch.on_change = None
        # woken by a change (the scope caught its own cancellation): report, wait again
        await session.sync(allow_expunge=True)
        await session.flush()


async def _wait_beside_notify(session: Session, timeout: float) -> float | None:
    """The NOTIFY reporter (which covers the selected mailbox too) as a task beside the wait
    for the client's next line; None when the reporter ended the wait (its failure is raised
    by ``raise_failure`` afterwards)."""
    notifier = session.notifier
    assert notifier is not None
    deadline = None
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: notifier.report_loop(group.cancel_scope, idle=True))
        try:
            deadline = await session.conn.begin_command(timeout=timeout)
        finally:
            group.cancel_scope.cancel()
    return deadline
