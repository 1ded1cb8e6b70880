"""Mail filters without writing Sieve: a few settings in, a Sieve script (RFC 5228) out.

What the filters page offers, and the Sieve each becomes, in this order:

* **Vacation reply** (RFC 5230 ``vacation``; at most one reply per sender every
  ``VACATION_DAYS`` days, never to lists, bulk mail or bounces, as the interpreter rules),
  between optional start and end dates (RFC 5260 ``currentdate`` with ``:value "ge"``/``"le"``,
  RFC 5231 ``relational``), with a subject and a body.
* **Forwarding** to one address: ``redirect :copy`` (RFC 3894) keeping a copy here, or
  ``redirect`` and ``stop`` (no copy: the implicit keep is cancelled).
* **Rules** "mail from X goes to folder Y": ``if address :contains "from" "X" { fileinto
  :create "Y"; stop; }`` (RFC 5490 ``:create`` makes the folder when it is missing).

The settings travel in the script's first line as a JSON comment (``HEADER``), so the page
reads them back; a script whose body is not what those settings generate was edited by hand
(``Filters.matches``), which the page says before a save replaces it. Everything here is
sans-IO and checked by ``parse_script`` before it is stored.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import asdict, dataclass, field

from stalwart_py import names

HEADER = "# stalwart-py web filters: "
SCRIPT_NAME = "web-filters"  # the account's script the page writes (and makes active)
VACATION_DAYS = 7
MAX_RULES = 100
MAX_TEXT = 200  # characters of a subject, a rule's sender or folder
MAX_BODY = 10_000


@dataclass
class Filters:
    vacation: bool = False
    subject: str = ""
    body: str = ""
    start: str = ""  # YYYY-MM-DD, or "" for no start
    end: str = ""
    forward: str = ""
    keep_copy: bool = True
    rules: list[tuple[str, str]] = field(default_factory=list)  # (sender contains, folder)

    def to_json(self) -> str:
        """One line (JSON escapes line breaks), ASCII: safe in a Sieve comment."""
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=True)

    @classmethod
    def from_script(cls, text: str) -> Filters | None:
        """The settings a script generated here carries in its first line; None otherwise."""
        first = text.split("\n", 1)[0].rstrip("\r")
        if not first.startswith(HEADER):
            return None
        try:
            data = json.loads(first[len(HEADER) :])
            found = cls(**{k: v for k, v in data.items() if k != "rules"})
            found.rules = [(str(a), str(b)) for a, b in data.get("rules", [])]
        except (ValueError, TypeError):
            return None
        return found

    def matches(self, text: str) -> bool:
        """Whether ``text`` is what these settings generate (not edited by hand)."""
        return generate(self) == text


def quote(text: str) -> str:
    """A Sieve quoted string (RFC 5228 2.4.2): ``\\`` and ``"`` escaped; line breaks (CRLF)
    may stand in it as they are."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lines(text: str) -> str:
    return "\r\n".join(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def check(filters: Filters, own_address: str) -> list[str]:
    """What is wrong with the settings, as sentences for the page (empty: nothing)."""
    errors: list[str] = []

    def one_line(value: str, what: str) -> None:
        if len(value) > MAX_TEXT:
            errors.append(f"{what} has at most {MAX_TEXT} characters.")
        if not value.isprintable():
            errors.append(f"{what} may not hold line breaks or control characters.")

    if filters.vacation:
        one_line(filters.subject, "The reply's subject")
        if not filters.body.strip():
            errors.append("The vacation reply needs a message.")
        if len(filters.body) > MAX_BODY:
            errors.append(f"The vacation reply has at most {MAX_BODY} characters.")
        if any(not (c.isprintable() or c in "\r\n\t") for c in filters.body):
            errors.append("The vacation reply may not hold control characters.")
        dates = []
        for value, what in ((filters.start, "start"), (filters.end, "end")):
            if value:
                try:
                    dates.append(datetime.date.fromisoformat(value))
                except ValueError:
                    errors.append(f"The {what} date is not a date (YYYY-MM-DD).")
        if len(dates) == 2 and dates[0] > dates[1]:
            errors.append("The vacation ends before it starts.")
    if filters.forward:
        try:
            filters.forward = names.mailbox(filters.forward.strip().lower())
        except names.InvalidName as exc:
            errors.append(f"The forwarding address is not an address: {exc}.")
        else:
            if filters.forward == own_address:
                errors.append("Forwarding to your own address would loop.")
    if len(filters.rules) > MAX_RULES:
        errors.append(f"At most {MAX_RULES} rules.")
    for number, (sender, folder) in enumerate(filters.rules, 1):
        if not sender or not folder:
            errors.append(f"Rule {number} needs both a sender and a folder.")
        one_line(sender, f"Rule {number}'s sender")
        one_line(folder, f"Rule {number}'s folder")
        if folder.startswith("/") or folder.endswith("/") or "//" in folder:
            errors.append(f"Rule {number}'s folder is not a folder name.")
    return errors


def generate(filters: Filters) -> str:
    """The Sieve script of ``filters`` (checked by ``check`` first), CRLF line ends."""
    needs: list[str] = []
    body: list[str] = []
    if filters.vacation:
        needs.append("vacation")
        conditions = []
        if filters.start:
            conditions.append(f'currentdate :value "ge" "date" {quote(filters.start)}')
        if filters.end:
            conditions.append(f'currentdate :value "le" "date" {quote(filters.end)}')
        if conditions:
            needs += ["date", "relational"]
        subject = f" :subject {quote(filters.subject)}" if filters.subject else ""
        action = f"vacation :days {VACATION_DAYS}{subject} {quote(_lines(filters.body))};"
        body.append("# Vacation reply")
        if conditions:
            test = conditions[0] if len(conditions) == 1 else f"allof({', '.join(conditions)})"
            body += [f"if {test} {{", f"  {action}", "}"]
        else:
            body.append(action)
    if filters.forward:
        body.append("# Forwarding")
        if filters.keep_copy:
            needs.append("copy")
            body.append(f"redirect :copy {quote(filters.forward)};")
        else:
            body += [f"redirect {quote(filters.forward)};", "stop;"]
    if filters.rules:
        needs += ["fileinto", "mailbox"]
        body.append("# Rules: mail from a sender into a folder")
        for sender, folder in filters.rules:
            body += [
                f'if address :contains "from" {quote(sender)} {{',
                f"  fileinto :create {quote(folder)};",
                "  stop;",
                "}",
            ]
    head = [
        HEADER + filters.to_json(),
        "# Written by the filters page (/account/filters): saving that form again replaces it.",
    ]
    if needs:
        head.append(f"require [{', '.join(quote(n) for n in dict.fromkeys(needs))}];")
    return "\r\n".join(head + body) + "\r\n"
