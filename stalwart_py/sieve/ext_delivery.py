"""What the filter adds for environment (RFC 5183) and duplicate (RFC 7352): the environment
items of a delivery, and running a script that asks the store about duplicates.

The interpreter does no I/O, so a ``duplicate`` test whose key has not been looked up raises
``NeedDuplicate``; ``run`` looks the key up and runs the script again, until it finishes
(a script has few duplicate tests: at most ``MAX_LOOKUPS`` rounds). The rerun sees exactly
what the first run saw (the message, the clock frozen at the first run's start), so it takes
the same path up to the new test. ``record`` stores what a successful run saw.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable
from importlib import metadata

from stalwart_py.sieve.actions import Outcome, SieveRuntimeError
from stalwart_py.sieve.ext_run import NeedDuplicate
from stalwart_py.sieve.interpreter import Environment
from stalwart_py.store import Store

log = logging.getLogger("stalwart_py.sieve")

MAX_LOOKUPS = 16
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
    """RFC 5183 section 4 items for one delivery (the MDA, during delivery)."""
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
        items["remote-ip"] = found.group(1).decode("ascii")
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


async def record(store: Store, account_id: int, outcome: Outcome) -> None:
    """Keep the unique IDs a successful run tested (RFC 7352 section 3)."""
    if outcome.duplicates:
        await store.record_duplicates(account_id, outcome.duplicates)
