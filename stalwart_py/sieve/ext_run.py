"""Running date/index (RFC 5260), editheader (RFC 5293), environment (RFC 5183), ihave and
error (RFC 5463) and duplicate (RFC 7352): the commands and tests the interpreter finds in
``COMMANDS`` and ``TESTS`` here, each a function of (interpreter, node).

Choices where the RFCs allow several answers, matching Pigeonhole unless said otherwise:

* ``date`` without ``:index`` tests the first occurrence of the field only (Pigeonhole;
  RFC 5260 section 4 leaves multiple occurrences to the index extension); with ``:count``
  it counts the dates found (0 or 1, or with :index the chosen one).
* ``:index`` on ``header`` and ``address`` (RFC 5260 section 6) picks the n-th occurrence
  of each named field, counting from the end with ``:last``.
* ``environment`` items (RFC 5183 section 4): "name" is "stalwart-py", "version" the
  package version, "host" the server's host name, "domain" that name without its first
  label (the RFC: "usually but not always a proper suffix of the host name"), "location"
  "MDA", "phase" "during", and "remote-ip"/"remote-host" when the delivery knows them.
  An unknown item makes the test false (section 4.1).
* ``ihave`` whose capabilities hold variables is false at run time, as in Pigeonhole: its
  block was checked without them. ``error`` fails the run; the message is kept.
* ``duplicate`` asks the store through ``Environment.duplicates``; a key the filter has not
  looked up yet raises ``NeedDuplicate`` and the filter runs the script again with it
  (the interpreter does no I/O). What a run saw is recorded only when it ends well
  (section 3), by the filter, from ``Interpreter.duplicate_records``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from stalwart_py.sieve import dates
from stalwart_py.sieve.actions import SieveRuntimeError
from stalwart_py.sieve.editheader import (
    FIELD_NAME,
    MAX_VALUE,
    ProtectedField,
    add_header,
    delete_header,
)
from stalwart_py.sieve.ext_checks import supported
from stalwart_py.sieve.message import MessageView

log = logging.getLogger("stalwart_py.sieve")

DEFAULT_DUPLICATE_PERIOD = 7 * 86400  # RFC 7352 section 3: "around 7 days"
MAX_DUPLICATE_PERIOD = 30 * 86400  # the site maximum, silently applied (section 3)
MAX_EDITS = 256  # addheader/deleteheader per run


class NeedDuplicate(Exception):
    """The script asked whether it saw ``key`` before; the caller looks it up and reruns."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def indexed(tags: dict[str, Any], values: list[str]) -> list[str]:
    """The occurrence ``:index`` (and ``:last``) picks, or every one."""
    index = tags.get("index")
    if index is None:
        return values
    position = len(values) - index if "last" in tags else index - 1
    return [values[position]] if 0 <= position < len(values) else []


def duplicate_key(handle: str | None, unique_id: str) -> str:
    """What the store keeps: a hash of the handle and the unique ID (RFC 7352 section 3
    suggests it), so long IDs cost a fixed size. Case-sensitive, as the RFC says."""
    text = ("h:" + handle if handle is not None else "-") + "\x00" + unique_id
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# -- tests ------------------------------------------------------------------------------


def test_date(interp: Any, node: Any) -> bool:
    header = interp.expand(node.args[0])
    part = interp.expand(node.args[1])
    values: list[str] = []
    if FIELD_NAME.match(header) and part.lower() in dates.DATE_PARTS:
        occurrences = interp.env.message.raw_values(header)
        chosen = indexed(node.tags, occurrences) if "index" in node.tags else occurrences[:1]
        zone = interp.expand(node.tags["zone"]) if "zone" in node.tags else None
        for raw in chosen:
            moment = dates.parse_date(raw, received=header.lower() == "received")
            if moment is not None:
                shown = dates.in_zone(moment, zone, "originalzone" in node.tags)
                values.append(dates.date_part(shown, part) or "")
    if not values and "count" not in node.tags:
        return False  # no date: the test is false whatever the keys (RFC 5260 section 4)
    return interp.compare(node, values, interp.expand_all(node.args[-1]))


def test_currentdate(interp: Any, node: Any) -> bool:
    part = interp.expand(node.args[0])
    if part.lower() not in dates.DATE_PARTS:
        return False
    now = int(interp.env.now if interp.env.now is not None else time.time())
    zone = interp.expand(node.tags["zone"]) if "zone" in node.tags else None
    moment = dates.in_zone(dates.Moment(now, 0), zone, False)
    value = dates.date_part(moment, part) or ""
    return interp.compare(node, [value], interp.expand_all(node.args[-1]))


