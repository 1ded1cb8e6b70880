"""``stalwart-py acme status|renew [ID]``: the running server's ACME certificates, through
its control socket (``stalwart_py/acme/commands.py``).

``renew`` starts a renewal now (whatever the schedule says) and waits for its outcome,
printing the new expiry or the CA's error; exit status 1 when any renewal failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from stalwart_py.cli.listener import ask_server

Command = Callable[..., argparse.ArgumentParser]
POLL = 0.5


def register(commands: argparse._SubParsersAction, command: Command) -> None:
    acme = commands.add_parser("acme", help="ACME certificates of the running server.")
    actions = acme.add_subparsers(dest="action", required=True, metavar="ACTION")
    command("status", "Each [acme] certificate: next renewal, last error.", actions).set_defaults(
        run=cmd_status
    )
    renew = command("renew", "Renew now and wait for the outcome.", actions)
    renew.add_argument("id", nargs="?", help='the id of [acme."<id>"] (default: every one)')
    renew.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (600)")
    renew.set_defaults(run=cmd_renew)


def cmd_status(args: argparse.Namespace) -> int:
    answer = ask_server(args, {"command": "acme-status"})
    if answer is None:
        return 1
    for acme_id, state in answer["acme"].items():
        print(_line(acme_id, state))
    return 0


def cmd_renew(args: argparse.Namespace) -> int:
    answer = ask_server(args, {"command": "acme-renew", "id": args.id})
    if answer is None:
        return 1
    # a renewal already running finishes first; the one asked for comes after it
    wanted = {
        acme_id: state["attempts"] + (2 if state["renewing"] else 1)
        for acme_id, state in answer["acme"].items()
        if acme_id in answer["started"]
    }
    deadline = time.monotonic() + args.timeout
    while True:
        status = ask_server(args, {"command": "acme-status"})
        if status is None:
            return 1
        states = status["acme"]
        if all(states[i]["attempts"] >= n for i, n in wanted.items()):
            break
        if time.monotonic() > deadline:
            print("stalwart-py: timed out waiting for the renewal", file=sys.stderr)
            return 1
        time.sleep(POLL)
    failed = False
    for acme_id in wanted:
        print(_line(acme_id, states[acme_id]))
        failed = failed or states[acme_id]["last_error"] is not None
    return 1 if failed else 0


def _line(acme_id: str, state: dict[str, Any]) -> str:
    if state["last_error"]:
        outcome = f"failing ({state['failures']}x): {state['last_error']}"
    else:
        outcome = f"renewed {state['last_renewal'] or 'never'}"
    return f"{acme_id}\tnext renewal {state['next_renewal']}\t{outcome}"
