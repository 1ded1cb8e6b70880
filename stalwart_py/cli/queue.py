"""``stalwart-py queue list|show|retry|delete`` and ``stalwart-py dkim generate|list|delete``.

Queue commands work on the configured data directory directly, whether or not a server runs
on it: a running server sees a retried or deleted message at its next look at the queue
(``queue.poll-interval``).
"""

from __future__ import annotations

import argparse
import datetime
from collections.abc import Callable

from stalwart_py import names
from stalwart_py.cli.common import StoreCommand, store_command
from stalwart_py.config import Config
from stalwart_py.queue.dkim import (
    ALGORITHMS,
    DkimKeyError,
    generate_key,
    signer_of,
    zone_record,
)
from stalwart_py.store import QueueEntry, Store, StoreError

Command = Callable[..., argparse.ArgumentParser]


def register(commands: argparse._SubParsersAction, command: Command) -> None:
    queue = commands.add_parser("queue", help="Inspect and manage the outbound queue.")
    actions = queue.add_subparsers(dest="action", required=True, metavar="ACTION")
    command("list", "List queued messages.", actions).set_defaults(run=run(queue_list))
    show = command("show", "Show a queued message and its recipients.", actions)
    show.add_argument("id", type=int)
    show.set_defaults(run=run(queue_show))
    retry = command("retry", "Make a message (or every message) due now.", actions)
    retry.add_argument("id", type=int, nargs="?")
    retry.set_defaults(run=run(queue_retry))
    delete = command("delete", "Remove a message from the queue (no bounce is sent).", actions)
    delete.add_argument("id", type=int)
    delete.set_defaults(run=run(queue_delete))

    dkim = commands.add_parser("dkim", help="DKIM signing keys.")
    dkim_actions = dkim.add_subparsers(dest="action", required=True, metavar="ACTION")
    generate = command(
        "generate",
        "Create a signing key for a local domain, turn signing on, print the DNS record.",
        dkim_actions,
    )
    generate.add_argument("domain")
    generate.add_argument("--algorithm", choices=ALGORITHMS, default="rsa")
    generate.add_argument("--selector", default=None, help="default: rsaYYYYMM or edYYYYMM")
    generate.add_argument("--bits", type=int, choices=(1024, 2048, 3072, 4096), default=2048)
    generate.set_defaults(run=run(dkim_generate))
    command("list", "List signing keys with their DNS records.", dkim_actions).set_defaults(
        run=run(dkim_list)
    )
    delete_key = command(
        "delete", "Delete a stored signing key (mail is no longer signed with it).", dkim_actions
    )
    delete_key.add_argument("domain")
    delete_key.add_argument("selector")
    delete_key.set_defaults(run=run(dkim_delete))


def run(func: StoreCommand) -> Callable[[argparse.Namespace], int]:
    return store_command(func, errors=(DkimKeyError,))


def _time(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _pending(entry: QueueEntry) -> int:
    return sum(1 for r in entry.recipients if r.status == "pending")


async def queue_list(store: Store, _config: Config, _args: argparse.Namespace) -> None:
    entries = await store.queue_entries(limit=100_000)
    for entry in entries:
        sender = entry.mail_from or "<>"
        print(
            f"{entry.id}\t{_time(entry.created)}\t{entry.size} bytes\t{sender}\t"
            f"{_pending(entry)} pending\tnext {_time(entry.next_attempt)}"
        )
    print(f"{len(entries)} message(s) queued")


async def queue_show(store: Store, _config: Config, args: argparse.Namespace) -> None:
    entry = await store.queue_entry(args.id)
    if entry is None:
        raise StoreError(f"no queued message {args.id}")
    print(f"id:       {entry.id}")
    print(f"from:     <{entry.mail_from}>")
    print(f"queued:   {_time(entry.created)} ({entry.source})")
    print(f"size:     {entry.size} bytes")
    if entry.envid or entry.ret:
        print(f"dsn:      ENVID={entry.envid or '-'} RET={entry.ret or '-'}")
    for r in entry.recipients:
        line = f"  <{r.address}>\t{r.status}\t{r.attempts} attempt(s)"
        if r.status == "pending":
            line += f"\tnext {_time(r.next_attempt)}"
        print(line)
        if r.last_error:
            print(f"      last error: {r.last_error}")


async def queue_retry(store: Store, _config: Config, args: argparse.Namespace) -> None:
    count = await store.retry_queue(args.id)
    if args.id is not None and count == 0:
        raise StoreError(f"no queued message {args.id} with pending recipients")
    print(f"{count} recipient(s) due now")


async def queue_delete(store: Store, _config: Config, args: argparse.Namespace) -> None:
    await store.delete_queue_entry(args.id)
    print(f"deleted {args.id}")


async def dkim_generate(store: Store, config: Config, args: argparse.Namespace) -> None:
    domain = names.domain(args.domain.strip())
    if not await store.is_local_domain(domain):
        raise ValueError(f"{domain} is not a local domain (add it with: stalwart-py domain add)")
    key = await generate_key(
        store, domain, algorithm=args.algorithm, selector=args.selector, bits=args.bits
    )
    print(
        f"created the key {key.selector} in the store; mail from {domain} is signed with it"
        " from now on (by every node)."
    )
    print("Publish this DNS record:\n")
    print(zone_record(key))
    print(f"\n(name {key.record_name}, type TXT, value {key.public_record})")


async def dkim_list(store: Store, config: Config, _args: argparse.Namespace) -> None:
    for keys in (await signer_of(store, config.dkim)).keys().values():
        for key in keys:
            print(f"{key.domain}\t{key.selector}\t{key.algorithm.decode()}\t{key.source}")
            print(f"  {zone_record(key)}")


async def dkim_delete(store: Store, _config: Config, args: argparse.Namespace) -> None:
    domain = names.domain(args.domain.strip())
    await store.delete_dkim_key(domain, args.selector)
    print(f"deleted the key {args.selector} of {domain}; its DNS record may go once no mail")
    print("signed with it is in transit (a day or two).")
