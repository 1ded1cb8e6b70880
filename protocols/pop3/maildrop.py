"""The maildrop of a POP3 session: INBOX as it was at login, and its exclusive lock.

RFC 1939 section 4: once authenticated, the server locks the maildrop and numbers its
messages 1 to n; the numbers stay fixed for the session (a message deleted with DELE keeps
its number, and is refused by the commands that follow). Deletions are only marks until
QUIT, which enters the UPDATE state and removes the marked messages (section 6); RSET
clears the marks; a session that ends without QUIT removes nothing.

Unique ids (UIDL, RFC 1939 section 7) are ``<UIDVALIDITY>.<UID>`` of the store: the same
message has the same id in every session, a message never gets the id of another (UIDs are
never reused while UIDVALIDITY holds), and IMAP and POP3 agree on which message is which.

The lock (``MaildropLock``) is an exclusive ``flock`` on a file per account under
``<data-dir>/pop3/locks/``: it holds between sessions of one process (each takes its own
open file description) and between the processes that share a data directory (the server's
workers), and it goes with its holder's file descriptor, so a process that dies releases it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from stalwart_py.plugin import MessageInfo


class MaildropError(Exception):
    """A message number a command cannot use: answered ``-ERR`` with this text."""


@dataclass(slots=True)
class Maildrop:
    """The messages of INBOX at login, by message number (1-based), and the deletion marks.
    Sizes (``octets``) are filled in by the session, which reads what it does not know."""

    mailbox_id: int
    uidvalidity: int
    messages: list[MessageInfo]
    deleted: set[int]
    sizes: dict[int, int]  # message number -> octets as RETR sends them
    retrieved: set[int]  # message numbers RETR sent (marked \\Seen at QUIT)

    @classmethod
    def snapshot(cls, mailbox_id: int, uidvalidity: int, messages: list[MessageInfo]) -> Maildrop:
        return cls(mailbox_id, uidvalidity, messages, set(), {}, set())

    def message(self, argument: str) -> tuple[int, MessageInfo]:
        """The message a ``msg`` argument names, unless it does not exist or is deleted."""
        if not (argument.isascii() and argument.isdigit()) or len(argument) > 10:
            raise MaildropError("a message number is a positive decimal number")
        number = int(argument)
        if not 1 <= number <= len(self.messages):
            raise MaildropError(f"no message {number}")
        if number in self.deleted:
            raise MaildropError(f"message {number} is deleted")
        return number, self.messages[number - 1]

    def live(self) -> list[int]:
        """The numbers of the messages not marked deleted."""
        return [n for n in range(1, len(self.messages) + 1) if n not in self.deleted]

    def unique_id(self, number: int) -> str:
        return f"{self.uidvalidity}.{self.messages[number - 1].uid}"

    def deleted_uids(self) -> list[int]:
        return sorted(self.messages[n - 1].uid for n in self.deleted)

    def retrieved_uids(self) -> list[int]:
        return sorted(self.messages[n - 1].uid for n in self.retrieved - self.deleted)


class MaildropLock:
    """An exclusive lock on one account's maildrop; see the module docstring."""

    def __init__(self, directory: Path, account_id: int) -> None:
        self.path = directory / f"{account_id}.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another session holds it."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None
