"""The filter API: code that sees every message after DATA and before it is stored.

A filter is a class registered under the entry-point group ``stalwart_py.filters``, the way
protocols are registered under ``stalwart_py.protocols``::

    [project.entry-points."stalwart_py.filters"]
    subject-tag = "my_filters:SubjectTag"

    class SubjectTag(Filter):
        name = "subject-tag"              # the value of `type = "..."` in [filter."<id>"]
        settings = TagSettings            # a frozen dataclass: its keys in [filter."<id>"]

        async def check(self, message: FilterMessage) -> Verdict:
            if b"viagra" in message.content:
                return Reject(550, "5.7.1", "No thanks")
            return Accept(Changes(headers=(AddHeader("X-Tagged", "yes"),)))

A configured filter (``[filter."<id>"]``) is created once per configuration (and again after a
reload changed its table); ``check`` runs once per message, concurrently for many messages,
so it keeps no per-message state on ``self``. Its verdict is one of:

* ``Accept(changes)``: go on, with header, body and envelope changes applied first;
* ``Reject(code, enhanced, text)``: a 5xx reply to the client, nothing delivered;
* ``TempFail(code, enhanced, text)``: a 4xx reply, the client tries again later;
* ``Discard(reason)``: answered 250, silently dropped (a milter's SMFIR_DISCARD);
* ``Quarantine(reason, changes)``: delivered to the recipients' Junk folders.

Filters run in the order ``smtp.filters`` names them; each sees the message as the ones before
changed it; the first that rejects, tempfails or discards ends the chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # the connection module imports the configuration, which imports this
    from stalwart_py.connection import Address, TLSInfo


@dataclass(frozen=True, slots=True)
class AddHeader:
    """Append a field at the end of the header (SMFIR_ADDHEADER)."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class InsertHeader:
    """Insert a field before the ``index``-th field (0: at the top) (SMFIR_INSHEADER)."""

    index: int
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class ChangeHeader:
    """Replace the ``index``-th (from 1) field named ``name``; a value of None deletes it
    (SMFIR_CHGHEADER; a milter deletes with an empty value). No such field: the change adds
    it, as Sendmail and Postfix do."""

    name: str
    value: str | None
    index: int = 1


HeaderChange = AddHeader | InsertHeader | ChangeHeader


@dataclass(frozen=True, slots=True)
class Changes:
    """What a filter changes in a message it lets through."""

    headers: tuple[HeaderChange, ...] = ()
    body: bytes | None = None  # the new body (CRLF line ends), replacing the old one
    sender: str | None = None  # the new MAIL FROM address ("" for the null sender)
    add_recipients: tuple[str, ...] = ()
    remove_recipients: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(
            self.headers
            or self.body is not None
            or self.sender is not None
            or self.add_recipients
            or self.remove_recipients
        )


@dataclass(frozen=True, slots=True)
class Accept:
    changes: Changes = field(default_factory=Changes)


@dataclass(frozen=True, slots=True)
class Reject:
    code: int = 550
    enhanced: str = "5.7.1"
    text: str = "Message rejected by a filter"


@dataclass(frozen=True, slots=True)
class TempFail:
    code: int = 451
    enhanced: str = "4.7.1"
    text: str = "Message deferred by a filter, try again later"


@dataclass(frozen=True, slots=True)
class Discard:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Quarantine:
    reason: str
    changes: Changes = field(default_factory=Changes)


Verdict = Accept | Reject | TempFail | Discard | Quarantine


@dataclass(frozen=True, slots=True)
class FilterMessage:
    """Everything a filter sees of one message: the connection, the envelope, the result of
    our sender authentication (already in ``content`` as an ``Authentication-Results`` field
    when the message came from a stranger), and the message as bytes."""

    session_id: str
    listener: str  # the listener's id
    hostname: str  # our host name on that listener
    peer: Address
    local: Address
    tls: TLSInfo | None
    helo: str | None
    authenticated: str | None  # the account's address after SMTP AUTH
    sender: str  # MAIL FROM ("" for the null sender)
    recipients: tuple[str, ...]
    content: bytes  # header and body, CRLF line ends, as it will be stored
    sender_args: tuple[str, ...] = ()  # ESMTP parameters of MAIL FROM ("BODY=8BITMIME", ...)
    quarantine: str | None = None  # why our own checks already want it in Junk

    @property
    def header_and_body(self) -> tuple[bytes, bytes]:
        """The header block (with its final CRLF, without the empty line) and the body."""
        from stalwart_py.filters.changes import split_message

        return split_message(self.content)

    def parsed(self) -> Any:
        """The message as ``email.message.EmailMessage`` (parsed on each call: keep it)."""
        import email.policy
        from email.parser import BytesParser

        return BytesParser(policy=email.policy.default).parsebytes(self.content)


class FilterError(Exception):
    """A filter could not decide (its service down, a protocol error): ``on-error`` of the
    filter's table says whether the message is then deferred (451) or let through."""


class Filter:
    """The base class of a filter; see the module docstring.

    ``settings`` is a frozen dataclass whose fields are the filter's own keys in
    ``[filter."<id>"]`` (``snake_case`` fields, ``kebab-case`` keys), validated at load like
    every other key; None: the filter takes no keys of its own.
    """

    name: ClassVar[str]
    settings: ClassVar[type | None] = None

    def __init__(self, filter_id: str, settings: Any) -> None:
        self.id = filter_id
        self.config = settings

    async def check(self, message: FilterMessage) -> Verdict:  # pragma: no cover - abstract
        raise NotImplementedError

    async def aclose(self) -> None:
        """Called when the filter is replaced (a reload) or the server stops."""
