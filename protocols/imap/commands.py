"""Client commands (RFC 9051 section 6 and the extensions the server offers) as values.

``parse_command(data)`` turns one complete command (as ``framing`` delivered it) into a
``Command``: its tag, its upper-case name, whether it had the ``UID`` prefix, and a small
frozen dataclass of arguments. Mailbox names stay raw bytes here: whether they are modified
UTF-7 or UTF-8 depends on the session (``ENABLE IMAP4rev2``), so the session decodes them.
A ``ParseError`` carries the tag when it could be read, for the ``BAD`` reply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from protocols.imap.append_syntax import flag, flag_list, parse_append
from protocols.imap.arguments import (
    Authenticate,
    Command,
    CopyMove,
    Enable,
    Fetch,
    Id,
    ListArgs,
    Login,
    MailboxArg,
    Qresync,
    QuotaRoot,
    Rename,
    Search,
    Select,
    SetQuota,
    Status,
    Store,
    UidSet,
)
from protocols.imap.compress import parse_compress
from protocols.imap.fetch_items import FetchModifiers, parse_fetch_items, parse_fetch_modifiers
from protocols.imap.lexer import MAX_NUMBER64, ParseError, Reader
from protocols.imap.notify_args import parse_notify
from protocols.imap.search_keys import (
    SearchParser,
)
from protocols.imap.sequence import parse_sequence_set
from protocols.imap.sort_parse import parse_returns, parse_sort, parse_thread

MAX_LIST_PATTERNS = 64
MAX_ID_FIELDS = 30  # RFC 2971 section 3.3
# RFC 9051 section 6.3.11, STATUS=SIZE (RFC 8438), CONDSTORE (RFC 7162), APPENDLIMIT (RFC
# 7889), and DELETED-STORAGE, which RFC 9208 section 4.1.4 requires of a server that
# advertises QUOTA=RES-STORAGE (as DELETED for QUOTA=RES-MESSAGE).
STATUS_ITEMS = frozenset(
    (
        "MESSAGES",
        "UIDNEXT",
        "UIDVALIDITY",
        "UNSEEN",
        "DELETED",
        "DELETED-STORAGE",
        "SIZE",
        "HIGHESTMODSEQ",
        "RECENT",
        "APPENDLIMIT",
    )
)
SEARCH_RETURN_OPTIONS = frozenset(("MIN", "MAX", "ALL", "COUNT", "SAVE"))
LIST_SELECTION = frozenset(("SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"))
LIST_RETURN = frozenset(("SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"))


# -- small grammar pieces -------------------------------------------------------------------


def mailbox(reader: Reader) -> bytes:
    return reader.astring()


# -- the commands ---------------------------------------------------------------------------


def _no_args(reader: Reader, uid: bool) -> None:
    return None


def _login(reader: Reader, uid: bool) -> Login:
    reader.space()
    user = reader.text("the user name")
    reader.space()
    return Login(user, reader.text("the password"))


def _authenticate(reader: Reader, uid: bool) -> Authenticate:
    reader.space()
    mechanism = reader.atom().upper()
    initial = None
    if reader.skip(b" "):
        start = reader.pos
        while reader.pos < reader.end and reader.data[reader.pos] not in b" \r\n":
            reader.pos += 1
        initial = reader.data[start : reader.pos]
        if not initial:
            raise ParseError("empty initial response (send = for an empty one)")
    return Authenticate(mechanism, initial)


def _select(reader: Reader, uid: bool) -> Select:
    reader.space()
    name = mailbox(reader)
    condstore = False
    qresync = None
    if reader.skip(b" "):

        def param(reader: Reader) -> None:
            nonlocal condstore, qresync
            keyword = reader.keyword()
            if keyword == "CONDSTORE":
                condstore = True
            elif keyword == "QRESYNC":
                reader.space()
                qresync = _qresync(reader)
            else:
                raise ParseError(f"unknown SELECT parameter {keyword}")

        reader.parenthesized(param, allow_empty=False)
    return Select(name, condstore, qresync)


def _qresync(reader: Reader) -> Qresync:
    """``(uidvalidity modseq [known-uids [(seq-match-data)]])`` (RFC 7162 section 3.2.5)."""
    reader.expect(b"(")
    uidvalidity = reader.nz_number()
    reader.space()
    modseq = reader.nz_number(MAX_NUMBER64)
    known = None
    seq_match = None
    if reader.skip(b" "):
        if reader.peek() != b"(":
            known = parse_sequence_set(reader)
            reader.skip(b" ")
        if reader.skip(b"("):
            sequences = parse_sequence_set(reader)
            reader.space()
            uids = parse_sequence_set(reader)
            reader.expect(b")")
            seq_match = (sequences, uids)
    reader.expect(b")")
    return Qresync(uidvalidity, modseq, known, seq_match)


def _mailbox_only(reader: Reader, uid: bool) -> MailboxArg:
    reader.space()
    return MailboxArg(mailbox(reader))


def _create(reader: Reader, uid: bool) -> MailboxArg:
    reader.space()
    name = mailbox(reader)
    uses: list[str] = []
    if reader.skip(b" "):

        def param(reader: Reader) -> None:
            if reader.keyword() != "USE":
                raise ParseError("unknown CREATE parameter")
            reader.space()
            uses.extend(flag_list(reader))

        reader.parenthesized(param, allow_empty=False)
    return MailboxArg(name, tuple(uses))


def _rename(reader: Reader, uid: bool) -> Rename:
    reader.space()
    old = mailbox(reader)
    reader.space()
    return Rename(old, mailbox(reader))


def _list(reader: Reader, uid: bool) -> ListArgs:
    reader.space()
    selection: set[str] = set()
    extended = False
    if reader.peek() == b"(":
        extended = True
        selection.update(reader.parenthesized(lambda r: r.keyword()))
        unknown = selection - LIST_SELECTION
        if unknown:
            raise ParseError(f"unknown LIST selection option {min(unknown)}")
        if "RECURSIVEMATCH" in selection and len(selection) == 1:
            raise ParseError("RECURSIVEMATCH needs another selection option")
        reader.space()
    reference = mailbox(reader)
    reader.space()
    if reader.peek() == b"(":
        extended = True
        patterns = reader.parenthesized(lambda r: r.list_mailbox(), allow_empty=False)
    else:
        patterns = [reader.list_mailbox()]
    if len(patterns) > MAX_LIST_PATTERNS:
        raise ParseError("too many LIST patterns")
    returns: set[str] = set()
    status_items: tuple[str, ...] = ()
    if reader.skip(b" "):
        extended = True
        if reader.keyword() != "RETURN":
            raise ParseError("expected RETURN")
        reader.space()

        def option(reader: Reader) -> str:
            nonlocal status_items
            name = reader.keyword()
            if name == "STATUS":
                reader.space()
                status_items = _status_items(reader)
            elif name not in LIST_RETURN:
                raise ParseError(f"unknown LIST return option {name}")
            return name

        returns.update(reader.parenthesized(option))
    return ListArgs(
        reference, tuple(patterns), frozenset(selection), frozenset(returns), status_items, extended
    )


def _lsub(reader: Reader, uid: bool) -> ListArgs:
    reader.space()
    reference = mailbox(reader)
    reader.space()
    return ListArgs(reference, (reader.list_mailbox(),))


def _status_items(reader: Reader) -> tuple[str, ...]:
    items = reader.parenthesized(lambda r: r.keyword(), allow_empty=False)
    for item in items:
        if item not in STATUS_ITEMS:
            raise ParseError(f"unknown STATUS item {item}")
    return tuple(dict.fromkeys(items))


def _status(reader: Reader, uid: bool) -> Status:
    reader.space()
    name = mailbox(reader)
    reader.space()
    return Status(name, _status_items(reader))


def _enable(reader: Reader, uid: bool) -> Enable:
    names = []
    while reader.skip(b" "):
        names.append(reader.keyword())
    if not names:
        raise ParseError("ENABLE needs at least one capability")
    return Enable(tuple(names))


def _id(reader: Reader, uid: bool) -> Id:
    reader.space()
    if reader.peek_upper(b"NIL"):
        reader.pos += 3
        return Id(None)
    values = reader.parenthesized(lambda r: r.nstring())
    if len(values) % 2 or len(values) > 2 * MAX_ID_FIELDS:
        raise ParseError("ID takes up to 30 field/value pairs")
    fields = []
    for index in range(0, len(values), 2):
        key, value = values[index], values[index + 1]
        if key is None:
            raise ParseError("an ID field name cannot be NIL")
        text = value.decode("utf-8", "replace") if value is not None else None
        fields.append((key.decode("utf-8", "replace")[:30], text and text[:1024]))
    return Id(tuple(fields))


def _fetch(reader: Reader, uid: bool) -> Fetch:
    reader.space()
    sequence = parse_sequence_set(reader)
    reader.space()
    items = parse_fetch_items(reader)
    modifiers = FetchModifiers()
    if reader.skip(b" "):
        modifiers = parse_fetch_modifiers(reader)
    if modifiers.vanished and not uid:
        raise ParseError("VANISHED is for UID FETCH only")
    return Fetch(sequence, items, modifiers)


def _store(reader: Reader, uid: bool) -> Store:
    reader.space()
    sequence = parse_sequence_set(reader)
    reader.space()
    unchanged_since = None
    if reader.peek() == b"(":

        def modifier(reader: Reader) -> None:
            nonlocal unchanged_since
            if reader.keyword() != "UNCHANGEDSINCE":
                raise ParseError("unknown STORE modifier")
            reader.space()
            unchanged_since = reader.number(MAX_NUMBER64)

        reader.parenthesized(modifier, allow_empty=False)
        reader.space()
    mode = "replace"
    if reader.skip(b"+"):
        mode = "add"
    elif reader.skip(b"-"):
        mode = "remove"
    item = reader.keyword()
    if item not in ("FLAGS", "FLAGS.SILENT"):
        raise ParseError("expected FLAGS or FLAGS.SILENT")
    reader.space()
    if reader.peek() == b"(":
        flags = flag_list(reader)
    else:
        flags_list = [flag(reader)]
        while reader.skip(b" "):
            flags_list.append(flag(reader))
        flags = tuple(flags_list)
    return Store(sequence, mode, item == "FLAGS.SILENT", flags, unchanged_since)


def _copy_move(reader: Reader, uid: bool) -> CopyMove:
    reader.space()
    sequence = parse_sequence_set(reader)
    reader.space()
    return CopyMove(sequence, mailbox(reader))


def _search(reader: Reader, uid: bool) -> Search:
    reader.space()
    returns = None
    charset = None
    partial = None
    if reader.peek_upper(b"RETURN"):
        # RFC 4731 options, and CONTEXT, UPDATE (RFC 5267) and PARTIAL (RFC 9394)
        parsed = parse_returns(reader)
        returns, partial = parsed.given, parsed.partial
        reader.space()
    if reader.peek_upper(b"CHARSET"):
        reader.pos += len(b"CHARSET")
        reader.space()
        charset = reader.astring().decode("ascii", "replace").upper()
        reader.space()  # an unknown charset is NO, not BAD (search_command.py)
    criteria = SearchParser(reader).keys()
    return Search(criteria, returns, charset, partial)


def parse_cancel_update(reader: Reader, uid: bool) -> tuple[str, ...]:
    """``CANCELUPDATE "tag" *(SP "tag")`` (RFC 5267 section 4.2)."""
    tags = []
    while reader.skip(b" "):
        tags.append(reader.string().decode("utf-8", "replace"))
    if not tags:
        raise ParseError("CANCELUPDATE needs the tag of a search")
    return tuple(tags)


def _expunge(reader: Reader, uid: bool) -> UidSet | None:
    if not uid:
        return None
    reader.space()
    return UidSet(parse_sequence_set(reader))


def _quota_root(reader: Reader, uid: bool) -> QuotaRoot:
    reader.space()
    return QuotaRoot(reader.text("the quota root"))


def _setquota(reader: Reader, uid: bool) -> SetQuota:
    reader.space()
    root = reader.text("the quota root")
    reader.space()
    limits: list[tuple[str, int]] = []

    def limit(reader: Reader) -> None:
        name = reader.keyword()
        reader.space()
        limits.append((name, reader.number(MAX_NUMBER64)))

    reader.parenthesized(limit)
    return SetQuota(root, tuple(limits))


PARSERS: dict[str, Callable[[Reader, bool], Any]] = {
    "CAPABILITY": _no_args,
    "NOOP": _no_args,
    "LOGOUT": _no_args,
    "STARTTLS": _no_args,
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    "ENABLE": _enable,
    "SELECT": _select,
    "EXAMINE": _select,
    "CREATE": _create,
    "DELETE": _mailbox_only,
    "RENAME": _rename,
    "SUBSCRIBE": _mailbox_only,
    "UNSUBSCRIBE": _mailbox_only,
    "LIST": _list,
    "LSUB": _lsub,
    "NAMESPACE": _no_args,
    "STATUS": _status,
    "APPEND": parse_append,
    "IDLE": _no_args,
    "CHECK": _no_args,
    "CLOSE": _no_args,
    "UNSELECT": _no_args,
    "EXPUNGE": _expunge,
    "SEARCH": _search,
    "FETCH": _fetch,
    "STORE": _store,
    "COPY": _copy_move,
    "MOVE": _copy_move,
    "ID": _id,
    "GETQUOTA": _quota_root,
    "GETQUOTAROOT": _mailbox_only,
    "SETQUOTA": _setquota,
    "COMPRESS": parse_compress,
    "NOTIFY": parse_notify,
    "SORT": parse_sort,  # RFC 5256, ESORT (RFC 5267)
    "THREAD": parse_thread,
    "CANCELUPDATE": parse_cancel_update,  # RFC 5267
}
UID_COMMANDS = frozenset(("FETCH", "STORE", "COPY", "MOVE", "SEARCH", "EXPUNGE", "SORT", "THREAD"))


class CommandError(ParseError):
    """A ParseError with the tag of the command, when one could be read."""

    def __init__(self, tag: str, error: ParseError) -> None:
        super().__init__(str(error), error.code)
        self.tag = tag


def parse_command(data: bytes) -> Command:
    """One complete command -> ``Command``; raises ``CommandError`` (tag "*" when the tag
    itself is missing)."""
    reader = Reader(data)
    tag = "*"
    try:
        tag = reader.tag()
        reader.space()
        name = reader.keyword()
        uid = False
        if name == "UID":
            reader.space()
            name = reader.keyword()
            if name not in UID_COMMANDS:
                raise ParseError(f"UID {name} is not a command")
            uid = True
        parser = PARSERS.get(name)
        if parser is None:
            raise ParseError(f"unknown command {name}")
        args = parser(reader, uid)
        reader.finish()
    except ParseError as error:
        raise CommandError(tag, error) from None
    return Command(tag, name, uid, args)
