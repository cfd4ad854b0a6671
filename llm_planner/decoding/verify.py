"""The acceptance rule of speculative decoding, as a pure function.

Terms (as in vLLM's rejection sampler):

- **draft tokens** ``d[K]``: the proposal, drawn from the draft distributions ``q[K, V]``;
- **accepted tokens**: the longest prefix ``d[:k]`` that passes verification;
- **bonus token** ``t*``: one more token from the target: the correction sampled from
  ``norm(max(0, p - q))`` at position ``k`` when ``k < K``, else a free sample from ``p[K]``.

A proposal whose ``q`` is ``None`` is a *fallback* proposal (random or otherwise not sampled
from a known distribution). It is verified as ``q = one-hot(d)``: accept ``d_i`` with
probability ``p(d_i)``, else sample from ``p`` with ``d_i`` zeroed. Accepting on argmax match
instead (as the SSD reference code does for its fast backup) biases the output distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of verifying one proposal: ``accepted`` draft tokens (``k``), then ``bonus``."""

    accepted: int
    bonus: int

    @property
    def key(self) -> tuple[int, int]:
        """The speculation-cache key ``(k, t*)`` of this outcome."""
        return (self.accepted, self.bonus)


def verify(
    p: torch.Tensor,
    draft: list[int],
    q: torch.Tensor | None,
    greedy: bool,
    generator: torch.Generator | None = None,
) -> VerifyResult:
    """Verify a proposal against the target.

    Args:
        p: target probabilities ``[K + 1, V]`` (rows sum to 1) after every logits processor;
            in greedy mode, target scores ``[K + 1, V]`` whose argmax is the target's token.
            Row ``i`` is the target's distribution for the position of ``draft[i]``; row ``K``
            is the position after the last draft token.
        draft: the ``K`` proposed token ids.
        q: draft probabilities ``[K, V]`` that produced ``draft``, or ``None`` for a fallback
            proposal (verified as ``q = one-hot(draft)``). Ignored in greedy mode.
        greedy: accept while ``argmax p[i] == draft[i]``; the bonus is ``argmax p[k]``.
        generator: the target's random stream (sampling only).

    Returns:
        ``VerifyResult(accepted, bonus)`` with ``0 <= accepted <= K``.
    """
    n_draft = len(draft)
    assert p.dim() == 2 and p.shape[0] == n_draft + 1, f"p must be [K+1, V], got {tuple(p.shape)} for K={n_draft}"
    if greedy:
        target = p.argmax(dim=-1).tolist()  # [K + 1]
        accepted = 0
        while accepted < n_draft and target[accepted] == draft[accepted]:
            accepted += 1
        return VerifyResult(accepted, int(target[accepted]))

    assert q is None or q.shape == (n_draft, p.shape[1]), "q must be [K, V]"
    u = torch.rand(n_draft, generator=generator, dtype=torch.float64)  # one uniform per draft token
    for i, tok in enumerate(draft):
        p_tok = float(p[i, tok])
        q_tok = 1.0 if q is None else float(q[i, tok])
        if q_tok > 0 and u[i].item() < min(1.0, p_tok / q_tok):
            continue
        # Rejected: sample the correction from the residual norm(max(0, p - q)).
        if q is None:
            residual = p[i].clone()
            residual[tok] = 0.0
        else:
            residual = torch.clamp(p[i] - q[i], min=0.0)
        if float(residual.sum()) <= 0.0:
            # Only reachable through rounding when p == q on the support: p itself is exact then.
            residual = p[i]
        return VerifyResult(i, _sample(residual, generator))
    return VerifyResult(n_draft, _sample(p[n_draft], generator))


def _sample(weights: torch.Tensor, generator: torch.Generator | None) -> int:
    """Draw one index from non-negative ``weights[V]`` (need not be normalised)."""
    return int(torch.multinomial(weights.double(), 1, generator=generator).item())
