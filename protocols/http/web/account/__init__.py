"""Every user's pages, ``/account/``: one module per page, each with its ``PageTable``."""

from __future__ import annotations

from protocols.http.web.account import overview

TABLES = (overview.pages,)
