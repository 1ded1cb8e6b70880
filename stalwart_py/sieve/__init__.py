"""Sieve (RFC 5228) with its common extensions: the parser, the interpreter, and the filter
the delivery pipeline runs for every local recipient.

* ``parse_script(text)`` checks a script and compiles it, or raises ``SieveSyntaxError``
  whose message names the line, the column and what was expected (ManageSieve's PUTSCRIPT
  and CHECKSCRIPT answer with it).
* ``Interpreter(script, environment).run()`` gives the actions (sans-IO).
* ``SieveFilter`` is the ``MessageFilter`` of ``stalwart_py.delivery``.
* ``EXTENSIONS`` is the supported capability list (ManageSieve's SIEVE capability),
  ``NOTIFY_METHODS`` the enotify methods (its NOTIFY capability).

Modules: ``lexer`` and ``parser`` (syntax), ``grammar`` (what each command and test takes),
``validate`` (the checks and compilation), ``match`` (comparators and match types),
``variables``, ``message`` (headers, addresses and bodies of the message), ``actions``,
``interpreter``, ``vacation`` (RFC 5230 and RFC 3834), ``mimeparts`` (RFC 5703: mime,
foreverypart, extracttext), ``notify`` (RFC 5435 and RFC 5436) and ``filter``.
date/index, editheader, environment, ihave and duplicate are checked in ``ext_checks`` and
run by ``ext_run`` (with ``dates``, ``editheader``, ``regex_match`` for ``:regex``), and
``ext_delivery`` gives them what a delivery knows (environment items, duplicate lookups).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Each name is imported from its module when first asked for (PEP 562), not with the package:
# the package is imported at start (junk tokens use ``sieve.message``), and a start does not
# need the interpreter until the first delivery (bench/startup.py).
_EXPORTS = {
    "EXTENSIONS": ("grammar", "EXTENSIONS"),
    "NOTIFY_METHODS": ("notify", "METHODS"),
    "Environment": ("interpreter", "Environment"),
    "Interpreter": ("interpreter", "Interpreter"),
    "Limits": ("actions", "Limits"),
    "MessageView": ("message", "MessageView"),
    "Outcome": ("actions", "Outcome"),
    "Script": ("validate", "Script"),
    "SieveFilter": ("filter", "SieveFilter"),
    "SieveRuntimeError": ("actions", "SieveRuntimeError"),
    "SieveSyntaxError": ("lexer", "SieveSyntaxError"),
    "parse_script": ("validate", "parse_script"),
}

if TYPE_CHECKING:
    from stalwart_py.sieve.actions import Limits, Outcome, SieveRuntimeError
    from stalwart_py.sieve.filter import SieveFilter
    from stalwart_py.sieve.grammar import EXTENSIONS
    from stalwart_py.sieve.interpreter import Environment, Interpreter
    from stalwart_py.sieve.lexer import SieveSyntaxError
    from stalwart_py.sieve.message import MessageView
    from stalwart_py.sieve.notify import METHODS as NOTIFY_METHODS
    from stalwart_py.sieve.validate import Script, parse_script

__all__ = [
    "EXTENSIONS",
    "NOTIFY_METHODS",
    "Environment",
    "Interpreter",
    "Limits",
    "MessageView",
    "Outcome",
    "Script",
    "SieveFilter",
    "SieveRuntimeError",
    "SieveSyntaxError",
    "parse_script",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    globals()[name] = value  # asked once
    return value
