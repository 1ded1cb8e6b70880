"""SMTP replies (RFC 5321 4.2) with enhanced status codes (RFC 2034, RFC 3463).

A reply is a three-digit code, an enhanced status code ``class.subject.detail`` whose class
agrees with the code's first digit, and text. A multi-line reply repeats the code on every
line, with ``-`` after it on all but the last (RFC 5321 4.2.1)::

    250-mail.example.com
    250-PIPELINING
    250 SIZE 26214400

The EHLO reply and the greeting carry no enhanced code (RFC 2034 section 3: only replies to
commands after EHLO do); neither does the ``334`` of an AUTH exchange (RFC 4954).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    enhanced: str | None  # "2.1.0"; None for the greeting, EHLO and 334
    lines: tuple[str, ...]
    # The wire form, made once: most replies are module constants sent again and again.
    wire: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 599:
            raise ValueError(f"reply code {self.code} out of range")
        if self.enhanced is not None and not self.enhanced.startswith(str(self.code)[0] + "."):
            raise ValueError(f"enhanced code {self.enhanced} does not agree with {self.code}")
        object.__setattr__(self, "wire", self._format())

    @property
    def is_error(self) -> bool:
        return self.code >= 400

    @property
    def closes(self) -> bool:
        """421 means the server is closing the channel (RFC 5321 3.8)."""
        return self.code == 421

    def to_bytes(self) -> bytes:
        return self.wire

    def _format(self) -> bytes:
        prefix = f"{self.enhanced} " if self.enhanced else ""
        last = len(self.lines) - 1
        return "".join(
            f"{self.code}{' ' if index == last else '-'}{prefix}{line}\r\n"
            for index, line in enumerate(self.lines)
        ).encode("utf-8")

    def __str__(self) -> str:
        return self.to_bytes().decode("utf-8").rstrip("\r\n")


def reply(code: int, enhanced: str | None, *lines: str) -> Reply:
    # Text is ours, but a client's words (a bad address) may be quoted in it: never let a
    # CR or LF in it break the framing.
    clean = tuple(line.replace("\r", " ").replace("\n", " ") for line in lines)
    return Reply(code, enhanced, clean or ("",))


# Replies that do not depend on the session; each names the RFC rule behind it.
OK = reply(250, "2.0.0", "OK")
SENDER_OK = reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = reply(250, "2.1.5", "Recipient OK")
RESET = reply(250, "2.0.0", "Reset state")
BYE = reply(221, "2.0.0", "Bye")
VRFY = reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
HELP = reply(
    214,
    "2.0.0",
    "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
    "See RFC 5321",
)
START_DATA = reply(354, None, "End data with <CR><LF>.<CR><LF>")
START_TLS = reply(220, "2.0.0", "Ready to start TLS")
AUTH_OK = reply(235, "2.7.0", "Authentication successful")

UNRECOGNIZED = reply(500, "5.5.2", "Syntax error, command unrecognized")
LINE_TOO_LONG = reply(500, "5.5.2", "Line too long")
NOT_UTF8 = reply(500, "5.5.2", "Command is not valid UTF-8")
NO_HELLO = reply(503, "5.5.1", "Send EHLO first")
NO_MAIL = reply(503, "5.5.1", "Need MAIL command first")
NESTED_MAIL = reply(503, "5.5.1", "Sender already given")
NO_RCPT = reply(503, "5.5.1", "Need RCPT command first")
NO_VALID_RCPT = reply(554, "5.5.1", "No valid recipients")  # RFC 2920 3.1
MIXED_BDAT = reply(503, "5.5.1", "DATA cannot follow BDAT in one transaction")  # RFC 3030 2
TLS_ACTIVE = reply(503, "5.5.1", "TLS already active")
TLS_UNAVAILABLE = reply(454, "4.7.0", "TLS not available")
ALREADY_AUTHENTICATED = reply(503, "5.5.1", "Already authenticated")  # RFC 4954 4
AUTH_IN_TRANSACTION = reply(503, "5.5.1", "AUTH not permitted during a mail transaction")
AUTH_REQUIRED = reply(530, "5.7.0", "Authentication required")  # RFC 4954 6
ENCRYPTION_REQUIRED = reply(538, "5.7.11", "Encryption required for authentication")
AUTH_FAILED = reply(535, "5.7.8", "Authentication credentials invalid")  # RFC 4954 6
AUTH_ABORTED = reply(501, "5.0.0", "Authentication aborted")  # RFC 4954 4: the client's "*"
AUTH_THROTTLED = reply(454, "4.7.0", "Too many failed logins, try again later")
AUTH_DEFERRED = reply(454, "4.7.0", "Server busy, try again later")  # stalwart_py.hash_pool
UNKNOWN_MECHANISM = reply(504, "5.5.4", "Unrecognized authentication mechanism")
NOT_IMPLEMENTED = reply(502, "5.5.1", "Command not implemented")
TOO_MANY_RECIPIENTS = reply(452, "4.5.3", "Too many recipients")  # RFC 5321 4.5.3.1.10
TOO_MANY_MESSAGES = reply(
    451, "4.7.0", "Too many messages in this session, reconnect and try again"
)
TOO_BIG = reply(552, "5.3.4", "Message size exceeds fixed maximum message size")  # RFC 1870
NON_ASCII_NEEDS_SMTPUTF8 = reply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
BARE_LINE_END = reply(554, "5.6.0", "Message contains a bare CR or LF (RFC 5321 2.3.8)")
RELAY_DENIED = reply(554, "5.7.1", "Relay access denied")
NOT_OWNER = reply(553, "5.7.1", "Sender address not owned by the authenticated user")
NO_SUCH_USER = reply(550, "5.1.1", "No such user here")
NOT_LOCAL = reply(550, "5.1.2", "Domain not handled here, LMTP delivers to local domains only")
TEMPORARY_FAILURE = reply(451, "4.3.0", "Temporary local failure, try again later")
