"""How many outcome branches the SSD draft pre-drafts at each acceptance depth.

A verification outcome is ``(k, t*)``: ``k`` of ``K`` draft tokens accepted, then the bonus token
``t*``. The draft guesses ``t*`` at depth ``k`` from its own top-``F_k`` tokens there, so it
pre-drafts ``B = sum(F)`` branches per round.

Geometric fan-out (Saguaro, arXiv 2603.03251, section 4.1): with per-token acceptance ``a``,
``P(k) ~ a^k (1 - a)`` for ``k < K`` and ``a^K`` for ``k = K``; with a miss rate modelled as
``F^-r``, the optimum is ``F_k = F_0 a^(k/(1+r))`` for ``k < K`` and
``F_K = F_0 a^(K/(1+r)) (1 - a)^(-1/(1+r))``, scaled so that ``sum(F) <= B``.
"""

from __future__ import annotations

import math


def fanout(lookahead: int, a: float, r: float, budget: int) -> list[int]:
    """Geometric fan-out ``F[K + 1]`` over depths ``0..K`` with ``sum(F) <= budget``.

    Args:
        lookahead: ``K``, draft tokens per round, ``>= 1``.
        a: expected per-token acceptance rate, in ``(0, 1)``.
        r: exponent of the miss-rate model ``1 - p_hit(F) = F^-r``, ``> 0``.
        budget: branch budget ``B >= 0``.

    Returns:
        Integer branch counts per depth; they sum to exactly ``budget``, are non-increasing over
        ``k < K``, and are obtained from the real optimum by largest-remainder rounding.
    """
    if lookahead < 1:
        raise ValueError(f"lookahead must be >= 1, got {lookahead}")
    if not 0.0 < a < 1.0:
        raise ValueError(f"acceptance rate a must be in (0, 1), got {a}")
    if r <= 0.0:
        raise ValueError(f"miss-rate exponent r must be > 0, got {r}")
    if budget < 0:
        raise ValueError(f"branch budget must be >= 0, got {budget}")
    e = 1.0 / (1.0 + r)
    shape = [a ** (j * e) for j in range(lookahead)] + [a ** (lookahead * e) * (1.0 - a) ** (-e)]
    scale = budget / sum(shape)
    real = [scale * s for s in shape]
    out = [math.floor(x) for x in real]
    by_remainder = sorted(range(lookahead + 1), key=lambda j: (out[j] - real[j], j))
    for j in by_remainder[: budget - sum(out)]:
        out[j] += 1
    return out


class AcceptanceRate:
    """Running estimate of the per-token acceptance rate ``a`` that the geometric fan-out assumes.

    A round that accepts ``k`` of ``K`` draft tokens counts ``k`` acceptances and, when ``k < K``, one
    rejection: the geometric model above, censored at ``K``. The estimate is the maximum-likelihood
    ``acc / (acc + rej)`` over counts decayed by ``decay`` per round (about ``1 / (1 - decay)`` recent
    rounds count, so a new kind of prompt is tracked), started from ``prior`` with the weight of
    ``prior_weight`` acceptances plus rejections, and clipped to ``[0.01, 0.99]`` (``fanout`` needs ``0 < a < 1``).
    """

    def __init__(self, prior: float = 0.7, prior_weight: float = 4.0, decay: float = 0.98) -> None:
        if not 0.0 < prior < 1.0:
            raise ValueError(f"prior acceptance rate must be in (0, 1), got {prior}")
        if prior_weight <= 0 or not 0.0 < decay <= 1.0:
            raise ValueError(f"need prior_weight > 0 and decay in (0, 1], got {prior_weight}, {decay}")
        self.decay = decay
        self.accepted, self.rejected = prior * prior_weight, (1.0 - prior) * prior_weight

    def update(self, accepted: int, lookahead: int) -> None:
        """Count one verified round: ``accepted`` of ``lookahead`` draft tokens accepted."""
        if not 0 <= accepted <= lookahead:
            raise ValueError(f"accepted must be in [0, {lookahead}], got {accepted}")
        self.accepted = self.decay * self.accepted + accepted
        self.rejected = self.decay * self.rejected + (accepted < lookahead)

    @property
    def rate(self) -> float:
        return min(max(self.accepted / (self.accepted + self.rejected), 0.01), 0.99)


def uniform_fanout(lookahead: int, f: int) -> list[int]:
    """``f`` branches at every depth ``0..K`` (the SSD reference default, ``f=3``)."""
    if lookahead < 1 or f < 0:
        raise ValueError(f"need lookahead >= 1 and f >= 0, got lookahead={lookahead}, f={f}")
    return [f] * (lookahead + 1)


def resolve_fanout(spec: str | list[int], lookahead: int, budget: int, a: float = 0.7, r: float = 1.0) -> list[int]:
    """A fan-out from a user spec: ``"geometric"``, ``"uniform"``, ``"zero"`` or explicit ``[K + 1]`` counts."""
    if isinstance(spec, (list, tuple)):
        counts = [int(x) for x in spec]
        if len(counts) != lookahead + 1 or min(counts) < 0:
            raise ValueError(f"explicit fan-out needs K+1={lookahead + 1} non-negative counts, got {spec}")
        return counts
    if spec == "geometric":
        return fanout(lookahead, a, r, budget)
    if spec == "uniform":
        return uniform_fanout(lookahead, budget // (lookahead + 1))
    if spec == "zero":
        return [0] * (lookahead + 1)
    raise ValueError(f"unknown fan-out {spec!r}: use 'geometric', 'uniform', 'zero' or a list of K+1 ints")
