"""The flag encoding of the store: system flags as bits, keywords as text, and equal flag
sets shared as one object (every message row read goes through ``join_flags``)."""

from __future__ import annotations

from stalwart_py.store.model import join_flags, split_flags


def test_flags_round_trip_and_equal_sets_are_shared():
    bits, keywords = split_flags(frozenset({"\\Seen", "\\flagged", "$Work", "Later"}))
    assert keywords == "$Work Later"
    flags = join_flags(bits, keywords)
    assert flags == {"\\Seen", "\\Flagged", "$Work", "Later"}
    assert join_flags(bits, keywords) is flags
    assert join_flags(0, "") == frozenset()
