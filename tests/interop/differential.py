"""Differential testing against Dovecot: the same script of IMAP commands runs against our
server and against Debian's Dovecot, on the same messages (APPENDed to both with the same
flags and internal dates), and the raw answers are compared after normalising what two
correct servers may legitimately answer differently:

- the tag and the human-readable text after ``OK``/``NO``/``BAD`` (and its ``[CODE]``);
- values each server picks for itself: UIDVALIDITY, and MODSEQ numbers (RFC 7162 only
  asks that they grow: they are replaced by their rank among the values that server
  gave in the same script, so "changed later than" still compares);
- the order of untagged responses within one command, of flags in a list, of LIST and
  STATUS items (no RFC fixes them), and the form of a string (quoted or literal) or of a
  sequence set (``1:3`` or ``1,2,3``);
- \\HasChildren and \\HasNoChildren in the answer to a LIST that did not ask for them
  with RETURN (CHILDREN) (RFC 5258 section 4: a server MAY send them);
- the case of case-insensitive BODYSTRUCTURE fields (type, subtype, parameter names,
  encoding, disposition) and the optional charset list of BADCHARSET;
- ESEARCH's ``(TAG "...")`` correlator.

What is left must be equal, except where an entry of ``DELIBERATE`` says why we answer
otherwise on purpose: each entry names the command it applies to and the answers it
drops on both sides, with the reason; a test that needs one passes it explicitly.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import takewhile
from typing import Any

from tests.integration.imap_support import Atom, Literal8, Raw, parse_data

# -- reading response data -------------------------------------------------------------------


def parse(data: bytes) -> list[Any]:
    """IMAP data as nested lists, atoms and literal8 kept apart from strings."""
    return parse_data(data, typed=True)


def show(value: Any) -> str:
    """One canonical text for a parsed value (what the comparison, and its diff, reads)."""
    if value is None:
        return "NIL"
    if isinstance(value, Literal8):  # needed only for NUL (RFC 3516 4.2); else a choice
        return ("~" if b"\0" in value else "") + show(bytes(value))
    if isinstance(value, bytes):
        return '"' + value.decode("utf-8", "backslashreplace").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "(" + " ".join(show(item) for item in value) + ")"
    return str(value)


def expand(sequence_set: Any) -> list[int]:
    """A sequence set (``1:3,7``) as sorted numbers."""
    numbers: set[int] = set()
    for part in str(sequence_set).split(","):
        low, _, high = part.partition(":")
        first, last = sorted((int(low), int(high or low)))
        numbers.update(range(first, last + 1))
    return sorted(numbers)


def compact(numbers: Iterable[int]) -> str:
    """Sorted numbers as the shortest sequence set."""
    ranges: list[list[int]] = []
    for number in sorted(set(numbers)):
        if ranges and number == ranges[-1][1] + 1:
            ranges[-1][1] = number
        else:
            ranges.append([number, number])
    return ",".join(str(a) if a == b else f"{a}:{b}" for a, b in ranges)


# -- normalising -----------------------------------------------------------------------------


class ModSeqs:
    """MODSEQ values of one server in one script, replaced by ranks. The first
    HIGHESTMODSEQ the script sees is the base: it and every value below it are ``m0``
    (servers number what was there before differently: Dovecot gives all appended
    messages one MODSEQ, we give each its own); values above it are ``m1``, ``m2``... in
    order, which compare when both servers order the script's own changes alike."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.base: int | None = None

    def note(self, value: int, highest: bool = False) -> None:
        self.seen.add(value)
        if highest and self.base is None:
            self.base = value

    def rank(self, value: int) -> str:
        base = self.base or 0
        if value <= base:
            return "m0"
        return f"m{sorted(v for v in self.seen if v > base).index(value) + 1}"


_MODSEQ_NUMBERS = re.compile(
    rb"(MODSEQ \(|HIGHESTMODSEQ |MODSEQ |CHANGEDSINCE |QRESYNC \(\d+ |(?:all|priv|shared) )"
    rb"(\d+)",
    re.IGNORECASE,
)


