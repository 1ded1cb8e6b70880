"""A message as the features the classifier counts: its tokens.

Like mox's junk filter (``junk/parse.go``): words of the text parts (HTML turned into its
text), lowercased, and words of the address and subject fields prefixed with their field
name, so that "free" in a Subject and "free" in the body count apart. On top of that, what a
sender cannot choose:

* the sender authentication our intake recorded: each ``method=result`` of OUR
  ``Authentication-Results`` field (the one whose authserv-id is the server's host name; the
  intake removes forged ones before adding its own, RFC 8601 section 5), as
  ``auth:spf:pass``, ``auth:dkim:fail``, ``auth:dmarc:pass``, ``auth:iprev:fail``... so a
  passing DMARC becomes evidence, learnt per account like any word. A DNS list hit the
  intake records there (``dnsbl``/``dnswl`` methods) becomes a token the same way;
* the domain of the From address and the host names of links (``from-domain:``, ``url:``).

Words that carry no meaning for a Bayesian filter are dropped (as mox does): under three
characters, all digits or number-like (dates, prices, order numbers), and long runs of
consonants and digits, which are random strings (tracking ids, base64 leftovers) that would
each be seen once and only fill the table. Each token counts once per message (a set): the
classifier asks "does the message have it", as Graham's and Robinson's filters do.

The work is bounded: at most ``MAX_TEXT`` characters of body text and ``MAX_TOKENS`` tokens
per message, whatever its size.
"""

from __future__ import annotations

import functools
import re
from html import unescape

from stalwart_py.sieve.message import MessageView

MAX_TEXT = 200_000  # characters of body text tokenised per message
MAX_TOKENS = 4000  # distinct tokens kept per message
MAX_WORD = 40  # longer "words" are ids, hashes or base64, not words
HEADER_FIELDS = ("from", "to", "cc", "reply-to", "sender", "subject", "list-id")

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*", re.UNICODE)
_URL_HOST = re.compile(r"https?://([a-z0-9.-]+)", re.IGNORECASE)
_ADDRESS_DOMAIN = re.compile(r"@([a-z0-9.-]+)", re.IGNORECASE)
_RANDOM = re.compile(r"[bcdfghjklmnpqrstvwxz2-9]{6,}")
_NUMERIC = re.compile(r"(?:0x)?[0-9a-f]*[0-9]{4}|[0-9]{3}")
_RESINFO = re.compile(r"([a-z0-9-]+)\s*=\s*([a-z0-9-]+)", re.IGNORECASE)
_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")
_HTML_SKIP = re.compile(
    r"<(script|style)\b.*?</\1\s*>|<!--.*?-->|<[^>]*>", re.IGNORECASE | re.DOTALL
)


def words(text: str) -> set[str]:
    """The distinct words of ``text`` worth counting, lowercased."""
    # No word spans whitespace, so the distinct whitespace-separated chunks hold every
    # distinct word: the regular expression (the dearest step) reads each chunk once however
    # often the text repeats it, and each distinct word is judged once.
    chunks = " ".join(set(text.lower().split()))
    return {word for word in set(_WORD.findall(chunks)) if _worth_counting(word)}


def url_hosts(text: str) -> list[str]:
    """The host names of the http(s) links in ``text``, as written."""
    # A link has no whitespace in it: only the chunks with "://" are searched.
    linked = " ".join(chunk for chunk in set(text.split()) if "://" in chunk)
    return _URL_HOST.findall(linked) if linked else []


@functools.lru_cache(maxsize=1 << 16)
def _worth_counting(word: str) -> bool:
    """Cached: a user's mail repeats its vocabulary from message to message."""
    if len(word) < 3 or len(word) > MAX_WORD or word.isdigit():
        return False
    return not (word.isascii() and (_RANDOM.search(word) or _NUMERIC.match(word)))


def html_text(html: str) -> str:
    """The text of an HTML part, for counting its words: tags, scripts, styles and comments
    go, entities are decoded. Cruder than a parser, and many times faster; a word split by
    a tag in the middle of it is two words here, which costs a Bayesian filter nothing."""
    return unescape(_HTML_SKIP.sub(" ", html))


def auth_tokens(view: MessageView, authserv_id: str) -> set[str]:
    """``auth:<method>:<result>`` for each resinfo of our Authentication-Results fields."""
    out: set[str] = set()
    ours = authserv_id.lower().rstrip(".")
    for value in view.raw_values("authentication-results"):
        text = _COMMENT.sub(" ", value)
        head, _, rest = text.partition(";")
        # "mail.example.com" or "mail.example.com 1" (a version, RFC 8601 2.2)
        if not head.split() or head.split()[0].lower().rstrip(".") != ours:
            continue
        for resinfo in rest.split(";"):
            match = _RESINFO.search(resinfo)
            if match is not None:
                out.add(f"auth:{match.group(1).lower()}:{match.group(2).lower()}")
    return out


def tokenize(data: bytes, authserv_id: str) -> frozenset[str]:
    """The distinct tokens of one message (see the module docstring)."""
    view = MessageView(data, max_body=MAX_TEXT)
    tokens: set[str] = set()
    for field in HEADER_FIELDS:
        for value in view.values(field):
            tokens.update(f"{field}:{word}" for word in words(value))
    for value in view.raw_values("from")[:1]:
        for domain in _ADDRESS_DOMAIN.findall(value):
            tokens.add(f"from-domain:{domain.lower().rstrip('.')}")
    tokens |= auth_tokens(view, authserv_id)
    try:
        bodies = view.bodies(("text/plain",))
        bodies += [html_text(html) for html in view.bodies(("text/html",))]
    except Exception:  # a body the MIME parser gives up on is tokenised by its header only
        bodies = []
    for text in bodies:
        for host in url_hosts(text):
            tokens.add(f"url:{host.lower().rstrip('.')}")
        tokens.update(words(text))
        if len(tokens) >= MAX_TOKENS:
            break
    if len(tokens) > MAX_TOKENS:  # keep a deterministic subset
        tokens = set(sorted(tokens)[:MAX_TOKENS])
    return frozenset(tokens)
