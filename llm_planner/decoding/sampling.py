"""Logits to token distributions, shared by target and draft so that both see the same rules.

Order of operations for every position: grammar mask (``-inf`` outside the allowed set), then
temperature. Greedy decoding (temperature 0) takes the argmax of the masked logits.
"""

from __future__ import annotations

import torch


def to_probs(logits: torch.Tensor, temperature: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Probabilities ``[..., V]`` from ``logits[..., V]`` at ``temperature > 0``, masked by ``mask[..., V]`` (bool, True = allowed)."""
    z = logits.float()
    if mask is not None:
        z = z.masked_fill(~mask, float("-inf"))
    return torch.softmax(z / temperature, dim=-1)


def masked_logits(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``logits[..., V]`` with disallowed tokens at ``-inf`` (greedy scoring)."""
    z = logits.float()
    return z if mask is None else z.masked_fill(~mask, float("-inf"))


def saguaro_probs(z: torch.Tensor, f: int, c: float, temperature: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Saguaro sampling distribution ``sigma_{F,C}(z)``: the top-``F`` tokens' weights scaled by ``C``.

    ``sigma(z)_t ∝ C e^{z_t / T}`` for ``t`` in ``top_F(z)`` and ``e^{z_t / T}`` otherwise. The draft
    proposes from this distribution, which moves the verification residual ``max(0, p - q)`` onto
    the top-``F`` tokens the draft caches branches for (higher hit rate, lower acceptance).
    ``C = 1`` or ``F = 0`` gives plain temperature sampling.

    Args:
        z: draft logits ``[..., V]``.
        f: number of top tokens to down-weight (the fan-out at this depth).
        c: scale in ``[0, 1]``.
        temperature: ``> 0``.
        mask: bool ``[..., V]`` of allowed tokens.
    """
    if not 0.0 <= c <= 1.0:
        raise ValueError(f"Saguaro scale C must be in [0, 1], got {c}")
    probs = to_probs(z, temperature, mask)
    if f <= 0 or c == 1.0:
        return probs
    top = probs.topk(min(f, probs.shape[-1]), dim=-1).indices
    scale = torch.ones_like(probs).scatter(-1, top, c)
    scaled = probs * scale
    total = scaled.sum(dim=-1, keepdim=True)
    # With C = 0 and all mass in the top F, fall back to the unscaled distribution.
    return torch.where(total > 0, scaled / total.clamp_min(1e-30), probs)
