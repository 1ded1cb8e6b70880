"""What every template of the web pages must hold to, read from the files themselves."""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "protocols" / "http" / "web" / "templates"


def test_no_address_field_is_an_email_input():
    """The server takes UTF-8 local parts (RFC 6531: ``jörg@example.com``), which a browser's
    ``type="email"`` refuses before the form is sent; address fields are text fields with
    ``inputmode="email"`` (the phone's keyboard, nothing refused)."""
    found = [
        f"{path.relative_to(TEMPLATES)}:{number}"
        for path in sorted(TEMPLATES.rglob("*.html"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"""type\s*=\s*["']?email""", line)
    ]
    assert found == []