def _fetch(items: list[Any], modseqs: ModSeqs) -> str:
    pairs = {}
    for index in range(0, len(items) - 1, 2):
        name, value = str(items[index]).upper(), items[index + 1]
        if name == "FLAGS":
            value = sorted(str(flag) for flag in value)
        elif name == "MODSEQ":
            value = [modseqs.rank(value[0])]
        elif name in ("BODY", "BODYSTRUCTURE") and isinstance(value, list):
            value = _structure(value)
        pairs[name] = show(value)
    return "FETCH " + " ".join(f"{name}={value}" for name, value in sorted(pairs.items()))


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, bytes) else value


def _params(params: Any) -> Any:
    """Parameter names are case-insensitive (RFC 2045 5.1); their values are kept."""
    if not isinstance(params, list):
        return params
    return [_lower(item) if index % 2 == 0 else item for index, item in enumerate(params)]


def _structure(part: list[Any]) -> list[Any]:
    """A BODY or BODYSTRUCTURE with its case-insensitive fields (type, subtype, parameter
    names, encoding, disposition) in lower case, and line counts marked ``lines=N`` so that
    an entry of DELIBERATE can tell them from sizes."""
    if isinstance(part[0], list):  # multipart: parts, subtype, then extension data
        count = len(list(takewhile(lambda p: isinstance(p, list), part)))
        rest = part[count:]
        out = [_structure(child) for child in part[:count]] + [_lower(rest[0])]
        if len(rest) > 1:
            out.append(_params(rest[1]))
        if len(rest) > 2:
            out.append(_disposition(rest[2]))
        return out + rest[3:]
    out = [_lower(part[0]), _lower(part[1]), _params(part[2]), part[3], part[4]]
    out += [_lower(part[5]), part[6]]
    rest = part[7:]
    kind = (out[0], out[1])
    if kind in ((b"message", b"rfc822"), (b"message", b"global")) and len(rest) >= 3:
        out += [rest[0], _structure(rest[1]), Atom(f"lines={rest[2]}")]
        rest = rest[3:]
    elif out[0] == b"text" and rest:
        out.append(Atom(f"lines={rest[0]}"))
        rest = rest[1:]
    if len(rest) > 1:  # md5, then disposition
        rest = [rest[0], _disposition(rest[1]), *rest[2:]]
    return out + rest


def _disposition(value: Any) -> Any:
    if isinstance(value, list) and value:
        return [_lower(value[0]), *(_params(item) for item in value[1:])]
    return value


def _esearch(items: list[Any], modseqs: ModSeqs) -> str:
    if items and isinstance(items[0], list) and str(items[0][0]).upper() == "TAG":
        items = items[1:]  # the correlator: the tag, which differs by construction
    out = []
    index = 0
    if items and str(items[0]).upper() == "UID":
        out.append("UID")
        index = 1
    pairs = {}
    while index < len(items) - 1:
        name, value = str(items[index]).upper(), items[index + 1]
        if name in ("ALL", "PARTIAL") and not isinstance(value, list):
            value = compact(expand(value))
        elif name == "MODSEQ":
            value = modseqs.rank(value)
        pairs[name] = show(value)
        index += 2
    return " ".join(["ESEARCH", *out, *(f"{k}={v}" for k, v in sorted(pairs.items()))])


def _code(rest: bytes, modseqs: ModSeqs) -> str:
    """The ``[CODE args]`` that starts ``rest`` (the text after OK/NO/BAD), normalised;
    '' when there is none. The human-readable text after it is not read at all."""
    if not rest.startswith(b"["):
        return ""
    code = parse(rest[1 : rest.index(b"]")])
    name = str(code[0]).upper()
    if name in ("UIDVALIDITY", "APPENDUID", "COPYUID"):
        code = [code[0], "*", *code[2:]]
    elif name == "HIGHESTMODSEQ":
        code = [code[0], modseqs.rank(code[1])]
    elif name == "MODIFIED":
        code = [code[0], compact(expand(code[1]))]
    elif name == "BADCHARSET":  # the list of supported charsets is optional (RFC 9051 7.1)
        code = code[:1]
    elif name == "PERMANENTFLAGS":
        code = [code[0], sorted(str(flag) for flag in code[1])]
    return "[" + " ".join(show(item) for item in code) + "]"


def _name(value: Any) -> Any:
    """A mailbox name: an atom, a quoted string or a literal, the same name."""
    return value.encode() if isinstance(value, Atom) else value


