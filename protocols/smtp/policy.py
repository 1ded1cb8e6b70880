"""Who may send what to whom: the MAIL and RCPT policy of the issue, never an open relay.

MAIL FROM (in this order):

* ``max-messages-per-connection`` reached: ``451 4.7.0`` (transient: reconnect).
* ``auth.require`` and no AUTH yet: ``530 5.7.0`` (RFC 4954 6).
* A SIZE parameter over ``max-message-size``: ``552 5.3.4`` (RFC 1870 6).
* A non-ASCII address without the SMTPUTF8 parameter: ``553 5.6.7`` (RFC 6531 3.6.1).
* An authenticated user may only use an address of theirs (the account, one of its aliases,
  or a subaddress of those, as the directory's ``owns`` says): else ``553 5.7.1``.

RCPT TO:

* ``max-recipients-per-message`` reached: ``452 4.5.3`` (RFC 5321 4.5.3.1.10).
* A non-ASCII address in a transaction without SMTPUTF8: ``553 5.6.7``.
* An ``oob`` or ``fbl`` domain: accepted; the message is recorded as a report there.
* A local domain: accepted when the directory resolves the address to an account or an alias
  target (subaddresses and catch-alls included), else ``550 5.1.1``.
* Any other domain: accepted only from an authenticated user, from a ``relay-hosts`` address
  (a Unix-socket peer is local and counts as one), or when the domain has ``relay = true``;
  else ``554 5.7.1``, which the session logs at INFO as ``relay denied from <address>:
  sender=<...> recipient=<...>`` (for fail2ban, like the directory's ``login failed`` line).
  LMTP never relays: ``550 5.1.2``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols.smtp import replies
from protocols.smtp.machine import MailFrom, RcptTo, Transaction
from protocols.smtp.replies import Reply
from protocols.smtp.settings import LmtpSettings, SmtpSettings, resolve_domain
from stalwart_py.connection import Address
from stalwart_py.store import Account

if TYPE_CHECKING:
    from stalwart_py.directory import Directory, Resolution


def is_relay_host(settings: SmtpSettings, peer: Address) -> bool:
    """A ``relay-hosts`` address; a Unix-socket peer is on this machine and counts as one,
    a proxied client whose address the proxy did not tell never does."""
    ip = peer.ip
    if ip is None:
        return peer.is_unix
    mapped = getattr(ip, "ipv4_mapped", None)
    candidates = (ip, mapped) if mapped is not None else (ip,)
    return any(
        candidate.version == network.version and candidate in network
        for candidate in candidates
        for network in settings.relay_hosts
    )


async def check_sender(
    directory: Directory,
    settings: LmtpSettings,
    mail: MailFrom,
    *,
    account: Account | None,
    messages: int,
) -> Reply | None:
    """None when the sender is acceptable, else the refusal."""
    if messages >= settings.max_messages_per_connection:
        return replies.TOO_MANY_MESSAGES
    auth_required = isinstance(settings, SmtpSettings) and settings.auth.require
    if auth_required and account is None:
        return replies.AUTH_REQUIRED
    if mail.params.size is not None and mail.params.size > settings.max_message_size:
        return replies.TOO_BIG
    sender = mail.sender
    if sender is not None and sender.utf8 and not mail.params.smtputf8:
        return replies.NON_ASCII_NEEDS_SMTPUTF8
    if account is not None and (
        sender is None or not await directory.owns(account, sender.address)
    ):
        return replies.NOT_OWNER
    return None


async def check_recipient(
    directory: Directory,
    settings: LmtpSettings,
    transaction: Transaction,
    rcpt: RcptTo,
    *,
    may_relay: bool,
    bare_postmaster: bool = False,
) -> tuple[Reply | None, str | None, Resolution | None]:
    """(None, report kind or None, the directory's answer) when the recipient is accepted,
    else (refusal, None, None). ``bare_postmaster``: the client wrote ``<Postmaster>``, now
    ``rcpt`` names postmaster at our host name; accepted from anyone (RFC 5321 4.5.1)."""
    if len(transaction.recipients) >= settings.max_recipients_per_message:
        return replies.TOO_MANY_RECIPIENTS, None, None
    mailbox = rcpt.recipient
    if mailbox.utf8 and not transaction.params.smtputf8:
        return replies.NON_ASCII_NEEDS_SMTPUTF8, None, None
    domain, address = mailbox.domain, mailbox.address
    if bare_postmaster:
        resolution = await directory.resolve_postmaster(domain)
        if resolution.exists:
            return None, None, resolution
        return replies.NO_SUCH_USER, None, None
    if isinstance(settings, SmtpSettings) and settings.domains:
        options = resolve_domain(settings.domains, domain)
        if options.report_kind is not None:
            return None, options.report_kind, None
    else:
        options = None
    resolution = await directory.resolve(address)
    if resolution.local_domain:
        if resolution.exists:
            return None, None, resolution
        return replies.NO_SUCH_USER, None, None
    if not isinstance(settings, SmtpSettings):
        return replies.NOT_LOCAL, None, None
    if may_relay or (options is not None and options.relay):
        return None, None, resolution
    return replies.RELAY_DENIED, None, None
