"""What the administrator's pages share: paging a list, reading numbers from a form, asking
before an action that cannot be undone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import quote, urlencode

from protocols.http.messages import HttpError, Response
from protocols.http.web.pages import WebRequest

T = TypeVar("T")

PER_PAGE = 50  # rows of a list page: small enough to render in a few milliseconds
MAX_PAGE = 1_000_000


@dataclass(frozen=True, slots=True)
class Paging(Generic[T]):
    """One page of a list, and the links to its neighbours."""

    items: list[T]
    number: int  # from 1
    more: bool  # a next page exists
    base: str  # the list's path with its other query parameters, "?" or "&" appended

    @property
    def previous(self) -> str | None:
        return f"{self.base}page={self.number - 1}" if self.number > 1 else None

    @property
    def next(self) -> str | None:
        return f"{self.base}page={self.number + 1}" if self.more else None


def page_number(web: WebRequest) -> int:
    """The ``page`` query parameter (1 when absent); a 400 page for nonsense."""
    text = web.query("page", "1")
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise HttpError(400, "page: expected a page number")
    return int(text)


def base_link(path: str, **query: str) -> str:
    """``path`` with the non-empty ``query`` parameters, ready for ``page=`` to be added."""
    kept = {k: v for k, v in query.items() if v}
    return f"{path}?{urlencode(kept)}&" if kept else f"{path}?"


def paged(items: list[T], number: int, base: str, per_page: int = PER_PAGE) -> Paging[T]:
    """A page of a list already in memory (the accounts: a thousand rows are read in a few
    milliseconds; rendering them all is what would be slow)."""
    start = (number - 1) * per_page
    return Paging(items[start : start + per_page], number, len(items) > start + per_page, base)


def path_part(text: str) -> str:
    """An address or a name as one path segment of a link."""
    return quote(text, safe="@")


def optional_count(text: str, what: str, scale: int = 1) -> int | None:
    """A form's optional whole number (empty: no limit) times ``scale``; ValueError with a
    sentence for the page otherwise."""
    text = text.strip()
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 15:
        raise ValueError(f"{what}: a whole number, or empty for no limit.")
    return int(text) * scale


def confirmed(web: WebRequest) -> bool:
    """A POST whose form said ``confirm=yes``: a GET, or a POST without it, is asked first."""
    return web.method == "POST" and web.field("confirm") == "yes"


def confirmation(
    web: WebRequest, *, title: str, action: str, back: str, question: str, button: str
) -> Response:
    """The page asking whether to do it: its form posts ``confirm=yes`` to ``action``."""
    return web.render(
        "admin/confirm.html",
        title=title,
        action=action,
        back=back,
        question=question,
        button=button,
    )
