"""``include`` (RFC 6609) across the two namespaces, and its loops found at upload.

Scripts are personal (each account's own, managed over ManageSieve) or global (the
administrator's, one set for the server, written over ManageSieve by an administrator as
``global/<name>`` or through the HTTP API; users cannot write them). ``include :personal``
(the default) and ``include :global`` name a script in one of them; an included script is
keyed by ``include_key`` (``name`` or ``global/name``), so a personal and a global script
of the same name are two scripts.

RFC 6609 section 3.2 forbids recursion: a script that includes itself, directly or through
others, is refused at upload when the scripts it reaches are already there (``check_upload``
follows them through the store, with the uploaded text in place of the stored one), and is
a runtime error otherwise (the interpreter keeps an include stack); so are chains deeper
than ``Limits.max_include_depth``. A missing script is a runtime error unless ``:optional``
(the message gets the implicit keep). Pigeonhole does the same at compile time.
"""

from __future__ import annotations

from collections.abc import Callable

from stalwart_py.sieve.lexer import SieveSyntaxError
from stalwart_py.sieve.notify import walk
from stalwart_py.sieve.validate import GLOBAL_PREFIX, Script, include_key
from stalwart_py.store import SieveScript, Store


async def fetch(store: Store, account_id: int | None, key: str) -> SieveScript | None:
    """The stored script an include key names (personal ones need an account)."""
    if key.startswith(GLOBAL_PREFIX):
        return await store.get_global_script(key[len(GLOBAL_PREFIX) :])
    if account_id is None:
        return None  # a global script's :personal include: whose, is known only at delivery
    return await store.get_script(account_id, key)


async def check_upload(
    store: Store,
    account_id: int | None,
    key: str,
    script: Script,
    compile: Callable[[str], Script],
    max_depth: int,
) -> None:
    """Refuse (SieveSyntaxError at the include command) a script about to be stored as
    ``key`` whose includes lead back to it or nest deeper than ``max_depth``."""
    for node in walk(script.commands):
        if node.name != "include":
            continue
        target = include_key(node.args[0], "global" in node.tags)
        problem = await _problem(store, account_id, key, target, compile, max_depth, 1, set())
        if problem is not None:
            raise SieveSyntaxError(node.line, node.column, problem)


async def _problem(
    store: Store,
    account_id: int | None,
    own: str,
    target: str,
    compile: Callable[[str], Script],
    max_depth: int,
    depth: int,
    seen: set[str],
) -> str | None:
    if target == own:
        return f'including "{target}" here makes a loop (RFC 6609 3.2: no recursion)'
    if depth > max_depth:
        return f"includes nest deeper than {max_depth}"
    if target in seen:
        return None
    seen.add(target)
    stored = await fetch(store, account_id, target)
    if stored is None:
        return None  # missing now: a runtime error later unless :optional
    try:
        included = compile(stored.body)
    except SieveSyntaxError:
        return None  # its own upload would have refused it; at delivery it is an error
    for name in sorted(included.includes):
        problem = await _problem(store, account_id, own, name, compile, max_depth, depth + 1, seen)
        if problem is not None:
            return problem
    return None
