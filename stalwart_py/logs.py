"""Log setup: one line per event with the session id, as text for people or JSON for machines.

One record is one line, whatever a client sent. Log lines quote client input everywhere (user
names, addresses, commands, ``ID`` fields), and log readers (fail2ban, grep, a SIEM) take each
line as one event: a user name holding CR LF and a made-up line would otherwise write that
line into the log as if the server had. So the formatters escape, in the rendered message and
in every extra field, each character that can end a line or change how one reads: the C0 and
C1 controls, DEL, U+2028 and U+2029 (line and paragraph separators to ``str.splitlines`` and
to JavaScript), the bidirectional overrides (which make a terminal show a line's text in
another order) and lone surrogates (which a strict UTF-8 stream refuses, losing the record).
They become ``\\r``, ``\\n``, ``\\t``, ``\\xNN`` or ``\\uNNNN``; this is for safety, not
reversibility (a backslash the client sent is left as it is). JSON logs escape the same
characters through ``json.dumps`` (``ensure_ascii``). A traceback, which the logging module
formats from our own code's frames, is the one multi-line output of the text format.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, TextIO

from stalwart_py.config.types import IPAddress

# What must not reach a text log line raw; see the module docstring.
_UNSAFE = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]"
)
_SHORT = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` with every line-breaking or display-changing character escaped."""
    return _UNSAFE.sub(_escape_one, text)


# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is shown.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "session", "taskName"}


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """``2026-11-24T19:08:00.123Z INFO  stalwart_py.smtp [3f2a9c1e] message key=value``"""

    def format(self, record: logging.LogRecord) -> str:
        session = getattr(record, "session", None)
        line = f"{_timestamp(record)} {record.levelname:<5} {record.name}"
        if session:
            line += f" [{session}]"
        line += " " + escape(record.getMessage())
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if extras:
            line += " " + " ".join(f"{escape(k)}={escape(str(v))}" for k, v in extras.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JSONFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, session, msg, any extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        # The order of the first four keys is part of the format: the fail2ban filter in
        # deploy/fail2ban reads them in this order, before anything a client chose.
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        session = getattr(record, "session", None)
        if session:
            entry["session"] = session
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # ensure_ascii (the default) is what keeps a record on one line: it escapes every
        # control, DEL, U+2028/U+2029 and all other non-ASCII characters as \\uNNNN.
        return json.dumps(entry, default=str, ensure_ascii=True)


def client_address(ip: IPAddress | None) -> str:
    """A client's address as refusal lines show it (``login failed from <address>: ...``):
    an IPv4 client on a dual-stack socket as IPv4 (what a firewall must block), a Unix-socket
    client as ``local`` (nothing to ban)."""
    if ip is None:
        return "local"
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped if mapped is not None else ip)


def configure_logging(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


MAX_LOGGED_USER = 200  # characters of a refused user name that go into the log
Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]
_login_log = logging.getLogger("stalwart_py.directory")


def login_refused(
    log: Logger | None, peer: IPAddress | None, mechanism: str, reason: str, user: str | None
) -> None:
    """The line every refused login writes, in every protocol, for people and for fail2ban:
    ``login failed from <address>: mechanism=<M> reason=<R> user=<name>``. The address comes
    first, so that nothing the client chose (the user name, last) can stand before it; the
    formatter escapes what could break the line."""
    if user is not None and len(user) > MAX_LOGGED_USER:
        user = user[:MAX_LOGGED_USER] + "..."
    (log or _login_log).info(
        "login failed from %s: mechanism=%s reason=%s user=<%s>",
        client_address(peer),
        mechanism,
        reason,
        user or "",
    )


def login_deferred(
    log: Logger | None, peer: IPAddress | None, mechanism: str, user: str | None
) -> None:
    """The line a login deferred by a busy hash pool writes: a WARNING (the server is short of
    CPU for logins), worded unlike ``login_refused`` so that fail2ban never bans its client."""
    if user is not None and len(user) > MAX_LOGGED_USER:
        user = user[:MAX_LOGGED_USER] + "..."
    (log or _login_log).warning(
        "login deferred from %s: mechanism=%s user=<%s> (no password-hash worker came free)",
        client_address(peer),
        mechanism,
        user or "",
    )
