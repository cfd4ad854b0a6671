"""SIGReg against the numeric oracles of the design note (shared/research/sigreg.md, §1).

The oracles (grid [0, 3], 17 knots): exact N(0, I) samples give ≈ 1.052 for any batch size; a
constant embedding at the origin gives 0.402 B; N(0, s^2 I) gives 19.8 (s = 0.5) and 31.9 (s = 2)
at B = 128.
"""

from __future__ import annotations


import pytest
import torch

from forethought.models.world_model.sigreg import (
    COLLAPSE_PER_SAMPLE,
    FLOOR,
    SIGReg,
    collapse_diagnostics,
    expected_sigreg_scaled,
    sigreg,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_closed_form_constants_match_the_note() -> None:
    assert FLOOR == pytest.approx(1.052, abs=1e-3)
    assert COLLAPSE_PER_SAMPLE == pytest.approx(0.402, abs=1e-3)
    assert expected_sigreg_scaled(0.5, 128) == pytest.approx(19.8, abs=0.05)
    assert expected_sigreg_scaled(2.0, 128) == pytest.approx(31.9, abs=0.05)


@pytest.mark.parametrize("batch", [32, 128, 512])
def test_gaussian_samples_sit_at_the_floor(batch: int) -> None:
    g = gen(batch)
    values = [float(sigreg(torch.randn(batch, 64, generator=g), 1024, generator=g)) for _ in range(8)]
    assert sum(values) / len(values) == pytest.approx(FLOOR, rel=0.12)


def test_constant_embedding_gives_0402_batch() -> None:
    z = torch.zeros(128, 192)
    assert float(sigreg(z, 64, generator=gen())) == pytest.approx(COLLAPSE_PER_SAMPLE * 128, rel=1e-5)
    # a constant away from the origin adds a phase error on top: never below the collapse value
    assert float(sigreg(torch.full((128, 192), 0.3), 256, generator=gen())) > COLLAPSE_PER_SAMPLE * 128


@pytest.mark.parametrize("scale,expected", [(0.5, 19.8), (2.0, 31.9)])
def test_wrong_scale_matches_the_note(scale: float, expected: float) -> None:
    g = gen(7)
    values = [float(sigreg(scale * torch.randn(128, 192, generator=g), 1024, generator=g)) for _ in range(8)]
    assert sum(values) / len(values) == pytest.approx(expected, rel=0.1)


def test_low_rank_embedding_is_flagged() -> None:
    """Equal total variance squeezed into 2 of 192 dims reads far above the floor (note: 13.5)."""
    g = gen(3)
    z = torch.zeros(128, 192)
    z[:, :2] = torch.randn(128, 2, generator=g) * (192 / 2) ** 0.5
    assert float(sigreg(z, 1024, generator=g)) > 8.0


def test_gradient_flows_and_descent_uncollapses() -> None:
    g = gen(1)
    z = (0.05 * torch.randn(128, 16, generator=g)).requires_grad_()
    opt = torch.optim.Adam([z], lr=0.05)
    start = float(sigreg(z.detach(), 128, generator=g))
    for _ in range(80):
        loss = sigreg(z, 64, generator=g)
        opt.zero_grad()
        loss.backward()
        assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
        opt.step()
    end = float(sigreg(z.detach(), 1024, generator=g))
    assert start > 25 and end < 2.0


def test_directions_are_fresh_each_call_and_seeded() -> None:
    z = torch.rand(64, 8) * 3  # uniform: far from Gaussian, so every direction reads differently
    g = gen(0)
    assert float(sigreg(z, 16, generator=g)) != float(sigreg(z, 16, generator=g))
    assert float(sigreg(z, 16, generator=gen(5))) == float(sigreg(z, 16, generator=gen(5)))


def test_leading_dims_average_per_time_step() -> None:
    z = torch.randn(3, 64, 8, generator=gen(2))
    joint = float(sigreg(z, 32, generator=gen(9)))  # one draw of directions shared by all steps
    per_step = [float(sigreg(z[t], 32, generator=gen(9))) for t in range(3)]
    assert joint == pytest.approx(sum(per_step) / 3, rel=1e-5)


def test_computed_in_float32() -> None:
    z = torch.randn(64, 8, generator=gen(4))
    assert sigreg(z.double(), 8).dtype == torch.float32
    assert sigreg(z.bfloat16(), 8).dtype == torch.float32
    assert SIGReg(8)(z, generator=gen()).dtype == torch.float32


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="embeddings"):
        sigreg(torch.randn(8), 4)
    with pytest.raises(ValueError, match="at least 2"):
        sigreg(torch.randn(1, 8), 4)
    with pytest.raises(ValueError, match="num_slices"):
        SIGReg(num_slices=0)


def test_collapse_diagnostics_tell_gaussian_from_collapsed() -> None:
    g = gen(6)
    good = collapse_diagnostics(torch.randn(512, 32, generator=g), generator=g)
    assert good["sigreg"] < 1.5 and good["effective_rank"] > 25 and 0.8 < good["std_min"] < 1.2
    z = torch.randn(512, 1, generator=g) * torch.ones(1, 32)  # every dim the same: rank 1
    bad = collapse_diagnostics(z, generator=g)
    assert bad["effective_rank"] < 1.5 and bad["top1_variance"] > 0.99 and bad["sigreg"] > 10
