"""The waypoint sampler (``models/world_model/action_sampler.py``): its chunks move like the training
data, and a planner searching its parameters picks the push on a toy world with known contact."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from forethought.models.control import CEMPlanner, PlannerConfig
from forethought.models.control.objectives import Objective
from forethought.models.world_model.action_sampler import (PARAM_BOX, PUSHBLOCKS_STEP_QUANTILES, WaypointDynamics,
                                                           WaypointSampler, step_displacements,
                                                           step_quantiles)
from forethought.sim import PUSH_BLOCKS_ID
from forethought.sim.collect import collect
from forethought.sim.dataset import Dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BOX = 0.27
"""PushBlocks' action box half-width (m)."""
KS_MAX = 0.04
"""Largest two-sample Kolmogorov-Smirnov distance accepted between the sampler's block steps (``p ~ N(0, 1)``)
and held-out data steps, per dimension (measured: 0.025; held-out vs training data: 0.024)."""
KS_CHUNK = 0.12
"""The same for whole first-round chunks from the table's centre, whose 5-block random walk is clamped at the
action box in about 70 % of chunks (measured: 0.09 per dimension, 0.10 in magnitude)."""


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic ``max |F_a - F_b|``."""
    grid = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.abs(fa - fb).max())


class Recorder:
    """A ``Dynamics`` that records the env-unit chunks it is asked to roll out and scores nothing."""

    n_obs_steps = 1

    def __init__(self, horizon: int) -> None:
        self.horizon, self.seen = horizon, []

    def rollout(self, state: Tensor, actions: Tensor) -> Tensor:
        self.seen.append(torch.as_tensor(actions).clone())
        return torch.zeros(1, len(actions), actions.shape[1], 1)


class ZeroCost(Objective):
    def cost(self, states: Tensor, actions: Tensor) -> Tensor:
        return states.sum((-1, -2))


def first_round(waypoints: bool, n: int = 2000, box: float = PARAM_BOX) -> np.ndarray:
    """``[n, 25, 2]``: the first-round chunks of a 5-block CEM from the pusher at the table's centre, with the
    waypoint sampler or with LeWM's per-step box sampling (the latent planner's old default)."""
    rec = Recorder(25)
    if waypoints:
        sampler = WaypointSampler(PUSHBLOCKS_STEP_QUANTILES, 5, [-BOX] * 2, [BOX] * 2, param_box=box)
        dyn = WaypointDynamics(rec, sampler, blocks=5)
        dyn.anchor = np.zeros(2, np.float32)
        planner = CEMPlanner(dyn, *sampler.box(), PlannerConfig(samples=n, elites=10, iterations=1,
                                                                init_std=1 / sampler.param_box))
    else:
        planner = CEMPlanner(rec, [-BOX] * 2, [BOX] * 2, PlannerConfig(samples=n, elites=10, iterations=1,
                                                                       init_std=1.0, horizon=25))
    planner.reset(0)
    planner.plan(np.zeros((1, 1), np.float32), ZeroCost())
    return rec.seen[0][1:].numpy()  # row 0 is the mean


@pytest.fixture(scope="module")
def held_out_steps(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """Step displacements ``[N, 2]`` of a fresh collection with the training data's settings (other seeds)."""
    path = collect(PUSH_BLOCKS_ID, 30, 0.1, 0.5, 5000, Path(tmp_path_factory.mktemp("steps")) / "d.parquet",
                   progress=False)
    return step_displacements(Dataset.load(path))


def chunk_steps(chunks: np.ndarray) -> np.ndarray:
    """Per-step displacements ``[n * F, A]`` of chunks from the anchor at the origin."""
    return np.diff(np.concatenate([np.zeros_like(chunks[:, :1]), chunks], axis=1), axis=1).reshape(-1, 2)


def test_sampled_steps_match_the_data_and_box_samples_do_not(held_out_steps: np.ndarray) -> None:
    """The waypoint sampler's step displacements are within KS_MAX (block steps) and KS_CHUNK (whole chunks, per
    dimension and in magnitude) of held-out data; the same test rejects the box sampler, whose steps are an
    order of magnitude too large."""
    data = held_out_steps
    sampler = WaypointSampler(PUSHBLOCKS_STEP_QUANTILES, 5, [-BOX] * 2, [BOX] * 2)
    direct = sampler.steps(torch.randn(20000, 2, generator=torch.Generator().manual_seed(0))).numpy()
    new, old = chunk_steps(first_round(True)), chunk_steps(first_round(False))
    for d in range(2):
        assert ks_distance(direct[:, d], data[:, d]) < KS_MAX
        assert ks_distance(new[:, d], data[:, d]) < KS_CHUNK
        assert ks_distance(old[:, d], data[:, d]) > 3 * KS_CHUNK
    new_m, old_m, data_m = (np.linalg.norm(x, axis=1) for x in (new, old, data))
    assert ks_distance(new_m, data_m) < KS_CHUNK
    assert ks_distance(old_m, data_m) > 6 * KS_CHUNK
    assert np.median(old_m) > 5 * np.median(data_m)


