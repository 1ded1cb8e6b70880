"""The ``pop3.*`` table: merged from ``[server.pop3]``, the listener and its peer scopes.

```toml
[server.listener.pop3]
bind = ["[::]:110"]
protocol = "pop3"
pop3.auth.allow-plaintext = false   # USER/PASS, PLAIN and LOGIN only after STLS
pop3.idle-timeout = "10m"           # RFC 1939 section 3: the autologout timer, at least 10m
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from stalwart_py.plugin import Duration, Range

MIN_IDLE_TIMEOUT = 10 * 60.0  # RFC 1939 section 3


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """``pop3.auth.*``."""

    # Allow USER/PASS and the PLAIN and LOGIN mechanisms without TLS. Off (the default, as
    # for IMAP), CAPA lists neither USER nor them before STLS (RFC 2595 section 4), and
    # only SCRAM-SHA-256, which never sends the password, is offered.
    allow_plaintext: bool = False
    # Failed USER/PASS and AUTH attempts in one session before it is closed.
    max_failures: Annotated[int, Range(1, 100)] = 3


@dataclass(frozen=True, slots=True)
class Pop3Settings:
    """``pop3.*``; the defaults are the documentation."""

    auth: AuthSettings = field(default_factory=AuthSettings)
    # The autologout timer once authenticated; before login the listener's idle-timeout.
    idle_timeout: Duration = MIN_IDLE_TIMEOUT
    # Commands refused in a row as malformed or unknown before the session is closed.
    max_bad_commands: Annotated[int, Range(1, 1000)] = 10
    # Messages RETR sent (and not deleted) get \Seen at QUIT, so IMAP shows them read.
    mark_seen: bool = True

    def __post_init__(self) -> None:
        if self.idle_timeout < MIN_IDLE_TIMEOUT:
            raise ValueError("idle-timeout must be at least 10 minutes (RFC 1939 section 3)")
