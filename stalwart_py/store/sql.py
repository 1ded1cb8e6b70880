"""The store's SQL, shared by both backends.

SQLite and PostgreSQL run the same mixins (``sqlite_*.py``, named for the dialect they were
written in; PostgreSQL gets them through ``pg_dialect``). A backend subclasses ``SqlStore``
and adds its engine, its opening and closing, and its overrides where the dialects part.
"""

from __future__ import annotations

from stalwart_py.store.base import Store
from stalwart_py.store.sqlite_accounts import AccountsMixin
from stalwart_py.store.sqlite_app_passwords import AppPasswordsMixin
from stalwart_py.store.sqlite_append import AppendMixin
from stalwart_py.store.sqlite_imap import ImapMixin
from stalwart_py.store.sqlite_junk import JunkMixin
from stalwart_py.store.sqlite_mail import MailMixin
from stalwart_py.store.sqlite_queue import QueueMixin
from stalwart_py.store.sqlite_shared_state import SharedStateMixin
from stalwart_py.store.sqlite_sieve import SieveMixin
from stalwart_py.store.sqlite_sieve_global import GlobalScriptsMixin
from stalwart_py.store.sqlite_sort import SortMixin
from stalwart_py.store.sqlite_tls import OutboundTLSMixin
from stalwart_py.store.sqlite_totp import TotpMixin
from stalwart_py.store.sqlite_web_sessions import WebSessionsMixin


class SqlStore(
    AccountsMixin,
    AppendMixin,
    AppPasswordsMixin,
    GlobalScriptsMixin,
    ImapMixin,
    JunkMixin,
    MailMixin,
    OutboundTLSMixin,
    QueueMixin,
    SharedStateMixin,
    SieveMixin,
    SortMixin,
    TotpMixin,
    WebSessionsMixin,
    Store,
):
    """Every store method written once in SQL; see the module docstring."""