def test_a_narrower_box_keeps_the_steps_within_the_central_quantiles() -> None:
    """``param_box`` 1 (the plan-step policy's): no sampled step goes beyond the data's 16th-84th
    percentile steps (``Q(Phi(-1))``, ``Q(Phi(1))``), while the default box reaches the data's tails; a
    non-positive box is refused."""
    q = np.asarray(PUSHBLOCKS_STEP_QUANTILES)
    levels = np.linspace(0, 1, q.shape[1])
    phi = 0.5 * (1 + math.erf(1 / math.sqrt(2)))
    bottom, top = (np.array([np.interp(u, levels, row) for row in q]) for u in (1 - phi, phi))  # [A] each
    narrow, wide = chunk_steps(first_round(True, box=1.0)), chunk_steps(first_round(True))
    assert np.all(narrow <= top + 1e-6) and np.all(narrow >= bottom - 1e-6)
    assert np.all(narrow.max(0) > 0.9 * top) and np.all(narrow.min(0) < 0.9 * bottom)  # the box's edges are reached
    assert np.all(wide.max(0) > 2 * top) and np.all(wide.min(0) < 2 * bottom)
    with pytest.raises(ValueError, match="param_box"):
        WaypointSampler(PUSHBLOCKS_STEP_QUANTILES, 5, [-BOX] * 2, [BOX] * 2, param_box=0.0)


def test_chunks_are_linear_within_blocks_from_the_anchor() -> None:
    sampler = WaypointSampler(PUSHBLOCKS_STEP_QUANTILES, 5, [-BOX] * 2, [BOX] * 2)
    p = torch.tensor([[[1.0, -0.5], [0.0, 2.0]]])
    a = sampler.actions(p, [0.1, -0.1])[0].numpy()  # [10, 2]
    v = sampler.steps(p)[0].numpy()  # [2, 2] per-step displacement of each block
    np.testing.assert_allclose(a[0], [0.1, -0.1] + v[0], atol=1e-6)
    np.testing.assert_allclose(np.diff(a[:5], axis=0), np.broadcast_to(v[0], (4, 2)), atol=1e-6)
    np.testing.assert_allclose(np.diff(a[4:], axis=0), np.broadcast_to(v[1], (5, 2)), atol=1e-6)
    assert sampler.steps(torch.zeros(1, 2)).abs().max() < 1e-3  # p = 0: the median step, a hold
    far = sampler.actions(torch.full((1, 5, 2), PARAM_BOX), [0.25, 0.25])[0]
    assert float(far.max()) == pytest.approx(BOX)  # clamped to the action box
    with pytest.raises(ValueError, match="non-decreasing"):
        WaypointSampler([[0.1, 0.0]], 5, [-BOX], [BOX])
    with pytest.raises(ValueError, match="anchor"):
        sampler.actions(p, [0.0])


def test_step_quantiles_of_a_data_set(held_out_steps: np.ndarray, tmp_path: Path) -> None:
    path = collect(PUSH_BLOCKS_ID, 3, 0.1, 0.5, 0, tmp_path / "d.parquet", progress=False)
    q = step_quantiles(Dataset.load(path))
    assert q.shape == (2, 41) and bool((np.diff(q, axis=1) >= 0).all())


class PushWorld:
    """A toy world with known contact: state ``[pusher x, y, block x, y]``; the pusher goes to each target
    exactly; the block (a disc of radius ``R`` around its centre) moves only when the pusher enters it,
    and then just far enough to keep the pusher on its rim."""

    R = 0.03
    n_obs_steps = 1

    def __init__(self, horizon: int = 25) -> None:
        self.horizon = horizon

    def rollout(self, state: Tensor, actions: Tensor) -> Tensor:
        s = torch.as_tensor(state, dtype=torch.float32).reshape(-1)[-4:]
        n, F, _ = actions.shape
        block = s[2:].expand(n, 2).clone()
        out = torch.empty(n, F, 4)
        for t in range(F):
            pusher = actions[:, t]
            gap = block - pusher
            dist = gap.norm(dim=-1, keepdim=True)
            inside = dist < self.R
            block = torch.where(inside, pusher + self.R * gap / dist.clamp_min(1e-9), block)
            out[:, t] = torch.cat([pusher, block], dim=-1)
        return out.unsqueeze(0)


class BlockToGoal(Objective):
    def __init__(self, goal: Tensor) -> None:
        super().__init__()
        self.goal = goal

    def cost(self, states: Tensor, actions: Tensor) -> Tensor:
        return (states[..., -1, 2:] - self.goal).norm(dim=-1)


def test_planner_picks_the_push_on_a_world_with_known_contact() -> None:
    """Block 6 cm right of the pusher, goal 8 cm beyond it: CEM over the waypoint parameters must find a
    chunk that pushes the block to within 2 cm of the goal; every non-pushing chunk leaves it 8 cm away."""
    world = PushWorld()
    sampler = WaypointSampler(PUSHBLOCKS_STEP_QUANTILES, 5, [-BOX] * 2, [BOX] * 2)
    dyn = WaypointDynamics(world, sampler, blocks=5)
    dyn.anchor = np.zeros(2, np.float32)
    state = np.array([[0.0, 0.0, 0.06, 0.0]], np.float32)
    goal = torch.tensor([0.14, 0.0])
    planner = CEMPlanner(dyn, *sampler.box(), PlannerConfig(samples=200, elites=20, iterations=6,
                                                            init_std=1 / sampler.param_box, carry_elites=False,
                                                           returns="best", warm_start=False))
    planner.reset(0)
    params = planner.plan(state, BlockToGoal(goal))
    chunk = dyn.actions(torch.from_numpy(params)[None])
    final = world.rollout(state, chunk)[0, 0, -1]
    assert float((final[2:] - goal).norm()) < 0.02
    still = world.rollout(state, dyn.actions(torch.zeros(1, 5, 2)))[0, 0, -1]  # holding: no contact
    assert float((still[2:] - goal).norm()) == pytest.approx(0.08, abs=1e-6)
