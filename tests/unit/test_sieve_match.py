"""Comparators, match types and the :matches wildcards with their match variables."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stalwart_py.sieve.match import MatchError, count_match, glob, match, numeric


@pytest.mark.parametrize(
    ("value", "pattern", "captures"),
    [
        ("frop.......frop.........frop....", "?*frop*", ["f", "rop.......", ".........frop...."]),
        ("[acme-users] [fwd] v1 is out", "[*] *", ["acme-users", "[fwd] v1 is out"]),
        ("coyote@ACME.Example.COM", "coyote@**.com", ["", "ACME.Example"]),
        ("abc", "abc", []),
        ("abc", "a?c", ["b"]),
        ("", "*", [""]),
        ("a*c", "a\\*c", []),
        ("a\\c", "a\\\\c", []),
        ("aXbXc", "*X*", ["a", "bXc"]),
        ("ab", "ab*", [""]),
    ],
)  # fmt: skip
def test_matches_is_non_greedy_left_to_right(value, pattern, captures):
    assert glob(value, pattern, "i;ascii-casemap") == captures


@pytest.mark.parametrize(
    ("value", "pattern"), [("abc", "a\\*c"), ("abc", "ab"), ("ab", "abc"), ("a", "??"), ("x", "")]
)
def test_matches_failures(value, pattern):
    assert glob(value, pattern, "i;octet") is None


def test_comparators():
    assert match(["ABC"], ["abc"], "is", "i;ascii-casemap") == (True, None)
    assert match(["ABC"], ["abc"], "is", "i;octet") == (False, None)
    assert match(["\u00c4"], ["\u00e4"], "is", "i;ascii-casemap") == (False, None)  # ASCII only
    assert match(["007"], ["7"], "is", "i;ascii-numeric") == (True, None)
    assert match(["abc"], ["xyz"], "is", "i;ascii-numeric") == (True, None)  # both infinite
    assert match(["5"], ["abc"], "value", "i;ascii-numeric", "lt") == (True, None)
    assert match(["Hello"], ["LL"], "contains", "i;ascii-casemap") == (True, None)
    assert match(["x"], ["y"], "matches", "i;octet") == (False, None)
    assert match(["Subj"], ["S*"], "matches", "i;octet") == (True, ["Subj", "ubj"])
    with pytest.raises(MatchError):
        match(["1"], ["1"], "contains", "i;ascii-numeric")


@pytest.mark.parametrize(
    ("value", "operator", "key", "expected"),
    [("10", "gt", "9", True), ("10", "lt", "9", False), ("9", "eq", "09", True),
     ("9", "ne", "9", False), ("1", "ge", "1", True), ("1", "le", "0", False)],
)  # fmt: skip
def test_relational_numeric(value, operator, key, expected):
    assert match([value], [key], "value", "i;ascii-numeric", operator)[0] is expected


def test_count_and_numeric():
    assert count_match(3, ["2"], "gt", "i;ascii-numeric")
    assert not count_match(3, ["3"], "ne", "i;ascii-numeric")
    assert numeric("42abc") == 42 and numeric("abc") is None


def test_matches_is_linear_on_hostile_input():
    value = "a" * 20000
    started = time.perf_counter()
    assert glob(value, "*a*a*a*a*a*b", "i;octet") is None
    assert glob(value + "b", "*a*a*a*a*a*b", "i;octet") is not None
    assert time.perf_counter() - started < 2.0  # a backtracking matcher takes hours


@given(st.text(alphabet="ab*?\\", max_size=8), st.text(alphabet="ab", max_size=12))
def test_matches_agrees_with_fnmatch_semantics(pattern, value):
    import re

    regex = ""
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            index += 1
            regex += re.escape(pattern[index])
        elif char == "*":
            regex += "(.*?)"
        elif char == "?":
            regex += "(.)"
        else:
            regex += re.escape(char)
        index += 1
    expected = re.fullmatch(regex, value, re.DOTALL)
    result = glob(value, pattern, "i;octet")
    assert (result is None) == (expected is None)
    if expected is not None:
        assert result == list(expected.groups())
