"""The arithmetic of the classifier: Robinson's token probabilities combined with Fisher's
chi-square method (as SpamBayes does; mox uses Robinson's probabilities with Graham's
product). Pure functions, no I/O.

For a token seen in ``s`` of the ``nspam`` junk messages and ``h`` of the ``nham`` non-junk
messages an account trained on, Graham's estimate of P(junk | token) is::

    p = (s / nspam) / (s / nspam + h / nham)

Robinson's correction pulls a token seen rarely towards a neutral ``x = 0.5`` with strength
``S``, so one sighting cannot decide a message::

    f = (S * x + n * p) / (S + n),   n = s + h

The message is judged on its most significant tokens (``|f - 0.5|`` at least
``MIN_STRENGTH``; the ``MAX_CLUES`` strongest). Fisher's method asks how likely these
probabilities are if they were random: ``H = C(-2 sum ln f, 2n)`` and
``S = C(-2 sum ln (1 - f), 2n)``, with ``C`` the inverse chi-square function; the score is
``(1 + (1 - S) - (1 - H)) / 2`` between 0 (surely not junk) and 1 (surely junk), about 0.5 when
the evidence is weak or contradicts itself. Unlike Graham's product, it does not rush to 0 or
1 on a handful of tokens, so a threshold of 0.9 means what it says.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ROBINSON_S = 0.45  # strength of the neutral prior (SpamBayes' unknown_word_strength)
ROBINSON_X = 0.5
MIN_STRENGTH = 0.1  # tokens with |f - 0.5| below this say nothing
MAX_CLUES = 150  # the strongest tokens a message is judged on


@dataclass(frozen=True, slots=True)
class Score:
    """A classification: ``probability`` of junk (0..1) and the clues it rests on."""

    probability: float
    clues: tuple[tuple[str, float], ...]  # (token, f) strongest first, for logs and tests


def token_probability(spam: int, ham: int, nspam: int, nham: int) -> float:
    """Robinson's f(w) for a token seen in ``spam`` junk and ``ham`` non-junk messages."""
    spam_ratio = spam / nspam if nspam else 0.0
    ham_ratio = ham / nham if nham else 0.0
    if spam_ratio + ham_ratio == 0:
        return ROBINSON_X
    p = spam_ratio / (spam_ratio + ham_ratio)
    n = spam + ham
    return (ROBINSON_S * ROBINSON_X + n * p) / (ROBINSON_S + n)


def chi2q(x2: float, v: int) -> float:
    """P(chi-square with ``v`` (even) degrees of freedom >= ``x2``), by the series for even
    degrees of freedom (Fisher's method never needs odd ones)."""
    m = x2 / 2.0
    term = math.exp(-m)
    total = term
    for i in range(1, v // 2):
        term *= m / i
        total += term
    return min(total, 1.0)


def combine(probabilities: Iterable[float]) -> float:
    """Fisher-Robinson combining of token probabilities into one score (0.5 for none)."""
    values = list(probabilities)
    if not values:
        return 0.5
    log_f = sum(math.log(max(p, 1e-12)) for p in values)
    log_1_f = sum(math.log(max(1.0 - p, 1e-12)) for p in values)
    n = len(values)
    spamminess = 1.0 - chi2q(-2.0 * log_1_f, 2 * n)
    hamminess = 1.0 - chi2q(-2.0 * log_f, 2 * n)
    return (spamminess - hamminess + 1.0) / 2.0


def classify(
    tokens: Iterable[str], counts: Mapping[str, tuple[int, int]], nham: int, nspam: int
) -> Score:
    """Score a message's ``tokens`` against ``counts`` (token -> (ham, spam) messages)."""
    clues = []
    for token in tokens:
        count = counts.get(token)
        if count is None:
            continue
        f = token_probability(count[1], count[0], nspam, nham)
        if abs(f - 0.5) >= MIN_STRENGTH:
            clues.append((token, f))
    # strongest first; ties by token so that a score never depends on set order
    clues.sort(key=lambda clue: (-abs(clue[1] - 0.5), clue[0]))
    clues = clues[:MAX_CLUES]
    return Score(combine(f for _, f in clues), tuple(clues))
