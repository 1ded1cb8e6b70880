"""The command table: each command's handler and the states it is valid in (RFC 9051
section 3 and the command descriptions of section 6)."""

from __future__ import annotations

from protocols.imap import (
    append_command,
    auth_commands,
    compress,
    contexts,
    fetch_command,
    idle,
    list_command,
    mailbox_commands,
    message_commands,
    notify,
    search_command,
    sort_command,
)
from protocols.imap.session import ANY, AUTHENTICATED, NOT_AUTHENTICATED, SELECTED, Handler, State

HANDLERS: dict[str, tuple[Handler, frozenset[State]]] = {
    # any state (RFC 9051 section 6.1), ID (RFC 2971)
    "CAPABILITY": (auth_commands.capability, ANY),
    "NOOP": (auth_commands.noop, ANY),
    "LOGOUT": (auth_commands.logout, ANY),
    "ID": (auth_commands.id_command, ANY),
    # not authenticated (section 6.2)
    "STARTTLS": (auth_commands.starttls, NOT_AUTHENTICATED),
    "AUTHENTICATE": (auth_commands.authenticate, NOT_AUTHENTICATED),
    "LOGIN": (auth_commands.login, NOT_AUTHENTICATED),
    # authenticated (section 6.3), also valid when a mailbox is selected
    "ENABLE": (auth_commands.enable, AUTHENTICATED),
    "SELECT": (mailbox_commands.select, AUTHENTICATED),
    "EXAMINE": (mailbox_commands.select, AUTHENTICATED),
    "CREATE": (mailbox_commands.create, AUTHENTICATED),
    "DELETE": (mailbox_commands.delete, AUTHENTICATED),
    "RENAME": (mailbox_commands.rename, AUTHENTICATED),
    "SUBSCRIBE": (mailbox_commands.subscribe, AUTHENTICATED),
    "UNSUBSCRIBE": (mailbox_commands.subscribe, AUTHENTICATED),
    "LIST": (list_command.list_mailboxes, AUTHENTICATED),
    "LSUB": (list_command.lsub, AUTHENTICATED),
    "NAMESPACE": (mailbox_commands.namespace, AUTHENTICATED),
    "STATUS": (mailbox_commands.status, AUTHENTICATED),
    "APPEND": (append_command.append, AUTHENTICATED),
    "IDLE": (idle.idle, AUTHENTICATED),
    "GETQUOTA": (mailbox_commands.getquota, AUTHENTICATED),
    "GETQUOTAROOT": (mailbox_commands.getquotaroot, AUTHENTICATED),
    "SETQUOTA": (mailbox_commands.setquota, AUTHENTICATED),
    "COMPRESS": (compress.compress, AUTHENTICATED),  # RFC 4978
    "NOTIFY": (notify.notify, AUTHENTICATED),  # RFC 5465
    # selected (section 6.4)
    "CHECK": (message_commands.check, SELECTED),
    "CLOSE": (message_commands.close, SELECTED),
    "UNSELECT": (message_commands.unselect, SELECTED),
    "EXPUNGE": (message_commands.expunge, SELECTED),
    "SEARCH": (search_command.search, SELECTED),
    "FETCH": (fetch_command.fetch, SELECTED),
    "STORE": (message_commands.store, SELECTED),
    "COPY": (message_commands.copy, SELECTED),
    "MOVE": (message_commands.copy, SELECTED),
    "SORT": (sort_command.sort, SELECTED),  # RFC 5256
    "THREAD": (sort_command.thread, SELECTED),
    "CANCELUPDATE": (contexts.cancel_update, SELECTED),  # RFC 5267
}