def test_environment(interp: Any, node: Any) -> bool:
    name = interp.expand(node.args[0]).lower()
    value = interp.env.items.get(name)
    if value is None:
        return False
    return interp.compare(node, [value], interp.expand_all(node.args[-1]))


def test_ihave(interp: Any, node: Any) -> bool:
    names = node.args[0]
    if any("${" in name for name in names) and "variables" in interp.extensions:
        return False
    return all(supported(name) for name in names)


def test_duplicate(interp: Any, node: Any) -> bool:
    tags = node.tags
    seconds = int(tags.get("seconds", DEFAULT_DUPLICATE_PERIOD))
    if seconds <= 0:
        return False  # section 3: ":seconds 0" is false, unconditionally
    if "uniqueid" in tags:
        unique_id: str | None = interp.expand(tags["uniqueid"])
    else:
        header = interp.expand(tags.get("header", "message-id"))
        if not FIELD_NAME.match(header):
            return False  # section 3: an invalid name is not an error, the test is false
        unique_id = interp.env.message.first(header)
        if unique_id is not None:
            unique_id = unique_id.strip()
    if unique_id is None:
        return False  # no such field: false, and nothing is recorded
    handle = interp.expand(tags["handle"]) if "handle" in tags else None
    key = duplicate_key(handle, unique_id)
    known = interp.env.duplicates
    if known is None or key not in known:
        raise NeedDuplicate(key)
    interp.duplicate_records[key] = (float(min(seconds, MAX_DUPLICATE_PERIOD)), "last" in tags)
    return bool(known[key])


# -- commands -----------------------------------------------------------------------------


def _edited(interp: Any, data: bytes) -> None:
    interp.edits += 1
    if interp.edits > MAX_EDITS:
        raise SieveRuntimeError(f"more than {MAX_EDITS} header edits")
    message = interp.env.message
    if data is not message.data:
        interp.env = interp.env.replace_message(MessageView(data, max_body=message.max_body))
        interp.edited = True


def do_addheader(interp: Any, node: Any) -> None:
    name = interp.expand(node.args[0])
    value = interp.expand(node.args[1])
    if not FIELD_NAME.match(name):
        raise SieveRuntimeError(f'"{name}" is not a header field name', node.line, node.column)
    if len(value) > MAX_VALUE:  # as Pigeonhole: refused whole rather than stored cut short
        raise SieveRuntimeError(
            f"the value to add is over {MAX_VALUE} characters", node.line, node.column
        )
    try:
        data = add_header(interp.env.message.data, name, value, last="last" in node.tags)
    except ProtectedField:
        log.warning("sieve: addheader of the protected field %s ignored (RFC 5293 6)", name)
        return
    _edited(interp, data)


def do_deleteheader(interp: Any, node: Any) -> None:
    name = interp.expand(node.args[0])
    if not FIELD_NAME.match(name):
        raise SieveRuntimeError(f'"{name}" is not a header field name', node.line, node.column)
    matches: Callable[[str], bool] | None = None
    if len(node.args) == 2:
        patterns = interp.expand_all(node.args[1])
        saved = list(interp.variables.matched)

        def matches(value: str) -> bool:
            return interp.compare(node, [value], patterns)

    try:
        data = delete_header(
            interp.env.message.data,
            name,
            matches,
            index=node.tags.get("index"),
            last="last" in node.tags,
        )
    except ProtectedField:
        log.warning("sieve: deleteheader of the protected field %s ignored (RFC 5293 6)", name)
        return
    if matches is not None:
        interp.variables.matched = saved  # deleteheader's :matches sets no match variables
    _edited(interp, data)


def do_error(interp: Any, node: Any) -> None:
    raise SieveRuntimeError(f"error: {interp.expand(node.args[0])}", node.line, node.column)


TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "date": test_date,
    "currentdate": test_currentdate,
    "environment": test_environment,
    "ihave": test_ihave,
    "duplicate": test_duplicate,
}
COMMANDS: dict[str, Callable[[Any, Any], None]] = {
    "addheader": do_addheader,
    "deleteheader": do_deleteheader,
    "error": do_error,
}
