"""Filing quarantined mail: the recipient's Junk mailbox, with the ``$Junk`` keyword.

A checked message is quarantined when the sender domain's DMARC policy says
``p=quarantine`` (and no trusted ARC chain overrides it) or a DNS blocklist lists it with
``[spam.dnsbl] action = "junk"``. The delivery pipeline still runs the recipient's Sieve
script; then every copy the script keeps in INBOX (its implicit or explicit ``keep``) goes
to the Junk mailbox instead, flagged ``$Junk``. Copies the script files elsewhere stay where it
put them (Stalwart's behaviour: a user's own rule wins), and a script that discards or
redirects is obeyed. A script can see why from our ``Authentication-Results`` header.

The Junk mailbox is the account's mailbox with the special use ``\\Junk`` (RFC 6154), whatever
its name; when the account has none, ``Junk`` is created with that special use, subscribed.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from stalwart_py.store import AlreadyExists, Store

if TYPE_CHECKING:  # delivery imports this module
    from stalwart_py.delivery import Disposition

JUNK_KEYWORD = "$Junk"
JUNK_SPECIAL_USE = "\\Junk"
DEFAULT_NAME = "Junk"


async def junk_mailbox(store: Store, account_id: int) -> str:
    """The name of the account's ``\\Junk`` mailbox, created when it has none."""
    for mailbox in await store.list_mailboxes(account_id):
        if mailbox.special_use == JUNK_SPECIAL_USE:
            return mailbox.name
    try:
        await store.create_mailbox(account_id, DEFAULT_NAME, JUNK_SPECIAL_USE)
    except AlreadyExists:  # a "Junk" without the special use (or created just now): use it
        return DEFAULT_NAME
    await store.subscribe(account_id, DEFAULT_NAME, True)
    return DEFAULT_NAME


def quarantined(disposition: Disposition, junk: str) -> Disposition:
    """``disposition`` with its INBOX copies moved to ``junk`` and flagged ``$Junk``."""
    files = tuple(
        dataclasses.replace(target, mailbox=junk, flags=target.flags | {JUNK_KEYWORD}, create=True)
        if target.mailbox.upper() == "INBOX"
        else target
        for target in disposition.file
    )
    return dataclasses.replace(disposition, file=files)
