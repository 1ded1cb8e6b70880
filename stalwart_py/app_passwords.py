"""App passwords: passwords the server generates for one mail client each.

A person gives a phone or a desktop client its own password rather than the account's, and
revokes it alone when the device is lost. As with Stalwart, Fastmail or Google:

* **Generated here**, never chosen: ``LENGTH`` characters of a 32-letter alphabet without
  look-alikes (no ``0 o 1 l``), 5 bits each, 100 bits in all, shown as groups of five joined by
  ``-``. It is shown once, in the answer that creates it, and kept only as an scrypt hash
  (``stalwart_py.passwords``), as the account's own password is.
* **Limited to mail protocols** chosen at creation (``PROTOCOLS``): IMAP, SMTP AUTH
  (submission), POP3, ManageSieve. Never HTTP: the JSON API and the web pages want the
  account's own password, so a leaked client password cannot change the account.
* **Found without trying every hash**: the first ``SELECTOR_LENGTH`` characters (20 of the 100
  bits) are kept in clear as the *selector*; a login hashes only the app passwords whose
  selector the typed password starts with, so a failed login still costs one scrypt, not one
  per app password. What remains, 80 bits behind scrypt, is beyond guessing.
* **Typed leniently**: case, dashes and spaces do not matter (``canonical``).
* **Revoked at once**: revoking deletes the row; every login reads the rows afresh, and the
  authentication cache (``stalwart_py.auth_cache``) keys on the stored hash, so no worker
  accepts a revoked password afterwards.

SCRAM-SHA-256 cannot use them (no SCRAM keys are kept for them): clients use PLAIN or LOGIN
over TLS, as they do with generated passwords elsewhere.
"""

from __future__ import annotations

import secrets

PROTOCOLS = ("imap", "smtp", "pop3", "managesieve")
ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # 32 letters, 5 bits each, no 0/o or 1/l
LENGTH = 20  # characters: 100 bits
GROUP = 5  # characters per group as shown
SELECTOR_LENGTH = 4
MAX_PER_ACCOUNT = 50
MAX_NAME_LENGTH = 64


def generate() -> str:
    """A new app password, as shown to its owner: ``abcde-fghij-kmnpq-rstuv``."""
    text = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return "-".join(text[i : i + GROUP] for i in range(0, LENGTH, GROUP))


def canonical(password: str) -> str | None:
    """The password as hashed (lower case, without dashes and spaces), or None when it
    cannot be an app password at all (so no app password is looked up for it)."""
    text = password.lower().replace("-", "").replace(" ", "")
    if len(text) != LENGTH or not all(c in ALPHABET for c in text):
        return None
    return text


def selector(canonical_password: str) -> str:
    """The clear prefix that finds the row of an app password."""
    return canonical_password[:SELECTOR_LENGTH]


def check_name(name: str) -> str:
    """An app password's name without surrounding spaces; ValueError says what is wrong."""
    name = name.strip()
    if not name:
        raise ValueError("an app password needs a name")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"an app password's name has at most {MAX_NAME_LENGTH} characters")
    if not name.isprintable():
        raise ValueError("an app password's name may not hold control characters")
    return name


def check_protocols(protocols: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The protocols, in ``PROTOCOLS`` order, each once; ValueError for an unknown one or none."""
    wanted = {p.strip().lower() for p in protocols}
    unknown = sorted(wanted - set(PROTOCOLS))
    if unknown:
        raise ValueError(
            f"unknown protocol {unknown[0]!r} for an app password; expected some of "
            + ", ".join(PROTOCOLS)
        )
    if not wanted:
        raise ValueError("an app password needs at least one protocol: " + ", ".join(PROTOCOLS))
    return tuple(p for p in PROTOCOLS if p in wanted)
