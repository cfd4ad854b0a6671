"""Lookup drafting: propose the continuation of a reference token sequence (prompt lookup decoding).

A *reference* is a guess of the whole output (for the planner, ``planning.reference``: the plan the
command's words spell out). While the output so far is a prefix of it, the proposal is the rest of the
reference; after the target has written something else, the proposal is what follows the latest output
tokens where they occur in the reference (the longest suffix of at most ``NGRAM`` tokens, the occurrence
nearest the output's own position), so a plan that differs from the guess in one name picks the guess up
again after it. The proposal is verified by the target like any draft (``verify``, as a fallback proposal
``q = one-hot`` when sampling), so a wrong reference costs speed, never a token. Saxena (2023), "Prompt
Lookup Decoding", proposes n-gram matches from the prompt the same way.
"""

from __future__ import annotations

from typing import Hashable, Sequence

from .speculate_types import TokenConstraint

NGRAM = 3
"""The longest output suffix looked up in the reference."""


def lookup(reference: Sequence[int], out: Sequence[int], limit: int) -> list[int]:
    """At most ``limit`` tokens to propose after the output ``out``, read from ``reference``; ``[]`` when no suffix of
    ``out`` occurs in it (or nothing follows)."""
    n_out = len(out)
    if limit < 1:
        return []
    if list(reference[:n_out]) == list(out):
        return list(reference[n_out : n_out + limit])
    for n in range(min(NGRAM, n_out), 0, -1):
        tail = list(out[-n:])
        ends = [i + n for i in range(len(reference) - n) if list(reference[i : i + n]) == tail]  # something follows
        if ends:
            end = min(ends, key=lambda e: abs(e - n_out))
            return list(reference[end : end + limit])
    return []


def allowed_prefix(tokens: list[int], constraint: TokenConstraint | None, state: Hashable) -> list[int]:
    """The longest prefix of ``tokens`` that ``constraint`` allows from ``state`` (a token it forbids would be rejected)."""
    if constraint is None:
        return tokens
    for i, t in enumerate(tokens):
        mask = constraint.mask(state)
        if mask is not None and not bool(mask[t]):
            return tokens[:i]
        state = constraint.advance(state, t)
    return tokens
