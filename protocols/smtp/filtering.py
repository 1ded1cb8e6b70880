"""The listener's filters (``smtp.filters``, ``lmtp.filters``) at the end of DATA.

They run after our own checks of mail from strangers (intake.py), so they see the message with
our ``Authentication-Results`` field (what OpenDMARC and rspamd read), and before delivery.
Their answer becomes the transaction's:

* a reject or tempfail: that reply (LMTP: once per recipient), nothing delivered;
* a discard: ``250`` and nothing delivered (the message is dropped on purpose, as Postfix does
  for a milter's SMFIR_DISCARD), with a log line;
* an accept: the message as changed, a changed sender, recipients removed (a removal of every
  recipient is a discard) and added; an added recipient goes through the same recipient policy
  as one given in RCPT TO (an unknown local one is logged and left out);
* a quarantine: delivered to Junk, with the filter's reason in the log.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.smtp import policy
from protocols.smtp.machine import AcceptedRecipient, RcptTo, Transaction
from protocols.smtp.replies import Reply, reply
from protocols.smtp.syntax import CommandError, Mailbox, RcptParameters, parse_mailbox
from stalwart_py.filters.api import Discard, FilterMessage, Reject, TempFail
from stalwart_py.plugin import Connection


@dataclass(frozen=True, slots=True)
class Filtered:
    """The message to deliver after the filters, and why it goes to Junk (None: it does not)."""

    message: bytes
    quarantine: str | None


DISCARDED = reply(250, "2.0.0", "Message accepted")  # and dropped: a filter discarded it


async def run_filters(
    conn: Connection,
    names: tuple[str, ...],
    transaction: Transaction,
    message: bytes,
    *,
    helo: str | None,
    authenticated: str | None,
    hostname: str,
    quarantine: str | None,
) -> Reply | Filtered:
    """Run the chain; a Reply ends the transaction (``DISCARDED`` delivers nothing)."""
    params = transaction.params
    sender_args = tuple(
        f"{key}={value}"
        for key, value in (("BODY", params.body), ("SIZE", params.size))
        if value is not None
    )
    facts = FilterMessage(
        session_id=conn.session_id,
        listener=conn.listener.id,
        hostname=hostname,
        peer=conn.peer,
        local=conn.local,
        tls=conn.tls,
        helo=helo,
        authenticated=authenticated,
        sender=transaction.mail_from,
        recipients=tuple(r.mailbox.address for r in transaction.recipients),
        content=message,
        sender_args=sender_args,
        quarantine=quarantine,
    )
    outcome = await conn.server.filters.run(names, facts, conn.log)
    match outcome.stop:
        case Reject(code, enhanced, text) | TempFail(code, enhanced, text):
            return reply(code, enhanced, text)
        case Discard():
            conn.log.info("message discarded by a filter, nothing delivered")
            return DISCARDED
    changed = outcome.message
    if changed.sender != facts.sender:
        _change_sender(conn, transaction, changed.sender)
    if changed.recipients != facts.recipients:
        await _change_recipients(conn, transaction, changed.recipients)
        if not transaction.recipients:
            conn.log.info("a filter removed every recipient, nothing delivered")
            return DISCARDED
    return Filtered(changed.content, outcome.quarantine)


def _mailbox(address: str) -> Mailbox | None:
    try:
        return parse_mailbox(address, reply(501, "5.1.3", "Bad address syntax"))
    except CommandError:
        return None


def _change_sender(conn: Connection, transaction: Transaction, address: str) -> None:
    mailbox = _mailbox(address) if address else None
    if address and mailbox is None:
        conn.log.warning("a filter's new sender <%s> is not an address: kept", address)
        return
    conn.log.info("a filter changed the sender to <%s>", address)
    transaction.sender = mailbox


async def _change_recipients(
    conn: Connection, transaction: Transaction, wanted: tuple[str, ...]
) -> None:
    keep = {address.lower() for address in wanted}
    before = transaction.recipients
    transaction.recipients = [r for r in before if r.mailbox.address.lower() in keep]
    for dropped in before:
        if dropped.mailbox.address.lower() not in keep:
            conn.log.info("a filter removed the recipient <%s>", dropped.mailbox.address)
    have = {r.mailbox.address.lower() for r in transaction.recipients}
    for address in wanted:
        if address.lower() in have:
            continue
        mailbox = _mailbox(address)
        if mailbox is None:
            conn.log.warning("a filter's new recipient <%s> is not an address: left out", address)
            continue
        rcpt = RcptTo(mailbox, RcptParameters())
        try:
            refusal, kind, resolution = await policy.check_recipient(
                conn.server.directory, conn.settings, transaction, rcpt, may_relay=True
            )
        except Exception:
            conn.log.exception("checking a filter's new recipient failed")
            continue
        if refusal is not None:
            conn.log.warning("a filter's new recipient <%s> refused: %s", address, refusal)
            continue
        transaction.recipients.append(AcceptedRecipient(mailbox, rcpt.params, kind, resolution))
        have.add(address.lower())
        conn.log.info("a filter added the recipient <%s>", address)
