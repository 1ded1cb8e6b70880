"""Every user's pages, ``/account/``: one module per page, each with its ``PageTable``."""

from __future__ import annotations

from protocols.http.web.account import app_passwords, overview, password

TABLES = (overview.pages, password.pages, app_passwords.pages)
