"""SORT (RFC 5256 section 3, with SORT=DISPLAY of RFC 5957) as a pure function over the
view's messages and their stored sort fields, with the caches that make it cheap.

Ordering. Criteria are applied left to right; a REVERSE criterion is reversed alone; messages
equal under every criterion stay in mailbox (sequence, hence UID) order. Done as stable
sorts from the last criterion to the first (Python's sort is stable, also with
``reverse=True``), which mixes directions without inventing inverted string keys.

Keys (RFC 5256 section 3): ARRIVAL the INTERNALDATE; DATE the Date header in UTC, or the
INTERNALDATE when it has none or it cannot be parsed; SIZE the RFC822.SIZE; SUBJECT the base
subject; FROM, TO, CC the addr-mailbox of the first address; DISPLAYFROM, DISPLAYTO the
display name or else the address (RFC 5957). Strings compare under i;unicode-casemap
(``collation``); a missing field is the empty string, which sorts first.

Caches. ``KeyCache``: the collated keys of a body never change, so they are computed once per
body id (the store never reuses one) and shared by every session and mailbox. ``ResultMemo``:
a SORT or THREAD of the same messages of a mailbox by the same criteria has the same answer,
so the last few answers are kept (keyed by mailbox, UIDVALIDITY, criteria and the matching
UIDs), which is what a webmail re-sorting one folder on every page view asks for.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from protocols.imap.collation import DEFAULT
from protocols.imap.sort_parse import SortCriterion
from stalwart_py.mime.sortfields import SortFields
from stalwart_py.store import MessageInfo, Store

KEY_CAPACITY = 200_000  # bodies whose sort keys are kept
MEMO_CAPACITY = 16  # SORT/THREAD answers kept
READ_BATCH = 5000  # sort fields read from the store at once


@dataclass(frozen=True, slots=True)
class SortKeys:
    """A body's sort fields with their strings collated."""

    fields: SortFields
    subject: str
    from_: str
    to: str
    cc: str
    display_from: str
    display_to: str


def collate(fields: SortFields) -> SortKeys:
    return SortKeys(
        fields,
        DEFAULT(fields.subject),
        DEFAULT(fields.from_mailbox),
        DEFAULT(fields.to_mailbox),
        DEFAULT(fields.cc_mailbox),
        DEFAULT(fields.from_display),
        DEFAULT(fields.to_display),
    )


class KeyCache:
    def __init__(self, capacity: int = KEY_CAPACITY) -> None:
        self.capacity = capacity
        self._keys: dict[int, SortKeys] = {}

    async def keys(self, store: Store, blob_ids: Sequence[int]) -> dict[int, SortKeys]:
        """The keys of these bodies, read from the store for those not cached (bodies
        gone meanwhile are left out)."""
        known = self._keys
        missing = [blob_id for blob_id in blob_ids if blob_id not in known]
        for start in range(0, len(missing), READ_BATCH):
            found = await store.sort_fields(missing[start : start + READ_BATCH])
            for blob_id, fields in found.items():
                known[blob_id] = collate(fields)
        while len(known) > self.capacity:  # oldest first (dicts keep insertion order)
            del known[next(iter(known))]
        return known


class ResultMemo:
    def __init__(self, capacity: int = MEMO_CAPACITY) -> None:
        self.capacity = capacity
        self._answers: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        answer = self._answers.get(key)
        if answer is not None:
            self._answers.move_to_end(key)
        return answer

    def put(self, key: Hashable, answer: Any) -> None:
        self._answers[key] = answer
        while len(self._answers) > self.capacity:
            self._answers.popitem(last=False)


class SortCaches:
    def __init__(self) -> None:
        self.keys = KeyCache()
        self.memo = ResultMemo()


_BY_STORE: weakref.WeakKeyDictionary[Store, SortCaches] = weakref.WeakKeyDictionary()


def sort_caches(store: Store) -> SortCaches:
    found = _BY_STORE.get(store)
    if found is None:
        found = _BY_STORE[store] = SortCaches()
    return found


def _key_function(name: str, keys: dict[int, SortKeys]) -> Any:
    """The key of one criterion, as a function of a MessageInfo."""
    empty = ""
    if name == "ARRIVAL":
        return lambda info: info.internaldate
    if name == "SIZE":
        return lambda info: info.size
    if name == "DATE":

        def sent(info: MessageInfo) -> float:
            entry = keys.get(info.blob_id)
            value = entry.fields.sent if entry is not None else None
            return info.internaldate if value is None else value

        return sent
    attribute = {
        "SUBJECT": "subject",
        "FROM": "from_",
        "TO": "to",
        "CC": "cc",
        "DISPLAYFROM": "display_from",
        "DISPLAYTO": "display_to",
    }[name]

    def text(info: MessageInfo) -> str:
        entry = keys.get(info.blob_id)
        return empty if entry is None else getattr(entry, attribute)

    return text


def needs_fields(criteria: Sequence[SortCriterion]) -> bool:
    return any(criterion.key not in ("ARRIVAL", "SIZE") for criterion in criteria)


def sort_messages(
    infos: list[MessageInfo], criteria: Sequence[SortCriterion], keys: dict[int, SortKeys]
) -> list[int]:
    """The UIDs of ``infos`` (in UID order) sorted by ``criteria``."""
    ordered = list(infos)
    for criterion in reversed(criteria):
        ordered.sort(key=_key_function(criterion.key, keys), reverse=criterion.reverse)
    return [info.uid for info in ordered]