def normalise_untagged(line: bytes, modseqs: ModSeqs, children: bool = True) -> str:
    word = line[2:].split(b" ", 1)[0].upper()
    if word in (b"OK", b"NO", b"BAD", b"BYE", b"PREAUTH"):
        return f"{word.decode()} {_code(line[3 + len(word) :], modseqs)}".strip()
    tokens = parse(line[2:])
    head = str(tokens[0]).upper() if tokens else ""
    if len(tokens) >= 2 and isinstance(tokens[0], int):
        kind = str(tokens[1]).upper()
        if kind == "FETCH":
            return f"{tokens[0]} " + _fetch(tokens[2], modseqs)
        return f"{tokens[0]} {kind}"
    if head in ("SEARCH", "SORT"):
        numbers = [n for n in tokens[1:] if isinstance(n, int)]
        modseq = [modseqs.rank(t[1]) for t in tokens[1:] if isinstance(t, list)]
        if head == "SEARCH":
            numbers = sorted(numbers)  # SEARCH results are a set; SORT's order is the answer
        return " ".join([head, *map(str, numbers), *(f"(MODSEQ {m})" for m in modseq)])
    if head == "ESEARCH":
        return _esearch(tokens[1:], modseqs)
    if head == "FLAGS":
        return "FLAGS " + show(sorted(str(flag) for flag in tokens[1]))
    if head in ("LIST", "LSUB"):
        attributes = sorted(str(a).upper() for a in tokens[1])
        if not children:  # unasked, a server MAY send them (RFC 5258 4): not compared
            attributes = [a for a in attributes if a not in ("\\HASCHILDREN", "\\HASNOCHILDREN")]
        rest = [show(tokens[2]), show(_name(tokens[3]))]
        if len(tokens) > 4 and isinstance(tokens[4], list):  # extended data: tags are astrings
            rest.append(show([_name(t) if i % 2 == 0 else t for i, t in enumerate(tokens[4])]))
        return " ".join([head, show(attributes), *rest])
    if head == "STATUS":
        items = tokens[2]
        pairs = {}
        for index in range(0, len(items) - 1, 2):
            name, value = str(items[index]).upper(), items[index + 1]
            if name == "UIDVALIDITY":
                value = "*"
            elif name == "HIGHESTMODSEQ":
                value = modseqs.rank(value)
            pairs[name] = value
        body = " ".join(f"{k} {v}" for k, v in sorted(pairs.items()))
        return f"STATUS {show(_name(tokens[1]))} ({body})"
    if head == "VANISHED":
        earlier = tokens[1] == ["EARLIER"]
        numbers = expand(tokens[-1])
        return f"VANISHED{' (EARLIER)' if earlier else ''} {compact(numbers)}"
    if head == "THREAD":
        return "THREAD " + " ".join(show(item) for item in tokens[1:])
    return " ".join(show(token) for token in tokens)


# -- scripts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deliberate:
    """A place where we answer otherwise than Dovecot on purpose. In the answers to
    commands matching ``command``, the untagged answers matching ``answer`` (a regex on
    the normalised text) are dropped from both transcripts, or, with ``replace``, rewritten
    by ``re.sub`` on both (the tagged status too). ``reason`` says why we differ; keep
    these few and narrow."""

    command: str
    answer: str
    reason: str
    replace: str | Callable[[re.Match[str]], str] | None = None

    def apply(self, command: str, answer: str) -> str | None:
        if not re.search(self.command, command, re.IGNORECASE):
            return answer
        if self.replace is not None:
            return re.sub(self.answer, self.replace, answer)
        return None if re.search(self.answer, answer) else answer


HIGHESTMODSEQ_ALWAYS = Deliberate(
    r"^(SELECT|EXAMINE) \S+$",
    r"^OK \[HIGHESTMODSEQ ",
    "RFC 7162 3.1.2.1: a server that keeps mod-sequences persistently sends HIGHESTMODSEQ "
    "on every successful SELECT and EXAMINE; Dovecot sends it once CONDSTORE is enabled.",
)
LAST_LINE_COUNTS = Deliberate(
    r"BODY",
    r"lines=\d+",
    "A text body's last line counts as a line even without a line break (the line "
    "before a MIME delimiter never has one: the CRLF belongs to the delimiter, RFC 2046 "
    "5.1.1); Dovecot counts line feeds. RFC 9051 only says 'the size in text lines'.",
    replace="lines=?",
)


