"""The SMTP/LMTP session state machine. Sans-IO, in the manner of h11.

``SessionMachine.receive(line)`` turns one command line into an event, or raises
``CommandError`` with the reply for a malformed or out-of-sequence command (counted toward
the bad-command limit). It checks only what the protocol itself fixes: the order of
commands and their syntax. Policy (who may send, which recipients exist) needs the
directory, so the I/O layer decides it and then tells the machine what it accepted with
``accept_mail``, ``accept_rcpt``, ``end_transaction`` and so on.

States (RFC 5321 4.1.4, RFC 2033 4.1)::

    CONNECTED --EHLO/HELO (LHLO for LMTP)--> READY --MAIL--> MAIL --RCPT--> MAIL (+1 rcpt)
    MAIL with recipients --DATA / BDAT LAST--> READY        RSET, EHLO: back to READY
    any --STARTTLS--> CONNECTED (RFC 3207 4.2: everything known before TLS is forgotten)

Out-of-order commands get ``503 5.5.1``. DATA without an accepted recipient gets ``554``
(RFC 2920 3.1, so that a pipelined DATA after failed RCPTs does not start a transfer); DATA
after BDAT in one transaction gets ``503`` (RFC 3030 2). A BDAT that cannot be accepted
still announces how many octets follow: the event carries the refusal and the I/O layer
reads and drops the chunk before answering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from protocols.smtp import replies
from protocols.smtp.data import ChunkCollector
from protocols.smtp.replies import Reply, reply
from protocols.smtp.syntax import (
    CommandError,
    Mailbox,
    MailParameters,
    RcptParameters,
    decimal,
    mail_parameters,
    parse_command,
    parse_helo_domain,
    parse_path,
    rcpt_parameters,
)


class State(Enum):
    CONNECTED = "connected"  # greeted; EHLO/HELO (LHLO) not yet given
    READY = "ready"  # no transaction
    MAIL = "mail"  # a sender was accepted


# -- events -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    verb: str  # EHLO, HELO or LHLO
    domain: str

    @property
    def extended(self) -> bool:
        return self.verb != "HELO"


@dataclass(frozen=True, slots=True)
class MailFrom:
    sender: Mailbox | None  # None: the null reverse-path <>
    params: MailParameters


@dataclass(frozen=True, slots=True)
class RcptTo:
    recipient: Mailbox
    params: RcptParameters


@dataclass(frozen=True, slots=True)
class Data:
    pass


@dataclass(frozen=True, slots=True)
class Bdat:
    size: int
    last: bool
    refusal: Reply | None  # the chunk is read and dropped, then this is the answer


@dataclass(frozen=True, slots=True)
class Auth:
    mechanism: str
    initial_response: str | None  # as sent (base64 or "="); None when absent


@dataclass(frozen=True, slots=True)
class Simple:
    """A command the I/O layer answers without arguments: RSET, NOOP, QUIT, VRFY, HELP,
    STARTTLS."""

    verb: str


Event = Hello | MailFrom | RcptTo | Data | Bdat | Auth | Simple


# -- the transaction ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AcceptedRecipient:
    mailbox: Mailbox
    params: RcptParameters
    report_kind: str | None = None  # "dsn"/"arf" for an oob/fbl domain: recorded, not delivered
    resolution: Any = None  # the directory's answer at RCPT time, handed on to delivery


@dataclass
class Transaction:
    sender: Mailbox | None
    params: MailParameters
    recipients: list[AcceptedRecipient] = field(default_factory=list)
    chunks: ChunkCollector | None = None  # set by the first BDAT

    @property
    def mail_from(self) -> str:
        return self.sender.address if self.sender is not None else ""


class SessionMachine:
    """One session's protocol state. See the module docstring."""

    def __init__(self, *, lmtp: bool) -> None:
        self.lmtp = lmtp
        self.state = State.CONNECTED
        self.hello: Hello | None = None
        self.transaction: Transaction | None = None
        self.bad_commands = 0
        self.messages = 0  # transactions that reached the end of their content

    def receive(self, line: bytes) -> Event:
        """One command line (with its line end) -> an event. Raises CommandError."""
        try:
            command = parse_command(line)
            handler = self._handlers.get(command.verb)
            if handler is None:
                if command.verb == "EXPN":
                    raise CommandError(replies.NOT_IMPLEMENTED)
                raise CommandError(replies.UNRECOGNIZED)
            return handler(self, command.argument)
        except CommandError:
            self.bad_commands += 1
            raise

    def count_bad_command(self) -> None:
        """A bad line the machine did not see (too long to be read)."""
        self.bad_commands += 1

    # -- what the I/O layer accepted --------------------------------------------------------

    def accept_hello(self, hello: Hello) -> None:
        self.hello = hello
        self.transaction = None
        self.state = State.READY

    def accept_mail(self, mail: MailFrom) -> None:
        self.transaction = Transaction(mail.sender, mail.params)
        self.state = State.MAIL

    def accept_rcpt(
        self, rcpt: RcptTo, report_kind: str | None = None, resolution: Any = None
    ) -> None:
        assert self.transaction is not None
        self.transaction.recipients.append(
            AcceptedRecipient(rcpt.recipient, rcpt.params, report_kind, resolution)
        )

    def reset(self) -> None:
        """RSET, or a transaction that failed: back to READY (or CONNECTED)."""
        self.transaction = None
        if self.state is State.MAIL:
            self.state = State.READY

    def end_transaction(self) -> None:
        """The content of a transaction was received (whatever became of it)."""
        self.messages += 1
        self.reset()

    def restart(self) -> None:
        """After STARTTLS: forget the hello and any transaction (RFC 3207 4.2)."""
        self.hello = None
        self.transaction = None
        self.state = State.CONNECTED

    # -- commands ---------------------------------------------------------------------------

    def _hello(self, verb: str, argument: str) -> Hello:
        if (verb == "LHLO") != self.lmtp:
            raise CommandError(replies.UNRECOGNIZED)
        return Hello(verb, parse_helo_domain(argument))

    def _mail(self, argument: str) -> MailFrom:
        if self.state is State.CONNECTED:
            raise CommandError(replies.NO_HELLO)
        if self.state is State.MAIL:
            raise CommandError(replies.NESTED_MAIL)
        path = _after_keyword(argument, "FROM:")
        sender, rest = parse_path(path, sender=True)
        return MailFrom(sender, mail_parameters(_parameters_text(rest)))

    def _rcpt(self, argument: str) -> RcptTo:
        if self.state is not State.MAIL:
            raise CommandError(replies.NO_HELLO if self.hello is None else replies.NO_MAIL)
        path = _after_keyword(argument, "TO:")
        recipient, rest = parse_path(path, sender=False)
        assert recipient is not None
        return RcptTo(recipient, rcpt_parameters(_parameters_text(rest)))

    def _data(self, argument: str) -> Data:
        if argument.strip():
            raise CommandError(reply(501, "5.5.4", "DATA takes no arguments"))
        transaction = self.transaction
        if transaction is None:
            raise CommandError(replies.NO_HELLO if self.hello is None else replies.NO_MAIL)
        if transaction.chunks is not None:
            raise CommandError(replies.MIXED_BDAT)
        if not transaction.recipients:
            raise CommandError(replies.NO_VALID_RCPT)
        return Data()

    def _bdat(self, argument: str) -> Bdat:
        parts = argument.split()
        size = decimal(parts[0], 18) if 1 <= len(parts) <= 2 else None
        if size is None or (len(parts) == 2 and parts[1].upper() != "LAST"):
            raise CommandError(reply(501, "5.5.4", "Syntax: BDAT size [LAST]"))
        last = len(parts) == 2
        refusal = None
        if self.transaction is None:
            refusal = replies.NO_HELLO if self.hello is None else replies.NO_MAIL
        elif not self.transaction.recipients:
            refusal = replies.NO_VALID_RCPT
        if refusal is not None:
            self.bad_commands += 1
        return Bdat(size, last, refusal)

    def _auth(self, argument: str) -> Auth:
        if self.lmtp:
            raise CommandError(replies.UNRECOGNIZED)
        if self.hello is None:
            raise CommandError(replies.NO_HELLO)
        if self.transaction is not None:
            raise CommandError(replies.AUTH_IN_TRANSACTION)
        parts = argument.split()
        if not 1 <= len(parts) <= 2:
            raise CommandError(reply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]"))
        return Auth(parts[0].upper(), parts[1] if len(parts) == 2 else None)

    def _starttls(self, argument: str) -> Simple:
        if argument.strip():
            raise CommandError(reply(501, "5.5.4", "STARTTLS takes no arguments"))
        if self.hello is None:
            raise CommandError(replies.NO_HELLO)
        return Simple("STARTTLS")

    def _simple(self, verb: str, argument: str) -> Simple:
        if verb in ("RSET", "QUIT") and argument.strip():
            raise CommandError(reply(501, "5.5.4", f"{verb} takes no arguments"))
        if verb == "VRFY" and not argument.strip():
            raise CommandError(reply(501, "5.5.4", "Syntax: VRFY address"))
        return Simple(verb)

    _handlers = {
        "EHLO": lambda self, arg: self._hello("EHLO", arg),
        "HELO": lambda self, arg: self._hello("HELO", arg),
        "LHLO": lambda self, arg: self._hello("LHLO", arg),
        "MAIL": _mail,
        "RCPT": _rcpt,
        "DATA": _data,
        "BDAT": _bdat,
        "AUTH": _auth,
        "STARTTLS": _starttls,
        "RSET": lambda self, arg: self._simple("RSET", arg),
        "NOOP": lambda self, arg: self._simple("NOOP", arg),
        "QUIT": lambda self, arg: self._simple("QUIT", arg),
        "VRFY": lambda self, arg: self._simple("VRFY", arg),
        "HELP": lambda self, arg: self._simple("HELP", arg),
    }


def _after_keyword(argument: str, keyword: str) -> str:
    """``FROM:<a@b>`` -> ``<a@b>``; a space after the colon is tolerated, as most servers do."""
    if argument[: len(keyword)].upper() != keyword:
        raise CommandError(reply(501, "5.5.4", f"Syntax: expected {keyword}<address>"))
    return argument[len(keyword) :].lstrip(" ")


def _parameters_text(rest: str) -> str:
    if rest and not rest.startswith(" "):
        raise CommandError(reply(501, "5.5.4", "Syntax: a space must follow the address"))
    return rest
