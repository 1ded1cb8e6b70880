"""Running the configured filters over one message.

``Filters`` (one per server, ``ServerContext.filters``) creates each configured filter once
and again when a reload changes its table, and runs a listener's chain: in order, each filter
under its ``time-limit``; a filter that raises or runs out of time is handled by its
``on-error``: ``tempfail`` answers ``451 4.7.1`` (nothing is let through unfiltered),
``accept`` logs a line and goes on to the next filter as if it had accepted.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from stalwart_py.filters.api import (
    Accept,
    Changes,
    Discard,
    Filter,
    FilterMessage,
    Quarantine,
    Reject,
    TempFail,
    Verdict,
)
from stalwart_py.filters.changes import apply_changes
from stalwart_py.filters.config import FilterConfig, discover_filters
from stalwart_py.metrics import Metrics

log = logging.getLogger(__name__)

ERROR_TEMPFAIL = TempFail(451, "4.7.1", "Message could not be filtered, try again later")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the chain decided: ``stop`` (a Reject, TempFail or Discard, else None), the
    message as the filters left it (content and envelope), and why it goes to Junk."""

    message: FilterMessage
    stop: Reject | TempFail | Discard | None = None
    quarantine: str | None = None


class Filters:
    """The server's configured filters (see the module docstring)."""

    def __init__(
        self,
        configured: Callable[[], dict[str, FilterConfig]],
        metrics: Metrics,
        classes: dict[str, type[Filter]] | None = None,
    ) -> None:
        self._configured = configured
        self._classes = classes
        self._instances: dict[str, tuple[FilterConfig, Filter]] = {}
        self._retired: list[Filter] = []  # replaced by a reload: closed by the next run()
        self._verdicts = metrics.counter(
            "stalwart_filter_verdicts",
            "Filter verdicts by filter and verdict",
            ["filter", "verdict"],
        )
        self._seconds = metrics.counter(
            "stalwart_filter_seconds", "Seconds messages spent in each filter", ["filter"]
        )

    def instance(self, name: str) -> tuple[FilterConfig, Filter] | None:
        """The running filter ``name`` (created on first use after a (re)load), None when it
        is not configured or not enabled."""
        config = self._configured().get(name)
        if config is None or not config.common.enable:
            return None
        current = self._instances.get(name)
        if current is not None and current[0] == config:
            return current
        if self._classes is None:
            self._classes = discover_filters()
        instance = self._classes[config.common.type](name, config.settings)
        self._instances[name] = (config, instance)
        if current is not None:  # replaced by a reload: closed at the next message
            log.info("filter %s reconfigured", name)
            self._retired.append(current[1])
        return self._instances[name]

    async def run(
        self, names: Sequence[str], message: FilterMessage, session_log: Any = log
    ) -> Outcome:
        while self._retired:
            await _close(self._retired.pop())
        quarantine = message.quarantine
        for name in names:
            found = self.instance(name)
            if found is None:
                continue
            config, instance = found
            verdict = await self._check(config, instance, message, session_log)
            self._verdicts.labels(name, type(verdict).__name__.lower()).inc()
            match verdict:
                case Reject() | TempFail() | Discard():
                    session_log.info("filter %s: %s", name, _describe(verdict))
                    return Outcome(message, _normalized(verdict), quarantine)
                case Quarantine(reason, changes):
                    session_log.info("filter %s: quarantine: %s", name, reason)
                    quarantine = f"{name}: {reason}"
                    message = _changed(message, changes)
                case Accept(changes):
                    message = _changed(message, changes)
        return Outcome(message, None, quarantine)

    async def _check(
        self, config: FilterConfig, instance: Filter, message: FilterMessage, session_log: Any
    ) -> Verdict:
        started = anyio.current_time()
        try:
            with anyio.fail_after(config.common.time_limit):
                verdict = await instance.check(message)
            if not isinstance(verdict, Accept | Reject | TempFail | Discard | Quarantine):
                raise TypeError(f"check() returned {verdict!r}, not a verdict")
        except Exception as error:
            what = "timed out" if isinstance(error, TimeoutError) else f"failed: {error!r}"
            if config.common.on_error == "accept":
                session_log.warning("filter %s %s; on-error = accept: going on", config.id, what)
                return Accept()
            session_log.warning("filter %s %s; on-error = tempfail: 451", config.id, what)
            return ERROR_TEMPFAIL
        finally:
            self._seconds.labels(config.id).inc(anyio.current_time() - started)
        return verdict

    async def aclose(self) -> None:
        for _, instance in self._instances.values():
            await _close(instance)
        self._instances.clear()


async def _close(instance: Filter) -> None:
    try:
        await instance.aclose()
    except Exception:
        log.exception("closing filter %s failed", instance.id)


def _changed(message: FilterMessage, changes: Changes) -> FilterMessage:
    """The message with a filter's changes applied, envelope included."""
    if not changes:
        return message
    recipients = list(message.recipients)
    removed = {address.lower() for address in changes.remove_recipients}
    recipients = [r for r in recipients if r.lower() not in removed]
    for address in changes.add_recipients:
        if address.lower() not in (r.lower() for r in recipients):
            recipients.append(address)
    return dataclasses.replace(
        message,
        content=apply_changes(message.content, changes),
        sender=message.sender if changes.sender is None else changes.sender,
        recipients=tuple(recipients),
    )


def _normalized(verdict: Reject | TempFail | Discard) -> Reject | TempFail | Discard:
    """A reply code in the class the verdict promises (a filter's 250 reject is a 550)."""
    if isinstance(verdict, Reject) and not 500 <= verdict.code <= 599:
        return dataclasses.replace(verdict, code=550, enhanced="5.7.1")
    if isinstance(verdict, TempFail) and not 400 <= verdict.code <= 499:
        return dataclasses.replace(verdict, code=451, enhanced="4.7.1")
    return verdict


def _describe(verdict: Reject | TempFail | Discard) -> str:
    if isinstance(verdict, Discard):
        return f"discard {verdict.reason}".rstrip()
    return f"{verdict.code} {verdict.enhanced} {verdict.text}"
