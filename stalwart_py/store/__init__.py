"""The mail store: accounts, mailboxes, messages, Sieve scripts, the outbound queue.

Everything outside this package uses the ``Store`` interface (``base.py``) and the records of
``model.py``; ``open_store`` picks the backend named by ``[storage] backend``.
"""

from __future__ import annotations

from stalwart_py.config import StorageSettings
from stalwart_py.store.base import UNCHANGED, FlagMode, Store
from stalwart_py.store.engine import ChangeHub, MailboxWatch
from stalwart_py.store.model import (
    FLAG_NAMES,
    MAILBOX_DELIMITER,
    SPECIAL_USE_MAILBOXES,
    Account,
    Alias,
    AlreadyExists,
    Credentials,
    DeliveryOutcome,
    Domain,
    FlagUpdate,
    LocalDelivery,
    Mailbox,
    MailboxChanges,
    MailboxCounts,
    MessageInfo,
    NewMessage,
    NotFound,
    OutboundMessage,
    QueuedRecipient,
    QueueEntry,
    QueueRecipientState,
    QuotaExceeded,
    RecipientUpdate,
    Report,
    SchemaTooNew,
    SieveScript,
    StoredMessage,
    StoreError,
)


def create_store(settings: StorageSettings) -> Store:
    """The configured backend, not yet opened."""
    from stalwart_py.store.sqlite import SqliteStore

    if settings.backend == "sqlite":
        return SqliteStore(settings.data_dir)
    raise ValueError(f"unknown storage backend {settings.backend!r}")


__all__ = [
    "FLAG_NAMES",
    "MAILBOX_DELIMITER",
    "SPECIAL_USE_MAILBOXES",
    "UNCHANGED",
    "Account",
    "Alias",
    "AlreadyExists",
    "ChangeHub",
    "Credentials",
    "DeliveryOutcome",
    "Domain",
    "FlagMode",
    "FlagUpdate",
    "LocalDelivery",
    "Mailbox",
    "MailboxChanges",
    "MailboxCounts",
    "MailboxWatch",
    "MessageInfo",
    "NewMessage",
    "NotFound",
    "OutboundMessage",
    "QueueEntry",
    "QueueRecipientState",
    "QueuedRecipient",
    "QuotaExceeded",
    "RecipientUpdate",
    "Report",
    "SchemaTooNew",
    "SieveScript",
    "Store",
    "StoreError",
    "StoredMessage",
    "create_store",
]
