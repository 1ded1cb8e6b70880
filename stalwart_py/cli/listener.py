"""``stalwart-py listener list|enable|disable``: the running server's listeners, through its
control socket (``stalwart_py/control.py``).

Using the command takes being the server's user on its machine, as reading its database
does, so unlike the HTTP API it may disable any listener without a ``force``; it only warns
when what it disabled was the last HTTP listener still accepting, the way to the admin API.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from stalwart_py.config import ConfigError
from stalwart_py.control import ControlError, request
from stalwart_py.server import load, read_pid

Command = Callable[..., argparse.ArgumentParser]


def register(commands: argparse._SubParsersAction, command: Command) -> None:
    listener = commands.add_parser(
        "listener", help="List, enable and disable the running server's listeners."
    )
    actions = listener.add_subparsers(dest="action", required=True, metavar="ACTION")
    command(
        "list", "Every listener: id, protocol, state, open connections, bound addresses.", actions
    ).set_defaults(run=cmd_list)
    for name, help_text in (
        ("disable", "Refuse new connections (open sessions go on) until enabled or reloaded."),
        ("enable", "Accept new connections again."),
    ):
        sub = command(name, help_text, actions)
        sub.add_argument("id", help="the listener's id, as in [server.listener.<id>]")
        sub.set_defaults(run=cmd_switch)


def cmd_list(args: argparse.Namespace) -> int:
    answer = ask_server(args, {"command": "listeners"})
    if answer is None:
        return 1
    for status in answer["listeners"]:
        print(_line(status))
    return 0


def cmd_switch(args: argparse.Namespace) -> int:
    answer = ask_server(args, {"command": args.action, "listener": args.id})
    if answer is None:
        return 1
    status = answer["listener"]
    print(_line(status))
    still_open = [s["id"] for s in answer["listeners"] if s["protocol"] == "http" and s["enabled"]]
    if args.action == "disable" and status["protocol"] == "http" and not still_open:
        print(
            f"warning: {args.id} was the last enabled http listener: the admin API is "
            f"unreachable until `stalwart-py listener enable {args.id}` or a reload",
            file=sys.stderr,
        )
    return 0


def ask_server(args: argparse.Namespace, message: dict[str, Any]) -> dict[str, Any] | None:
    """The server's answer when it says ok; else the reason is printed and None returned."""
    try:
        data_dir = load(args.config).storage.data_dir
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
    try:
        answer = request(data_dir, message)
    except ControlError as exc:
        if read_pid(data_dir) is None:
            print(f"stalwart-py: no server is running on {data_dir}", file=sys.stderr)
        else:
            print(f"stalwart-py: {exc}", file=sys.stderr)
        return None
    if not answer.get("ok"):
        print(f"stalwart-py: {answer.get('error', 'the server refused')}", file=sys.stderr)
        return None
    return answer


def _line(status: dict[str, Any]) -> str:
    """``smtp  smtp  enabled  3 open  127.0.0.1:25, [::1]:25``, tab-separated."""
    state = "enabled" if status["enabled"] else "disabled"
    addresses = ", ".join(status["bind"]) or "-"
    return "\t".join(
        [status["id"], status["protocol"], state, f"{status['open-connections']} open", addresses]
    )
