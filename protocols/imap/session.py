"""One IMAP session: the connection glue around the sans-IO core, and the session state.

The loop reads a command through ``CommandFramer`` (sending ``+`` for synchronizing
literals), parses it with ``parse_command``, checks that it is valid in the current state
(RFC 9051 section 3: not authenticated, authenticated, selected, logout), runs its handler,
tells the client what changed in the selected mailbox where the rules allow it (``sync``),
and ends it with the tagged reply. Responses are collected in a buffer and sent in large
writes; handlers that produce a lot (FETCH) flush as they go.

Errors: a syntax error is ``BAD`` and the session goes on (``imap.max-bad-commands`` in a
row end it); a handler's ``No``/``Bad`` is its tagged reply; a store failure is ``NO
[SERVERBUG]`` with the details in the log, never a traceback to the client.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from protocols.imap import recent, response
from protocols.imap.commands import Command, CommandError, parse_command
from protocols.imap.framing import (
    CommandComplete,
    CommandFramer,
    CommandRejected,
    LiteralExpected,
)
from protocols.imap.mailbox_names import BadMailboxName, decode_name
from protocols.imap.replies import Answered, Bad, Logout, No, Ok
from protocols.imap.settings import ImapSettings
from protocols.imap.view import MailboxView, Options
from stalwart_py.plugin import Connection, ConnectionClosed, LineTooLong, ReadTimeout
from stalwart_py.store import Account, Mailbox, MailboxWatch, NotFound, Store, StoreError

if TYPE_CHECKING:
    from prometheus_client import Counter

    from protocols.imap.notify import Notifier

FLUSH_AT = 64 * 1024  # buffered response octets that trigger a write


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


Handler = Callable[["Session", Command], Awaitable[Ok | None]]
ANY = frozenset(State) - {State.LOGOUT}
NOT_AUTHENTICATED = frozenset((State.NOT_AUTHENTICATED,))
AUTHENTICATED = frozenset((State.AUTHENTICATED, State.SELECTED))
SELECTED = frozenset((State.SELECTED,))


class Session:
    # name -> (handler, the states it is valid in); filled by protocols.imap.handlers
    handlers: dict[str, tuple[Handler, frozenset[State]]] = {}

    def __init__(self, conn: Connection, metrics: dict[str, Counter]) -> None:
        self.conn = conn
        self.settings: ImapSettings = conn.settings
        self.store: Store = conn.server.store
        self.metrics = metrics
        self.state = State.NOT_AUTHENTICATED
        self.account: Account | None = None
        self.view: MailboxView | None = None
        self.watch: MailboxWatch | None = None
        self.options = Options()
        self.search_contexts: dict = {}  # tag -> contexts.SearchContext (RFC 5267)
        self.notifier: Notifier | None = None  # NOTIFY SET (RFC 5465) is in force
        self.utf8 = False  # IMAP4rev2 enabled: UTF-8 mailbox names, ESEARCH replies
        self.utf8_accept = False  # UTF8=ACCEPT enabled (RFC 6855): UTF-8 names and headers
        self.auth_failures = 0
        self.bad_in_a_row = 0
        self._out = bytearray()
        self._framer = CommandFramer(
            self.settings.max_command_length,
            self.settings.max_literal_size,
            self.settings.max_append_size,
        )

    # -- output -----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self._out += data

    async def flush(self) -> None:
        if self._out:
            data = bytes(self._out)
            self._out.clear()
            await self.conn.send(data)

    async def flush_if_full(self) -> None:
        if len(self._out) >= FLUSH_AT:
            await self.flush()

    # -- reading ----------------------------------------------------------------------------

    @property
    def read_timeout(self) -> float | None:
        """Before login the listener's idle-timeout, after it ``imap.idle-timeout``
        (RFC 9051 section 5.4 wants at least 30 minutes for an authenticated client)."""
        if self.state is State.NOT_AUTHENTICATED:
            return None
        return self.settings.idle_timeout

    async def read_command(self) -> bytes | None:
        """The next complete command, or None when it was refused (the refusal is written
        and the loop goes on). Raises Logout when the connection cannot go on."""
        framer = self._framer
        framer.reset()
        # Waiting for a command may take the autologout time; once begun, the command and
        # its literals must arrive by their deadline (a trickle is cut off).
        if self.notifier is not None:  # NOTIFY: changes are reported while we wait
            deadline = await self.notifier.until_command(self.read_timeout)
        else:
            deadline = await self.conn.begin_command(timeout=self.read_timeout)
        while True:
            try:
                line = await self.conn.readline(
                    framer.line_limit, timeout=self.read_timeout, deadline=deadline
                )
            except LineTooLong:
                # We cannot tell whether the line announced a literal that is on its way, so
                # the stream cannot be trusted any more.
                self.conn.log.warning("command line over %d octets", framer.line_limit)
                self.write(response.status("*", "BYE", "Command line too long", "TOOBIG"))
                raise Logout from None
            event = framer.feed_line(line)
            if isinstance(event, CommandComplete):
                return event.data
            if isinstance(event, CommandRejected):
                self.conn.log.info("refused a command from %s: %s", event.tag, event.text)
                if event.close:
                    self.write(response.status("*", "BYE", event.text, "TOOBIG"))
                    raise Logout
                self.write(response.status(event.tag, "NO", event.text, "TOOBIG"))
                return None
            assert isinstance(event, LiteralExpected)
            if event.synchronizing:
                self.write(response.continuation("Ready for literal data"))
                await self.flush()
            deadline = self.conn.allow_for(deadline, event.size)
            data = await self.conn.receive_exactly(
                event.size, timeout=self.read_timeout, deadline=deadline
            )
            framer.feed_literal(data)

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve commands until LOGOUT (the greeting is already written)."""
        try:
            while self.state is not State.LOGOUT:
                await self.flush()
                if self.conn.draining:
                    self.write(response.status("*", "BYE", "Server shutting down", "UNAVAILABLE"))
                    return
                try:
                    data = await self.read_command()
                except ReadTimeout:
                    self.write(response.status("*", "BYE", "Autologout: idle for too long"))
                    return
                if data is not None:
                    await self.execute(data)
        except Logout:
            return
        finally:
            if self.notifier is not None:
                self.notifier.close()
                self.notifier = None
            if self.watch is not None:
                self.watch.close()
                self.watch = None
            with contextlib.suppress(ConnectionClosed):
                await self.flush()

    async def execute(self, data: bytes) -> None:
        try:
            command = parse_command(data)
        except CommandError as error:
            self.conn.log.info("syntax error in command %.40s: %s", error.tag, error)
            self.metrics["bad"].labels(self.conn.listener.id).inc()
            self.write(response.status(error.tag, "BAD", str(error), error.code))
            self.bad_in_a_row += 1
            if self.bad_in_a_row >= self.settings.max_bad_commands:
                self.write(response.status("*", "BYE", "Too many invalid commands"))
                raise Logout from None
            return
        entry = self.handlers.get(command.name)
        assert entry is not None, command.name  # the parser knows the same commands
        handler, states = entry
        if self.state not in states:
            self.write(
                response.status(
                    command.tag,
                    "BAD",
                    f"{command.name} is not valid in the {self.state.value} state",
                )
            )
            return
        self.bad_in_a_row = 0
        await self.run_handler(handler, command)

    async def run_handler(self, handler: Handler, command: Command) -> None:
        tag = command.tag
        try:
            outcome = await handler(self, command)
        except No as error:
            await self.sync_after(command)
            self.write(response.status(tag, "NO", error.text, error.code))
            return
        except Bad as error:
            self.write(response.status(tag, "BAD", error.text, error.code))
            return
        except StoreError as error:
            self.conn.log.warning("%s failed: %s", command.name, error)
            await self.sync_after(command)
            self.write(response.status(tag, "NO", str(error) or "Failed", None))
            return
        except (Logout, ConnectionClosed, ReadTimeout):
            raise
        except Exception:
            # A bug of ours: the client hears that much, the log gets the rest, and the
            # session goes on (a traceback never reaches the client).
            self.conn.log.exception("%s failed", command.name)
            self.write(response.status(tag, "NO", "Internal error", "SERVERBUG"))
            return
        if isinstance(outcome, Answered):
            return
        if outcome is None:
            outcome = Ok()
        await self.sync_after(command)
        if self.state is State.LOGOUT:
            self.write(response.status(tag, "OK", outcome.text or "Logged out", outcome.code))
            return
        name = f"UID {command.name}" if command.uid else command.name
        self.write(response.status(tag, "OK", outcome.text or f"{name} completed", outcome.code))

    # -- the selected mailbox ---------------------------------------------------------------

    async def sync_after(self, command: Command) -> None:
        """Tell the client what changed, before the tagged reply; no EXPUNGE after a
        FETCH, STORE or SEARCH by sequence number (RFC 9051 section 7.5.1)."""
        if self.view is None or command.name in ("LOGOUT", "SELECT", "EXAMINE"):
            return
        allow = command.uid or command.name not in ("FETCH", "STORE", "SEARCH", "SORT", "THREAD")
        await self.sync(allow_expunge=allow)

    async def sync(self, *, allow_expunge: bool, force: bool = False) -> None:
        """Report changes of the selected mailbox: when the watch says there are some (or
        ``force``, after ``watch.wait()`` consumed the signal), and deferred expunges."""
        view, watch = self.view, self.watch
        if view is None or watch is None:
            return
        if force or watch.pending:
            watch.clear()  # before reading: a change committed from now on wakes us again
            try:
                changes = await self.store.changes_since(view.mailbox_id, view.modseq)
            except NotFound:
                self.write(response.status("*", "BYE", "The selected mailbox was deleted"))
                raise Logout from None
            last_uid = view.uids[-1] if view.uids else 0
            self.write(view.apply(changes, self.options, allow_expunge=allow_expunge))
            self.write(await recent.after_update(self, view, last_uid))
            if self.search_contexts:
                from protocols.imap import contexts

                await contexts.refresh(self)
        elif allow_expunge and view.deferred:
            self.write(view.remove(view.deferred, self.options))

    def close_mailbox(self) -> None:
        if self.watch is not None:
            self.watch.close()
        self.watch = None
        self.view = None
        self.search_contexts.clear()
        if self.state is State.SELECTED:
            self.state = State.AUTHENTICATED

    def enable_condstore(self) -> None:
        """A CONDSTORE-enabling command (RFC 7162 section 3.1: SELECT/EXAMINE (CONDSTORE),
        STATUS HIGHESTMODSEQ, FETCH MODSEQ or CHANGEDSINCE, SEARCH MODSEQ, STORE
        UNCHANGEDSINCE, ENABLE CONDSTORE) turns MODSEQ reporting on for the rest of the
        session. The first one, when a mailbox is selected, also tells the client the
        mailbox's HIGHESTMODSEQ (section 3.1.2.1: ``* OK [HIGHESTMODSEQ n]``), as SELECT
        would have, since the client did not ask for it then; Dovecot does the same."""
        if self.options.condstore:
            return
        self.options.condstore = True
        if self.view is not None:
            self.write(response.status("*", "OK", "Highest", f"HIGHESTMODSEQ {self.view.modseq}"))

    def require_view(self) -> MailboxView:
        assert self.view is not None  # the dispatcher checked the state
        return self.view

    # -- names and mailboxes ----------------------------------------------------------------

    @property
    def account_id(self) -> int:
        assert self.account is not None
        return self.account.id

    @property
    def utf8_names(self) -> bool:
        """Mailbox names are UTF-8, not modified UTF-7: after ENABLE IMAP4rev2 (RFC 9051
        section 5.1) or ENABLE UTF8=ACCEPT (RFC 6855 section 3)."""
        return self.utf8 or self.utf8_accept

    def decode(self, raw: bytes) -> str:
        try:
            return decode_name(raw, self.utf8_names)
        except BadMailboxName as error:
            raise Bad(str(error)) from None

    def encode(self, name: str) -> bytes:
        return response.mailbox(name, self.utf8_names)

    async def mailbox(self, raw: bytes, *, code: str = "NONEXISTENT") -> Mailbox:
        name = self.decode(raw)
        found = await self.store.get_mailbox(self.account_id, name)
        if found is None:
            raise No(f"No mailbox {name}", code)
        return found
