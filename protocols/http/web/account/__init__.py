"""Every user's pages, ``/account/``: one module per page, each with its ``PageTable``."""

from __future__ import annotations

from protocols.http.web.account import (
    app_passwords,
    filters,
    overview,
    password,
    setup,
    two_factor,
)

TABLES = (
    overview.pages,
    password.pages,
    app_passwords.pages,
    two_factor.pages,
    filters.pages,
    setup.pages,
)
