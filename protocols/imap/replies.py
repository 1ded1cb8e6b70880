"""How a command handler ends: a tagged OK, NO or BAD (RFC 9051 section 7.1), with an
optional response code (RFC 9051 section 7.1 and RFC 5530)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Ok:
    text: str = ""
    code: str | None = None


class Answered(Ok):
    """A handler that wrote its own tagged reply (STARTTLS must, before the handshake)."""


ANSWERED = Answered()


class No(Exception):
    """The command was understood but failed: ``tag NO [code] text``."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class Bad(Exception):
    """The command was not acceptable (syntax, state): ``tag BAD [code] text``."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class Logout(Exception):
    """End the session after what has been written (a BYE has been sent)."""
