"""What each Sieve command and test takes: the table the validator checks scripts against.

Every command and test of RFC 5228 and of the supported extensions is one ``Spec``: the
extension a script must ``require`` to use it, its tagged arguments (each with the kind of
value that follows it, the extension it needs, and the group of mutually exclusive tags it
belongs to), its positional arguments, and whether it takes a test, a test list or a block.
Tagged arguments come before positional ones (RFC 5228 section 2.6.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

# Argument kinds.
STRING = "string"  # exactly one string
STRINGS = "string list"  # a string or a [...] list
NUMBER = "number"

# The extensions this implementation supports: the SIEVE capability of ManageSieve.
EXTENSIONS: tuple[str, ...] = (
    "fileinto",
    "reject",
    "ereject",
    "envelope",
    "encoded-character",
    "vacation",
    "vacation-seconds",
    "subaddress",
    "comparator-i;ascii-numeric",
    "relational",
    "imap4flags",
    "copy",
    "include",
    "variables",
    "body",
    "mailbox",
    "mime",
    "foreverypart",
    "extracttext",
    "enotify",
    # ext_checks.py and ext_run.py check and run these (dates, editheader, regex_match)
    "date",
    "index",
    "editheader",
    "environment",
    "ihave",
    "regex",
    "duplicate",
    "spamtest",
    "spamtestplus",
    "virustest",
)

# Always there (RFC 5228 2.7.3) and not advertised, but a script may still require them.
IMPLICIT_CAPABILITIES = frozenset({"comparator-i;octet", "comparator-i;ascii-casemap"})

COMPARATORS = {
    "i;octet": None,
    "i;ascii-casemap": None,
    "i;ascii-numeric": "comparator-i;ascii-numeric",
}
# RFC 5228 section 5.1: the address test is restricted to fields that hold addresses.
ADDRESS_HEADERS = frozenset(
    {
        "from", "sender", "reply-to", "to", "cc", "bcc",
        "resent-from", "resent-sender", "resent-reply-to", "resent-to", "resent-cc", "resent-bcc",
        "return-path", "delivered-to", "x-original-to", "envelope-to", "x-envelope-to",
        "errors-to", "disposition-notification-to", "return-receipt-to",
        "mail-followup-to", "mail-reply-to", "original-recipient", "x-original-from",
    }
)  # fmt: skip
RELATIONS = frozenset({"gt", "ge", "lt", "le", "eq", "ne"})


@dataclass(frozen=True, slots=True)
class TagSpec:
    value: str | None = None  # the kind of the value that follows, or None for a flag
    extension: str | None = None
    group: str | None = None  # tags of one group exclude each other


@dataclass(frozen=True, slots=True)
class Spec:
    extension: str | None = None
    tags: dict[str, TagSpec] = field(default_factory=dict)
    positional: tuple[tuple[str, str], ...] = ()  # (kind, what it is, for messages)
    optional_first: str | None = None  # the first positional may be left out; else this ext
    test: str = "none"  # "none", "one", "list"
    block: bool = False
    required_group: str | None = None  # one tag of this group must be given
    optional_last: bool = False  # the last positional may be left out (deleteheader)


MATCH_TAGS = {
    "is": TagSpec(group="match"),
    "contains": TagSpec(group="match"),
    "matches": TagSpec(group="match"),
    "value": TagSpec(STRING, "relational", "match"),
    "count": TagSpec(STRING, "relational", "match"),
    "comparator": TagSpec(STRING, None, "comparator"),
    "regex": TagSpec(None, "regex", "match"),  # draft-ietf-sieve-regex
}
ADDRESS_PART_TAGS = {
    "all": TagSpec(group="address-part"),
    "localpart": TagSpec(group="address-part"),
    "domain": TagSpec(group="address-part"),
    "user": TagSpec(None, "subaddress", "address-part"),
    "detail": TagSpec(None, "subaddress", "address-part"),
}
MODIFIER_TAGS = {
    "lower": TagSpec(group="modifier-40"),
    "upper": TagSpec(group="modifier-40"),
    "lowerfirst": TagSpec(group="modifier-30"),
    "upperfirst": TagSpec(group="modifier-30"),
    "quotewildcard": TagSpec(group="modifier-20"),
    "quoteregex": TagSpec(None, "regex", "modifier-20"),  # draft-ietf-sieve-regex 5
    "length": TagSpec(group="modifier-10"),
}
FLAGS_TAG = {"flags": TagSpec(STRINGS, "imap4flags")}
# RFC 5260 section 6 (index) on header, address and date; editheader's own on deleteheader.
INDEX_TAGS = {"index": TagSpec(NUMBER, "index"), "last": TagSpec(None, "index")}
ZONE_TAGS = {"zone": TagSpec(STRING, None, "zone"), "originalzone": TagSpec(None, None, "zone")}

COMMANDS: dict[str, Spec] = {
    "require": Spec(positional=((STRINGS, "capabilities"),)),
    "if": Spec(test="one", block=True),
    "elsif": Spec(test="one", block=True),
    "else": Spec(block=True),
    "stop": Spec(),
    "keep": Spec(tags=FLAGS_TAG),
    "discard": Spec(),
    "redirect": Spec(tags={"copy": TagSpec(extension="copy")}, positional=((STRING, "address"),)),
    "fileinto": Spec(
        "fileinto",
        tags={
            "copy": TagSpec(extension="copy"),
            "create": TagSpec(extension="mailbox"),
            **FLAGS_TAG,
        },
        positional=((STRING, "mailbox"),),
    ),
    "reject": Spec("reject", positional=((STRING, "reason"),)),
    "ereject": Spec("ereject", positional=((STRING, "reason"),)),
    "vacation": Spec(
        "vacation",
        tags={
            "days": TagSpec(NUMBER, None, "period"),
            "seconds": TagSpec(NUMBER, "vacation-seconds", "period"),
            "subject": TagSpec(STRING),
            "from": TagSpec(STRING),
            "addresses": TagSpec(STRINGS),
            "mime": TagSpec(),
            "handle": TagSpec(STRING),
        },
        positional=((STRING, "reason"),),
    ),
    "setflag": Spec(
        "imap4flags",
        positional=((STRING, "variable name"), (STRINGS, "flags")),
        optional_first="variables",
    ),
    "addflag": Spec(
        "imap4flags",
        positional=((STRING, "variable name"), (STRINGS, "flags")),
        optional_first="variables",
    ),
    "removeflag": Spec(
        "imap4flags",
        positional=((STRING, "variable name"), (STRINGS, "flags")),
        optional_first="variables",
    ),
    "set": Spec("variables", tags=MODIFIER_TAGS, positional=((STRING, "name"), (STRING, "value"))),
    "include": Spec(
        "include",
        tags={
            "personal": TagSpec(group="location"),
            "global": TagSpec(group="location"),
            "once": TagSpec(),
            "optional": TagSpec(),
        },
        positional=((STRING, "script name"),),
    ),
    "return": Spec("include"),
    "global": Spec("include", positional=((STRINGS, "variable names"),)),
    # RFC 5293 editheader, RFC 5463 error
    "addheader": Spec(
        "editheader",
        tags={"last": TagSpec()},
        positional=((STRING, "field name"), (STRING, "value")),
    ),
    "deleteheader": Spec(
        "editheader",
        tags={**MATCH_TAGS, "index": TagSpec(NUMBER), "last": TagSpec()},
        positional=((STRING, "field name"), (STRINGS, "value patterns")),
        optional_last=True,
    ),
    "error": Spec("ihave", positional=((STRING, "message"),)),
}

TESTS: dict[str, Spec] = {
    "address": Spec(
        tags={**MATCH_TAGS, **ADDRESS_PART_TAGS, **INDEX_TAGS},
        positional=((STRINGS, "header names"), (STRINGS, "keys")),
    ),
    "envelope": Spec(
        "envelope",
        tags={**MATCH_TAGS, **ADDRESS_PART_TAGS},
        positional=((STRINGS, "envelope parts"), (STRINGS, "keys")),
    ),
    "header": Spec(
        tags={**MATCH_TAGS, **INDEX_TAGS},
        positional=((STRINGS, "header names"), (STRINGS, "keys")),
    ),
    "exists": Spec(positional=((STRINGS, "header names"),)),
    "size": Spec(
        tags={"over": TagSpec(group="size"), "under": TagSpec(group="size")},
        positional=((NUMBER, "limit"),),
        required_group="size",
    ),
    "allof": Spec(test="list"),
    "anyof": Spec(test="list"),
    "not": Spec(test="one"),
    "true": Spec(),
    "false": Spec(),
    "body": Spec(
        "body",
        tags={
            **MATCH_TAGS,
            "raw": TagSpec(group="transform"),
            "text": TagSpec(group="transform"),
            "content": TagSpec(STRINGS, None, "transform"),
        },
        positional=((STRINGS, "keys"),),
    ),
    "string": Spec(
        "variables", tags=MATCH_TAGS, positional=((STRINGS, "sources"), (STRINGS, "keys"))
    ),
    "hasflag": Spec(
        "imap4flags",
        tags=MATCH_TAGS,
        positional=((STRINGS, "variable names"), (STRINGS, "flags")),
        optional_first="variables",
    ),
    "mailboxexists": Spec("mailbox", positional=((STRINGS, "mailbox names"),)),
    # RFC 5260 date and index, RFC 5183 environment, RFC 5463 ihave, RFC 7352 duplicate
    "date": Spec(
        "date",
        tags={**MATCH_TAGS, **INDEX_TAGS, **ZONE_TAGS},
        positional=((STRING, "header name"), (STRING, "date part"), (STRINGS, "keys")),
    ),
    "currentdate": Spec(
        "date",
        tags={**MATCH_TAGS, "zone": TagSpec(STRING)},
        positional=((STRING, "date part"), (STRINGS, "keys")),
    ),
    "environment": Spec(
        "environment", tags=MATCH_TAGS, positional=((STRING, "name"), (STRINGS, "keys"))
    ),
    "ihave": Spec("ihave", positional=((STRINGS, "capabilities"),)),
    "duplicate": Spec(
        "duplicate",
        tags={
            "handle": TagSpec(STRING),
            "header": TagSpec(STRING, None, "id"),
            "uniqueid": TagSpec(STRING, None, "id"),
            "seconds": TagSpec(NUMBER),
            "last": TagSpec(),
        },
    ),
    # RFC 5235: on the junk filter's verdict field (stalwart_py/junk/headers.py)
    "spamtest": Spec(
        "spamtest",
        tags={**MATCH_TAGS, "percent": TagSpec(extension="spamtestplus")},
        positional=((STRING, "value"),),
    ),
    "virustest": Spec("virustest", tags=MATCH_TAGS, positional=((STRING, "value"),)),
}


# RFC 5703: ":mime" and ":anychild" on header, address and exists, the MIME options on header
# (mimeparts.py checks that they come with ":mime"), foreverypart, break and extracttext.
MIME_TAGS = {"mime": TagSpec(None, "mime"), "anychild": TagSpec(None, "mime")}
MIME_OPTION_TAGS = {
    "type": TagSpec(None, "mime", "mime-option"),
    "subtype": TagSpec(None, "mime", "mime-option"),
    "contenttype": TagSpec(None, "mime", "mime-option"),
    "param": TagSpec(STRINGS, "mime", "mime-option"),
}
for _test, _tags in (
    ("header", {**MIME_TAGS, **MIME_OPTION_TAGS}),
    ("address", MIME_TAGS),
    ("exists", MIME_TAGS),
):  # new dicts: "header" shares MATCH_TAGS with "string" and "hasflag"
    TESTS[_test] = replace(TESTS[_test], tags={**TESTS[_test].tags, **_tags})
COMMANDS["foreverypart"] = Spec("foreverypart", tags={"name": TagSpec(STRING)}, block=True)
COMMANDS["break"] = Spec("foreverypart", tags={"name": TagSpec(STRING)})
COMMANDS["extracttext"] = Spec(
    "extracttext",
    tags={**MODIFIER_TAGS, "first": TagSpec(NUMBER)},
    positional=((STRING, "variable name"),),
)

# RFC 5435 (enotify, the mailto method of RFC 5436): notify.py checks the constant arguments.
COMMANDS["notify"] = Spec(
    "enotify",
    tags={
        "from": TagSpec(STRING),
        "importance": TagSpec(STRING),
        "options": TagSpec(STRINGS),
        "message": TagSpec(STRING),
    },
    positional=((STRING, "method"),),
)
TESTS["valid_notify_method"] = Spec("enotify", positional=((STRINGS, "notification URIs"),))
TESTS["notify_method_capability"] = Spec(
    "enotify",
    tags=MATCH_TAGS,
    positional=((STRING, "notification URI"), (STRING, "capability"), (STRINGS, "keys")),
)
ENCODEURL_TAG = {"encodeurl": TagSpec(None, "enotify", "modifier-15")}  # RFC 5435 section 6
COMMANDS["set"] = replace(COMMANDS["set"], tags={**COMMANDS["set"].tags, **ENCODEURL_TAG})
