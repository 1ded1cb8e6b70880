"""What the filter adds for environment (RFC 5183) and duplicate (RFC 7352): the environment
items of a delivery, and running a script that asks the store about duplicates.

The interpreter does no I/O, so a ``duplicate`` test whose key has not been looked up raises
``NeedDuplicate``; ``run`` looks the key up and runs the script again, until it finishes
(a script has few duplicate tests: at most ``MAX_LOOKUPS`` rounds). The rerun sees exactly
what the first run saw (the message, the clock frozen at the first run's start), so it takes
the same path up to the new test. ``recorder`` stores what a successful run saw, once the
delivery it decided succeeded.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable
from importlib import metadata

from stalwart_py.inbound.results import authserv_id_of
from stalwart_py.sieve.actions import Outcome, SieveRuntimeError
from stalwart_py.sieve.ext_run import NeedDuplicate
from stalwart_py.sieve.interpreter import Environment
from stalwart_py.sieve.message import MessageView
from stalwart_py.store import Store

log = logging.getLogger("stalwart_py.sieve")

MAX_LOOKUPS = 16
_IPREV_PASS = re.compile(r"\biprev=pass\s+policy\.iprev=([0-9A-Fa-f:.]+)\s*\(([A-Za-z0-9.-]+)\)")
# The trace field the delivery pipeline writes first (delivery.received_header): its
# "from helo ([ip])" is the client that handed us the message. Ours, so not forged.
_OUR_RECEIVED = re.compile(
    rb"\A(?:Return-Path:[^\r\n]*\r?\n)?Received: from \S+ \(\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]\)"
)


def _version() -> str:
    try:
        return metadata.version("stalwart-py")
    except metadata.PackageNotFoundError:
        return "0"


VERSION = _version()


def environment_items(hostname: str, message: bytes) -> dict[str, str]:
    """RFC 5183 section 4 items for one delivery (the MDA, during delivery).

    "remote-ip" is the client of our own trace field; "remote-host" its host name when our
    own ``Authentication-Results`` (authserv-id = our host name; forged ones were removed by
    the pipeline) says ``iprev=pass`` for that address: a reverse name confirmed forward, as
    section 4.1 expects ("as determined by reverse DNS")."""
    host = hostname.rstrip(".").lower()
    items = {
        "name": "stalwart-py",
        "version": VERSION,
        "host": host,
        "domain": host.partition(".")[2] if host.count(".") >= 2 else host,
        "location": "MDA",
        "phase": "during",
    }
    found = _OUR_RECEIVED.match(message)
    if found is not None:
        items["remote-ip"] = ip = found.group(1).decode("ascii")
        for value in MessageView(message).raw_values("authentication-results"):
            if authserv_id_of(value).lower().rstrip(".") != host:
                continue
            iprev = _IPREV_PASS.search(value)
            if iprev is not None and iprev.group(1).lower() == ip.lower():
                items["remote-host"] = iprev.group(2).rstrip(".").lower()
    return items


async def run(
    interpret: Callable[[Environment], Outcome],
    environment: Environment,
    store: Store,
    account_id: int,
) -> Outcome:
    """``interpret(environment)``, looking up the duplicate keys it asks for."""
    if environment.now is None:  # one clock for every round
        environment = dataclasses.replace(environment, now=time.time())
    known: dict[str, bool] = {}
    for _ in range(MAX_LOOKUPS):
        try:
            return interpret(dataclasses.replace(environment, duplicates=known))
        except NeedDuplicate as need:
            known[need.key] = await store.duplicate_seen(account_id, need.key)
    raise SieveRuntimeError(f"more than {MAX_LOOKUPS} different duplicate tests")


def recorder(
    store: Store, account_id: int, outcome: Outcome
) -> Callable[[], Awaitable[None]] | None:
    """What keeps the unique IDs a successful run tested (RFC 7352 section 3), for the
    delivery to call once the message is delivered (a run whose delivery fails and is retried
    must not see its own message as a duplicate); None when there is nothing to keep."""
    if not outcome.duplicates:
        return None
    return functools.partial(store.record_duplicates, account_id, outcome.duplicates)
