"""APPEND (RFC 9051 section 6.3.12) with MULTIAPPEND (RFC 3502), CATENATE (RFC 4469) and
the UTF8 form of UTF8=ACCEPT (RFC 6855 section 4); UIDPLUS's APPENDUID (RFC 4315).

Every message of the command is checked and built first: flags, size, CATENATE parts
(``catenate.build``). Only then are they stored, in one store transaction
(``Store.append_many``): all or none, as RFC 3502 section 3 asks, and one ``APPENDUID
uidvalidity uid-set``. A failure in any message (too big, a bad URL, quota) stores nothing.

Sizes: each message at most ``imap.max-literal-size`` (APPENDLIMIT), all of them together
at most ``imap.max-append-size``, both ``NO [TOOBIG]``. The framing layer already refused
literals over these limits before reading them; this counts what CATENATE URLs add.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols.imap import catenate
from protocols.imap.append_syntax import Append
from protocols.imap.commands import Command
from protocols.imap.message_commands import check_flags
from protocols.imap.replies import No, Ok
from protocols.imap.sequence import format_set
from stalwart_py.store import NewMessage, QuotaExceeded

if TYPE_CHECKING:
    from protocols.imap.session import Session


async def append(session: Session, command: Command) -> Ok:
    args: Append = command.args
    mailbox = await session.mailbox(args.mailbox, code="TRYCREATE")
    settings = session.settings
    remaining = settings.max_append_size
    new: list[NewMessage] = []
    for message in args.messages:
        flags = check_flags(message.flags)
        budget = min(settings.max_literal_size, remaining)
        if message.data is not None:
            data = message.data
            if len(data) > budget:
                raise No("The message is too big", "TOOBIG")
        else:
            data = await catenate.build(session, message.parts, budget)
        if not data:
            raise No("An empty message cannot be appended")
        remaining -= len(data)
        when = message.internaldate.timestamp() if message.internaldate is not None else None
        new.append(NewMessage(data, flags, when))
    try:
        infos = await session.store.append_many(mailbox.id, new)
    except QuotaExceeded as error:
        raise No(str(error) or "Quota exceeded", "OVERQUOTA") from None
    uids = format_set(info.uid for info in infos)
    return Ok(code=f"APPENDUID {mailbox.uidvalidity} {uids}")
