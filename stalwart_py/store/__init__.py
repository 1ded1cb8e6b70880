"""The mail store: accounts, mailboxes, messages, Sieve scripts, the outbound queue.

Everything outside this package uses the ``Store`` interface (``base.py``) and the records of
``model.py``; ``open_store`` picks the backend named by ``[storage] backend``.
"""

from __future__ import annotations

from pathlib import Path

from stalwart_py.config import StorageSettings
from stalwart_py.store.base import UNCHANGED, FlagMode, Store
from stalwart_py.store.change_hub import ChangeHub, MailboxWatch
from stalwart_py.store.model import (
    FLAG_NAMES,
    MAILBOX_DELIMITER,
    SPECIAL_USE_MAILBOXES,
    Account,
    Alias,
    AlreadyExists,
    AppPassword,
    AppPasswordCredentials,
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
    Totp,
    WebSession,
)


def _read_password_file(path: Path) -> str:
    """The first line of ``[storage] password-file``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StoreError(
            f"cannot read storage.password-file {path}: {exc.strerror or exc}"
        ) from None
    return text.splitlines()[0] if text else ""


def create_store(settings: StorageSettings) -> Store:
    """The configured backend, not yet opened."""
    from stalwart_py.store.blobstore import create_blob_backend

    blobs = create_blob_backend(settings.blob, settings.data_dir)
    if settings.backend == "sqlite":
        from stalwart_py.store.sqlite import SqliteStore

        return SqliteStore(
            settings.data_dir, blob_backend=blobs, blob_cache_size=settings.blob.cache_size
        )
    if settings.backend == "postgresql":
        assert settings.url is not None  # StorageSettings checked it
        password = None
        if settings.password_file is not None:
            password = _read_password_file(settings.password_file)
        # Imported here: psycopg is an optional dependency (the "postgresql" extra).
        try:
            from stalwart_py.store.postgresql import PostgresStore
        except ImportError as exc:
            raise StoreError(
                f'backend "postgresql" needs psycopg: pip install "stalwart-py[postgresql]" ({exc})'
            ) from None
        return PostgresStore(
            settings.url,
            settings.data_dir,
            password=password,
            readers=settings.pool_size,
            statement_timeout=settings.statement_timeout,
            blob_backend=blobs,
            blob_cache_size=settings.blob.cache_size,
        )
    raise ValueError(f"unknown storage backend {settings.backend!r}")


__all__ = [
    "FLAG_NAMES",
    "MAILBOX_DELIMITER",
    "SPECIAL_USE_MAILBOXES",
    "UNCHANGED",
    "Account",
    "Alias",
    "AlreadyExists",
    "AppPassword",
    "AppPasswordCredentials",
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
    "Totp",
    "WebSession",
    "create_store",
]