def _system_flags_only(flags: str) -> str:
    kept = " ".join(flag for flag in flags.split() if flag.startswith("\\"))
    return f"OK [PERMANENTFLAGS ({kept})]"


KEYWORD_SEARCH_ADDS_NOTHING = Deliberate(
    r"KEYWORD",
    r"^(FLAGS|OK \[PERMANENTFLAGS)",
    "Dovecot adds a keyword that a SEARCH (or SORT) names to the mailbox's keywords and "
    "announces the new FLAGS; a search changes nothing here.",
)
NONEXISTENT_CODE = Deliberate(
    r"^STATUS ",
    r"^NO \[NONEXISTENT\]$",
    "STATUS of a mailbox that does not exist says NO [NONEXISTENT] (RFC 5530), as SELECT "
    "does; Dovecot 2.3 says a plain NO.",
    replace="NO",
)
KEYWORDS_IN_PERMANENTFLAGS = Deliberate(
    r"",
    r"^OK \[PERMANENTFLAGS \((.*)\)\]$",
    "PERMANENTFLAGS lists the system flags and \\* (any keyword may be created); Dovecot "
    "also names the keywords the mailbox has. RFC 9051 7.1 allows both.",
    replace=lambda found: _system_flags_only(found.group(1)),
)
RFC2231_DECODED = Deliberate(
    r"BODY",
    r"\(\"(name|filename)\*\" \"utf-8''R%C3%A9sum%C3%A9\.pdf\"\)",
    "RFC 2231 parameters (name*=utf-8''...) are decoded into the plain parameter (sent as a "
    "literal), so that clients which do not know RFC 2231 show the file name; Dovecot passes "
    "them on as written. (Rewrites the corpus's one such parameter.)",
    replace=r'("\1" "Résumé.pdf")',
)
BROKEN_MIME_REASON = (
    "A multipart without a boundary and a Content-Type that does not parse are read as "
    "text/plain (RFC 2045 5.2 recommends that default for an invalid Content-Type), and an "
    "address that does not parse is kept as written; Dovecot makes an empty part, an empty "
    "type, and the host SYNTAX_ERROR. Both are guesses about a broken message."
)


@dataclass
class Step:
    """One command. ``text`` may hold ``{name}`` fields filled from earlier captures;
    ``capture`` maps a name to a regex whose first group, found in this command's raw
    answer on the server at hand, becomes that name (a MODSEQ, a UIDVALIDITY...)."""

    text: str
    capture: dict[str, str] = field(default_factory=dict)
    literal: bytes | None = None  # sent as a LITERAL+ literal after the text


@dataclass
class Exchange:
    command: str
    answers: list[str]
    status: str

    def render(self) -> str:
        return "\n".join([f"C: {self.command}", *(f"S: {a}" for a in self.answers), self.status])


def as_step(step: Step | str) -> Step:
    return step if isinstance(step, Step) else Step(step)


def run_script(
    address: tuple[str, int],
    steps: Sequence[Step | str],
    deliberate: Sequence[Deliberate] = (),
) -> list[Exchange]:
    """Log in as USER, run ``steps`` in order and return the normalised transcript."""
    raw: list[tuple[str, list[bytes], bytes]] = []
    values: dict[str, str] = {}
    with Raw(address) as client:
        client.login()
        for number, item in enumerate(map(as_step, steps)):
            text = item.text.format(**values)
            payload = text.encode()
            if item.literal is not None:
                payload += b" {%d+}\r\n" % len(item.literal) + item.literal
            untagged, tagged = client.command(payload, f"d{number}")
            joined = b"\r\n".join([*untagged, tagged])
            for name, pattern in item.capture.items():
                found = re.search(pattern.encode(), joined)
                assert found is not None, f"{pattern!r} not in the answer to {text!r}"
                values[name] = found.group(1).decode()
                if values[name].isdigit():  # SEARCH MODSEQ is >=, CHANGEDSINCE is >
                    values[name + "_next"] = str(int(values[name]) + 1)
            raw.append((text, untagged, tagged))
    modseqs = ModSeqs()
    for text, untagged, tagged in raw:
        for index, line in enumerate([text.encode(), *untagged, tagged]):
            for found in _MODSEQ_NUMBERS.finditer(line):
                highest = found.group(1).upper() == b"HIGHESTMODSEQ " and index > 0
                modseqs.note(int(found.group(2)), highest)
    transcript = []
    for text, untagged, tagged in raw:
        shown = _rank_command(text, modseqs)
        answers = []
        for line in untagged:
            answer: str | None = normalise_untagged(line, modseqs, _asks_children(text))
            for entry in deliberate:
                answer = entry.apply(text, answer) if answer is not None else None
            if answer is not None:
                answers.append(answer)
        answers.sort()
        word, _, rest = tagged.split(b" ", 1)[1].partition(b" ")
        status: str | None = f"{word.decode().upper()} {_code(rest, modseqs)}".strip()
        for entry in deliberate:  # a status is only ever rewritten, never dropped
            if entry.replace is not None and status is not None:
                status = entry.apply(text, status)
        transcript.append(Exchange(shown, answers, status))
    return transcript


