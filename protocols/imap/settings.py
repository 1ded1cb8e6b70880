"""The ``imap.*`` table: merged from ``[server.imap]``, the listener and its peer scopes.

```toml
[server.listener.imap]
bind = ["*:143", "[::]:143"]
protocol = "imap"
imap.auth.allow-plaintext = false   # LOGIN and PLAIN only after STARTTLS
imap.idle-timeout = "30m"           # RFC 9051 section 5.4: at least 30 minutes
imap.max-literal-size = "50M"       # the largest message APPEND takes (APPENDLIMIT)
imap.max-append-size = "100M"       # all the messages of one (MULTI)APPEND together
imap.max-command-length = "64K"     # every other command, its literals included
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from stalwart_py.config.types import Duration, Range, Size

MIN_IDLE_TIMEOUT = 30 * 60.0  # RFC 9051 section 5.4


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """``imap.auth.*``."""

    # Allow LOGIN and the PLAIN and LOGIN mechanisms without TLS. Off, the server advertises
    # LOGINDISABLED before STARTTLS (RFC 9051 section 6.2.3) and only SCRAM-SHA-256, which
    # never sends the password.
    allow_plaintext: bool = False
    # Failed LOGIN/AUTHENTICATE attempts in one session before it is closed.
    max_failures: Annotated[int, Range(1, 100)] = 3


@dataclass(frozen=True, slots=True)
class ImapSettings:
    """``imap.*``; the defaults are the documentation."""

    auth: AuthSettings = field(default_factory=AuthSettings)
    # The autologout timer once authenticated, IDLE included. Before login the listener's
    # idle-timeout applies.
    idle_timeout: Duration = MIN_IDLE_TIMEOUT
    # The largest message APPEND takes (advertised as APPENDLIMIT); a bigger synchronizing
    # literal is refused with NO [TOOBIG] before it is sent.
    max_literal_size: Size = 50 * 1024 * 1024
    # All the messages of one APPEND together: MULTIAPPEND (RFC 3502) sends many in one
    # command and stores them in one transaction, CATENATE (RFC 4469) builds one from parts.
    # Over it: NO [TOOBIG] (or BYE [TOOBIG] for a non-synchronizing literal already sent).
    max_append_size: Size = 100 * 1024 * 1024
    max_command_length: Size = 64 * 1024  # every other command, its literals included
    # Commands answered BAD in a row before the session is closed: a client that speaks
    # something else is not kept talking forever.
    max_bad_commands: Annotated[int, Range(1, 1000)] = 20

    def __post_init__(self) -> None:
        if self.idle_timeout < MIN_IDLE_TIMEOUT:
            raise ValueError("idle-timeout must be at least 30 minutes (RFC 9051 section 5.4)")
        if self.max_command_length < 1024:
            raise ValueError("max-command-length must be at least 1K")
        if self.max_append_size < self.max_literal_size:
            raise ValueError("max-append-size must be at least max-literal-size")
