"""SIGReg (LeJEPA, arXiv 2511.08544) as LeWorldModel (arXiv 2603.19312) computes it, plus collapse diagnostics.

SIGReg pushes a batch of embeddings ``Z[B, D]`` towards the isotropic Gaussian N(0, I): by
Cramér–Wold it suffices to match every 1-D projection ``h = Z u`` (``u`` a unit direction), and
each projection is compared with N(0, 1) by the Epps–Pulley statistic

    T(h) = B * integral w(t) |phi_B(t) - exp(-t^2 / 2)|^2 dt,   phi_B(t) = mean_b exp(i t h_b),

with ``w(t) = exp(-t^2 / 2)``. Like the LeJEPA and LeWM code (not the papers' text) the integral
runs over ``t`` in [0, 3] on 17 knots with trapezoid weights doubled for the integrand's symmetry,
and ``M`` directions are drawn fresh on every call. The result is the mean over directions (and
over any leading dimensions, e.g. time).

Reference values (the design note ``shared/research/sigreg.md``, §1), used as unit-test oracles and as
collapse alarms:

- exact N(0, I) samples: ``FLOOR`` ≈ 1.052 for any batch size (the statistic never reaches 0);
- a constant embedding: ``COLLAPSE_PER_SAMPLE * B`` ≈ 0.402 B;
- N(0, s^2 I): ``sum_k w_k [B (exp(-s^2 t_k^2 / 2) - exp(-t_k^2 / 2))^2 + 1 - exp(-s^2 t_k^2)]``
  (``expected_sigreg_scaled``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

NUM_KNOTS = 17
T_MAX = 3.0


def knots_and_weights(num_knots: int = NUM_KNOTS, t_max: float = T_MAX) -> tuple[Tensor, Tensor]:
    """Knots ``t[K]`` on [0, t_max] and weights ``w[K]`` = 2 * trapezoid * exp(-t^2 / 2) (float64)."""
    t = torch.linspace(0.0, t_max, num_knots, dtype=torch.float64)
    trap = torch.full((num_knots,), t_max / (num_knots - 1), dtype=torch.float64)
    trap[0] = trap[-1] = trap[0] / 2
    return t, 2.0 * trap * torch.exp(-t.square() / 2)


def expected_sigreg_scaled(scale: float, batch_size: int, num_knots: int = NUM_KNOTS, t_max: float = T_MAX) -> float:
    """Expected SIGReg of ``batch_size`` samples from N(0, scale^2 I) (scale 0: a constant embedding)."""
    t, w = knots_and_weights(num_knots, t_max)
    bias = (torch.exp(-(scale * t) ** 2 / 2) - torch.exp(-t.square() / 2)).square()
    return float((w * (batch_size * bias + 1 - torch.exp(-(scale * t) ** 2))).sum())


FLOOR = expected_sigreg_scaled(1.0, 1)
"""SIGReg of exact N(0, I) samples (≈ 1.052), whatever the batch size."""
COLLAPSE_PER_SAMPLE = expected_sigreg_scaled(0.0, 1)
"""SIGReg of a constant embedding divided by the batch size (≈ 0.402)."""


def sigreg(
    z: Tensor,
    num_slices: int = 256,
    num_knots: int = NUM_KNOTS,
    t_max: float = T_MAX,
    generator: torch.Generator | None = None,
) -> Tensor:
    """SIGReg of embeddings ``z[..., B, D]``: a scalar, averaged over directions and leading dims.

    Computed in float32 (autocast is switched off) with ``num_slices`` unit directions drawn
    from ``generator`` on every call. Gradients flow to ``z``.
    """
    if z.dim() < 2:
        raise ValueError(f"sigreg needs embeddings [..., B, D], got shape {list(z.shape)}")
    batch, dim = z.shape[-2], z.shape[-1]
    if batch < 2:
        raise ValueError(f"sigreg needs a batch of at least 2 embeddings, got B = {batch}")
    device = z.device
    with torch.autocast(device_type=device.type, enabled=False):
        z = z.float()
        directions = torch.randn(dim, num_slices, device=device, generator=generator)
        directions = directions / directions.norm(dim=0, keepdim=True)
        t, w = knots_and_weights(num_knots, t_max)
        t, w = t.to(device, torch.float32), w.to(device, torch.float32)
        x = (z @ directions).unsqueeze(-1) * t  # [..., B, M, K]
        ecf_cos = torch.cos(x).mean(dim=-3)  # [..., M, K]
        ecf_sin = torch.sin(x).mean(dim=-3)
        err = (ecf_cos - torch.exp(-t.square() / 2)).square() + ecf_sin.square()
        return (err @ w).mean() * batch


class SIGReg(nn.Module):
    """``sigreg`` as a module (no parameters): ``SIGReg(num_slices)(z[..., B, D]) -> scalar``."""

    def __init__(self, num_slices: int = 256, num_knots: int = NUM_KNOTS, t_max: float = T_MAX) -> None:
        super().__init__()
        if num_slices < 1 or num_knots < 2 or not t_max > 0:
            raise ValueError(f"SIGReg needs num_slices >= 1, num_knots >= 2, t_max > 0; got "
                             f"{num_slices}, {num_knots}, {t_max}")
        self.num_slices, self.num_knots, self.t_max = num_slices, num_knots, t_max

    def forward(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return sigreg(z, self.num_slices, self.num_knots, self.t_max, generator)


@torch.no_grad()
def collapse_diagnostics(z: Tensor, num_slices: int = 1024, generator: torch.Generator | None = None) -> dict[str, float]:
    """Collapse alarms for embeddings ``z[B, D]``.

    Returns ``sigreg`` (compare with ``FLOOR`` ≈ 1.05 and ``collapse`` = 0.402 B),
    ``std_min``/``std_median`` (per-dimension std; 1 for N(0, I)), ``effective_rank`` (RankMe:
    exp of the entropy of the normalised singular values of the centred ``z``; ``D`` at best)
    and ``top1_variance`` (share of the variance on the first principal axis).
    """
    z = z.detach().float().reshape(-1, z.shape[-1])
    std = z.std(dim=0)
    s = torch.linalg.svdvals(z - z.mean(dim=0))
    p = s / s.sum().clamp_min(1e-12)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    var = s.square()
    return {
        "sigreg": float(sigreg(z, num_slices, generator=generator)),
        "floor": FLOOR,
        "collapse": COLLAPSE_PER_SAMPLE * z.shape[0],
        "std_min": float(std.min()),
        "std_median": float(std.median()),
        "effective_rank": float(math.exp(float(entropy))),
        "top1_variance": float(var[0] / var.sum().clamp_min(1e-12)),
        "dim": float(z.shape[1]),
    }
