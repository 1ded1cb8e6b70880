"""``SieveFilter``: the delivery pipeline's message filter, running each account's active
Sieve script (``stalwart_py.delivery.MessageFilter``).

For one message and one local account:

1. The active script is read from the store; none means keep. Compiled scripts are cached
   by their text, so a script is parsed once however many messages it filters.
2. The personal and global scripts it may ``include`` (transitively) and, when it uses
   ``mailboxexists``, the account's mailbox names are fetched; then the interpreter runs
   without I/O.
3. The outcome becomes a ``Disposition``: ``keep`` and the implicit keep file into INBOX,
   ``fileinto`` into its mailbox (INBOX when it does not exist and ``:create`` was not
   given: the store does that), each mailbox once with the union of the flags asked for;
   ``redirect`` addresses go to the outbound queue; ``reject``/``ereject`` refuse the
   message for this account (550 5.7.1); ``discard`` and nothing else files nothing.
4. A vacation reply is built when the rules of ``vacation.py`` allow it and the store
   confirms no reply went to that sender within the period.

Any error (a runtime error, a limit, a broken script, the store) is logged with the account
and the message keeps its implicit keep: mail is never lost to a filter.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from stalwart_py.delivery import KEEP, Disposition, Envelope, FileInto, Outgoing
from stalwart_py.directory import Directory
from stalwart_py.metrics import Metrics
from stalwart_py.sieve import ext_delivery
from stalwart_py.sieve import include as include_rules
from stalwart_py.sieve import notify as notify_rules
from stalwart_py.sieve import vacation as vacation_rules
from stalwart_py.sieve.actions import (
    Discard,
    Keep,
    Limits,
    Notify,
    Outcome,
    Redirect,
    Reject,
    SieveRuntimeError,
    Vacation,
)
from stalwart_py.sieve.actions import FileInto as FileIntoAction
from stalwart_py.sieve.interpreter import Environment, Interpreter
from stalwart_py.sieve.lexer import SieveSyntaxError
from stalwart_py.sieve.message import MessageView
from stalwart_py.sieve.validate import Script, parse_script
from stalwart_py.store import Account, Store

log = logging.getLogger("stalwart_py.sieve")

CACHE_SIZE = 256  # compiled scripts kept, by text
MAX_REDIRECT_HOPS = 25  # Received fields past which redirect is refused (a loop, RFC 5228 4.2);
# stricter than the pipeline's own MAX_HOPS, which refuses the message itself
_REASON_UNSAFE = re.compile(r"[^\x20-\x7e]+")


class SieveFilter:
    def __init__(
        self,
        store: Store,
        directory: Directory,
        hostname: Callable[[], str],
        *,
        limits: Limits | None = None,
        metrics: Metrics | None = None,
        vacation_periods: Callable[[], tuple[float, float]] | None = None,
    ) -> None:
        """``vacation_periods`` gives the (minimum, maximum) vacation period in force
        (``[sieve.vacation]``, read at each delivery so that a reload applies)."""
        self.store = store
        self.directory = directory
        self.hostname = hostname
        self.limits = limits or Limits()
        self.vacation_periods = vacation_periods
        self._cache: OrderedDict[str, Script | SieveSyntaxError] = OrderedDict()
        self._runs = (
            metrics.counter("stalwart_sieve_runs", "Sieve scripts run at delivery", ["result"])
            if metrics is not None
            else None
        )

    def compile(self, text: str) -> Script:
        """The compiled script (cached by text); raises SieveSyntaxError."""
        cached = self._cache.get(text)
        if cached is None:
            try:
                cached = parse_script(text, max_size=self.limits.max_script_size)
            except SieveSyntaxError as exc:
                cached = exc
            self._cache[text] = cached
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(text)
        if isinstance(cached, SieveSyntaxError):
            raise cached
        return cached

    async def evaluate(
        self, account: Account, envelope: Envelope, recipient: str, message: bytes
    ) -> Disposition:
        try:
            stored = await self.store.active_script(account.id)
            if stored is None:
                return KEEP
            script = self.compile(stored.body)
            includes = await self._includes(account.id, script)
            mailboxes: frozenset[str] = frozenset()
            if script.uses_mailboxes or any(s.uses_mailboxes for s in includes.values()):
                mailboxes = frozenset(m.name for m in await self.store.list_mailboxes(account.id))
            view = MessageView(message, max_body=self.limits.max_body)
            environment = Environment(
                view,
                envelope.mail_from,
                recipient,
                mailboxes,
                self.directory.settings.subaddress_separator,
                ext_delivery.environment_items(self.hostname(), message),
            )
            limits = self.limits
            if self.vacation_periods is not None:
                low, high = self.vacation_periods()
                limits = replace(limits, vacation_min_period=low, vacation_max_period=high)
            outcome = await ext_delivery.run(
                lambda env: Interpreter(
                    script, env, limits=limits, includes=includes, own_key=stored.name
                ).run(),
                environment,
                self.store,
                account.id,
            )
            disposition = await self._disposition(account, envelope, recipient, view, outcome)
        except (SieveSyntaxError, SieveRuntimeError) as exc:
            log.warning("sieve script of %s failed, keeping the message: %s", account.address, exc)
            self._count("error")
            return KEEP
        except Exception:
            log.exception("sieve filtering failed for %s; keeping the message", account.address)
            self._count("error")
            return KEEP
        self._count("ok")
        return disposition

    def _count(self, result: str) -> None:
        if self._runs is not None:
            self._runs.labels(result).inc()

    async def _includes(self, account_id: int, script: Script) -> dict[str, Script]:
        """Every script reachable through include, personal and global (include.py),
        compiled (missing ones left out: the interpreter decides whether that is an error,
        per :optional)."""
        found: dict[str, Script] = {}
        pending = list(script.includes)
        while pending and len(found) < self.limits.max_includes:
            name = pending.pop()
            if name in found:
                continue
            stored = await include_rules.fetch(self.store, account_id, name)
            if stored is None:
                continue
            found[name] = included = self.compile(stored.body)
            pending.extend(included.includes - found.keys())
        return found

    async def _disposition(
        self,
        account: Account,
        envelope: Envelope,
        recipient: str,
        view: MessageView,
        outcome: Outcome,
    ) -> Disposition:
        files: dict[str, FileInto] = {}
        redirects: dict[str, str] = {}
        reject: str | None = None
        outgoing: list[Outgoing] = []
        notified: set[str] = set()  # RFC 5435 3.8: each recipient notified once

        def file(mailbox: str, flags: frozenset[str], create: bool) -> None:
            key = "INBOX" if mailbox.upper() == "INBOX" else mailbox
            previous = files.get(key)
            if previous is None:
                files[key] = FileInto(key, flags, create)
            else:  # RFC 5228 4.2: once per mailbox
                files[key] = FileInto(key, previous.flags | flags, previous.create or create)

        for action in outcome.actions:
            if isinstance(action, Keep):
                file("INBOX", action.flags, False)
            elif isinstance(action, FileIntoAction):
                file(action.mailbox, action.flags, action.create)
            elif isinstance(action, Redirect):
                redirects.setdefault(action.address.lower(), action.address)
            elif isinstance(action, Reject):
                reject = safe_reason(action.reason)
            elif isinstance(action, Vacation):
                reply = await self._vacation(account, envelope, recipient, view, action)
                if reply is not None:
                    outgoing.append(reply)
            elif isinstance(action, Notify):
                outgoing += await self._notify(account, envelope, view, action, notified)
            else:
                assert isinstance(action, Discard)
        if outcome.implicit_keep:
            file("INBOX", outcome.keep_flags, False)
        if redirects and len(view.raw_values("received")) >= MAX_REDIRECT_HOPS:
            raise SieveRuntimeError(
                f"not redirecting a message with {MAX_REDIRECT_HOPS} hops or more"
            )
        return Disposition(
            tuple(files.values()),
            tuple(redirects.values()),
            reject,
            tuple(outgoing),
            outcome.message,  # editheader's edits (RFC 5293 section 5)
            ext_delivery.recorder(self.store, account.id, outcome),  # duplicate (RFC 7352 3)
        )

    async def _vacation(
        self,
        account: Account,
        envelope: Envelope,
        recipient: str,
        view: MessageView,
        action: Vacation,
    ) -> Outgoing | None:
        sender = envelope.mail_from
        own = {recipient.lower(), account.address.lower()}
        own.update(alias.lower() for alias in await self.store.aliases_of(account.address))
        own.update(address.strip().strip("<>").lower() for address in action.addresses)
        why_not = vacation_rules.refusal(view, sender, own)
        if why_not is not None:
            log.info("no vacation reply for %s to %s: %s", account.address, sender or "<>", why_not)
            return None
        if action.period > 0 and not await self.store.claim_vacation_reply(
            account.id, sender.lower(), action.handle, action.period
        ):
            log.info("no vacation reply for %s to %s: replied recently", account.address, sender)
            return None
        from_ = account.address
        if action.sender is not None:
            candidate = vacation_rules.header_address(action.sender)
            bare = candidate.rpartition("<")[2].rstrip(">") if "<" in candidate else candidate
            if await self.directory.owns(account, bare):
                from_ = candidate
            else:
                log.info("vacation :from %s is not an address of %s", bare, account.address)
        data = vacation_rules.build_reply(
            action, view, sender=from_, recipient=sender, hostname=self.hostname()
        )
        return Outgoing("", (sender,), data)

    async def _notify(
        self,
        account: Account,
        envelope: Envelope,
        view: MessageView,
        action: Notify,
        notified: set[str],
    ) -> list[Outgoing]:
        """RFC 5436: the notification, through the outbound queue, from the account's own
        address (bounces of a broken target come back to the user), unless section 2.7's
        rules say none."""
        why_not = notify_rules.refusal(view, envelope.mail_from)
        if why_not is not None:
            log.info("no notification for %s: %s", account.address, why_not)
            return []
        uri = notify_rules.parse_mailto(action.method)
        recipients = tuple(
            address for address in (*uri.to, *uri.cc) if address.lower() not in notified
        )
        if not recipients:
            return []
        notified.update(address.lower() for address in recipients)
        data = notify_rules.build(
            action,
            view,
            owner=account.address,
            sender=await _notify_from(self.directory, account, action),
            recipients=recipients,
            hostname=self.hostname(),
        )
        return [Outgoing(account.address, recipients, data)]


async def _notify_from(directory: Directory, account: Account, action: Notify) -> str:
    """The From of a notification: ``:from`` when the account owns it, else its address."""
    if action.sender is not None:
        bare = notify_rules.valid_address(action.sender)
        if bare is not None and await directory.owns(account, bare):
            return vacation_rules.header_address(action.sender)
        log.info("notify :from %s is not an address of %s", action.sender, account.address)
    return account.address


def safe_reason(reason: str) -> str:
    """A reject reason as one line of printable ASCII, for the SMTP/LMTP reply text."""
    text = " ".join(_REASON_UNSAFE.sub(" ", reason).split())
    return (text[:200] or "Message rejected by the recipient's filter").rstrip()
