"""``[spam.classifier]``: the junk filter that learns (``stalwart_py.junk``).

Nothing needs configuring: each account's filter starts empty, learns from what its user
moves into and out of Junk (or flags ``$Junk``/``$NotJunk``), and files nothing until it has
seen ``min-junk`` junk and ``min-not-junk`` other messages; until then it only adds
``X-Spam-Status: No, not enough training``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from stalwart_py.config.types import Range


@dataclass(frozen=True, slots=True)
class ClassifierSettings:
    """``[spam.classifier]``."""

    enable: bool = True  # false: no score, no header, no filing, no training
    # A message scoring this or more (0..1) is junk: X-Spam-Status: Yes, filed into Junk.
    junk_threshold: Annotated[float, Range(0.5, 1.0)] = 0.9
    # Messages trained as junk an account needs before its scores are used.
    min_junk: Annotated[int, Range(1)] = 10
    # Messages trained as not junk an account needs before its scores are used.
    min_not_junk: Annotated[int, Range(1)] = 10
    # Tokens kept per account; past it the rarest are forgotten (about 40 bytes each on disk).
    max_tokens: Annotated[int, Range(1000)] = 100_000
    # Junk goes to the Junk mailbox with $Junk; false: only the header (and Sieve) decide.
    file_junk: bool = True