def _asks_children(command: str) -> bool:
    """Whether a LIST asks for \\HasChildren/\\HasNoChildren (RETURN (CHILDREN), RFC 5258);
    other commands' answers keep them."""
    upper = command.upper()
    return not upper.startswith(("LIST", "LSUB")) or bool(re.search(r"RETURN \(.*CHILDREN", upper))


def _rank_command(text: str, modseqs: ModSeqs) -> str:
    """The command as shown in the transcript: its MODSEQ arguments (which differ per
    server) as ranks, UIDVALIDITY arguments of QRESYNC and of IMAP URLs as ``*``."""
    text = re.sub(r"QRESYNC \((\d+)", "QRESYNC (*", text)
    text = re.sub(r";UIDVALIDITY=\d+", ";UIDVALIDITY=*", text, flags=re.IGNORECASE)  # URLs
    return re.sub(
        r"(CHANGEDSINCE |MODSEQ |QRESYNC \(\* |(?:all|priv|shared) )(\d+)",
        lambda m: m.group(1) + modseqs.rank(int(m.group(2))),
        text,
        flags=re.IGNORECASE,
    )


def compare(
    ours: tuple[str, int],
    dovecot: tuple[str, int],
    steps: Sequence[Step | str],
    deliberate: Sequence[Deliberate] = (),
) -> None:
    """Run ``steps`` on both servers and assert the normalised transcripts are equal; the
    failure shows the differences as a diff (``-`` ours, ``+`` Dovecot's)."""
    mine = "\n".join(e.render() for e in run_script(ours, steps, deliberate)).splitlines()
    theirs = "\n".join(e.render() for e in run_script(dovecot, steps, deliberate)).splitlines()
    if mine != theirs:
        diff = difflib.unified_diff(mine, theirs, "stalwart-py", "dovecot", n=2, lineterm="")
        raise AssertionError("the answers differ:\n" + "\n".join(diff))


# -- loading the same messages into both -----------------------------------------------------


@dataclass(frozen=True)
class Message:
    data: bytes
    flags: str = ""  # "\\Seen $Label1", as APPEND takes them
    date: str = "01-Jan-2024 12:00:00 +0000"


def append_all(address: tuple[str, int], mailbox: str, messages: Sequence[Message]) -> None:
    """Create ``mailbox`` (unless INBOX) and APPEND ``messages`` to it in order, then
    SELECT it once, so that no later session sees \\Recent (RFC 3501 2.3.2: the first
    session to see a message gets it; a comparison should not depend on it)."""
    with Raw(address) as client:
        client.login()
        if mailbox.upper() != "INBOX":
            _, tagged = client.command(f'CREATE "{mailbox}"', "c")
            assert b"c OK" in tagged, tagged
        for message in messages:
            head = f'APPEND "{mailbox}" ({message.flags}) "{message.date}" '
            tilde = "~" if b"\0" in message.data else ""  # NUL only in literal8 (RFC 3516)
            payload = f"{head}{tilde}{{{len(message.data)}+}}\r\n".encode() + message.data
            _, tagged = client.command(payload, "a")
            assert tagged.startswith(b"a OK"), tagged
        _, tagged = client.command(f'SELECT "{mailbox}"', "s")
        assert tagged.startswith(b"s OK"), tagged
