"""In-distribution action chunks for the latent planners: smooth waypoints around the pusher.

LeWM's latent CEM samples every env step's action independently, ``N(0, 1)`` in normalised units
over the whole action box. PushBlocks' action is the pusher's position target, so those chunks
jump tens of centimetres per 0.1 s step, which the world model never saw in training (its data
moves the target a median 2.2 cm per step) and cannot rank (issue #18). ``WaypointSampler``
parameterises a chunk the way the data moves instead:

- parameters ``p[K, A]``: one per action block (``K`` blocks of ``frameskip`` steps) and action
  dimension, searched in ``[-param_box, param_box]``; ``p ~ N(0, 1)`` is the prior, so the box
  keeps the search inside the central ``2 Phi(param_box) - 1`` of the data's steps (3: 99.7 %,
  up to 17 cm per 0.1 s step, near the table's extreme of 18 cm; 1: 68 %, up to 2.4 cm per step, the plan-step
  policy's box, which keeps pushes at speeds whose contact the world model predicts);
- the block's per-step displacement ``v_k = Q_d(Phi(p_k))`` per dimension ``d``: ``Phi`` the
  standard normal CDF, ``Q_d`` the quantile function of the training data's step displacement
  ``a_{t+1} - a_t`` in that dimension (piecewise linear between ``STEP_LEVELS`` quantiles), so
  ``p ~ N(0, 1)`` draws each dimension's step exactly from the data's marginal distribution
  (including its 20 % of holds), and the map is monotone, so a refit of ``p`` moves the step
  smoothly;
- waypoints ``w_0 = anchor`` (the pusher's current position, or for a pixel model the last
  commanded target) and ``w_k = w_{k-1} + frameskip * v_k``;
- actions: linear interpolation within each block, step ``j = 1..frameskip`` of block ``k`` is
  ``w_{k-1} + j v_k``, clamped to the action box.

The quantiles come from the noise-free actions (``expert_action``: the expert's choice in expert
episodes, the executed action in play episodes; the executed actions add the collection's white
noise, which the pusher filters out) within episodes (``step_quantiles``).
``PUSHBLOCKS_STEP_QUANTILES`` is that table for the shipped models' training data
(``models/pretrained/wm-pushblocks-*/README.md``: ``forethought collect --env
forethought/PushBlocks-v0 --episodes 400 --noise 0.1 --play-fraction 0.5 --seed 0``, 41758 steps);
``python -m forethought.models.world_model.action_sampler --data FILE`` prints it for another data
set.

``WaypointDynamics`` wraps any planner ``Dynamics`` (``LatentDynamics``, ``OracleDynamics``, a toy
world) so the shared control planners (``CEMPlanner``, ``MPPIPlanner``) search and refit the
parameters ``p`` (action box ``sampler.box()``; a normalised ``init_std`` of ``1 / sampler.param_box`` is
the ``N(0, 1)`` prior); ``actions`` turns the chosen ``p`` into the env actions that were scored.

Example::

    sampler = WaypointSampler.for_model(model)
    dyn = WaypointDynamics(LatentDynamics(model, 5), sampler, model.action_blocks)
    dyn.anchor = obs[scene.PUSHER_POS]
    p = CEMPlanner(dyn, *sampler.box(), config).plan(latent_state, objective)  # [K, A] parameters
    actions = dyn.actions(torch.from_numpy(p)[None])[0]                        # [K * frameskip, A], env units
"""

from __future__ import annotations

import argparse
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from forethought.sim.dataset import Dataset

STEP_LEVELS = 41
"""Quantiles per dimension in a step table, at probabilities ``0, 1/40, ..., 1``."""

PUSHBLOCKS_STEP_QUANTILES = (
    (-0.1788, -0.0564, -0.0437, -0.0360, -0.0303, -0.0256, -0.0217, -0.0184, -0.0156, -0.0130, -0.0106, -0.0086,
     -0.0067, -0.0049, -0.0031, -0.0013, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000,
     0.0011, 0.0026, 0.0043, 0.0064, 0.0084, 0.0105, 0.0128, 0.0157, 0.0187, 0.0221, 0.0257, 0.0299, 0.0352,
     0.0428, 0.0554, 0.1800),
    (-0.1800, -0.0569, -0.0432, -0.0361, -0.0302, -0.0257, -0.0219, -0.0186, -0.0158, -0.0129, -0.0104, -0.0082,
     -0.0063, -0.0042, -0.0024, -0.0010, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000,
     0.0009, 0.0025, 0.0043, 0.0064, 0.0085, 0.0104, 0.0129, 0.0157, 0.0188, 0.0225, 0.0257, 0.0302, 0.0355,
     0.0438, 0.0578, 0.1785),
)
"""``[A][STEP_LEVELS]`` step-displacement quantiles (m) of the shipped models' training data (module docstring)."""

PARAM_BOX = 3.0
"""Default half-width of the parameter box (3 prior stds per block and dimension: nearly all of the data's steps)."""


def step_displacements(ds: Dataset) -> np.ndarray:
    """``[N', A]`` step-to-step displacements ``a_{t+1} - a_t`` of the noise-free actions (``expert_action``)
    within the episodes of ``ds``."""
    a = ds.expert_action
    same = ds.episode_index[1:] == ds.episode_index[:-1]
    return (a[1:] - a[:-1])[same]


def step_quantiles(ds: Dataset) -> np.ndarray:
    """``float32[A, STEP_LEVELS]``: the quantile table of ``step_displacements(ds)`` per dimension."""
    return np.quantile(step_displacements(ds), np.linspace(0.0, 1.0, STEP_LEVELS), axis=0).T.astype(np.float32)


class WaypointSampler:
    """Parameters ``p[n, K, A]`` -> smooth env-unit action chunks (module docstring).

    Args:
        quantiles: ``[A, L]`` step-displacement quantiles at probabilities ``linspace(0, 1, L)``
            (env units, non-decreasing per row).
        frameskip: env steps per block.
        low, high: the action box ``[A]``; actions are clamped to it.
        param_box: the parameters are searched in ``[-param_box, param_box]`` (module docstring).
    """

    def __init__(self, quantiles: Sequence[Sequence[float]], frameskip: int, low: Sequence[float],
                 high: Sequence[float], param_box: float = PARAM_BOX) -> None:
        self.quantiles = torch.as_tensor(np.asarray(quantiles, np.float32))
        self.low = torch.as_tensor(np.asarray(low, np.float32))
        self.high = torch.as_tensor(np.asarray(high, np.float32))
        q = self.quantiles
        if q.dim() != 2 or q.shape[1] < 2 or not bool((q[:, 1:] >= q[:, :-1]).all()):
            raise ValueError(f"quantiles must be [A, L >= 2] and non-decreasing along L, got shape {list(q.shape)}")
        width = (q.shape[0],)
        if self.low.shape != width or self.high.shape != width or not bool((self.low < self.high).all()):
            raise ValueError(f"low and high must be [{q.shape[0]}] vectors with low < high, got {low}, {high}")
        if not isinstance(frameskip, int) or frameskip < 1:
            raise ValueError(f"frameskip must be a positive integer, got {frameskip!r}")
        if not 0 < param_box <= 10:
            raise ValueError(f"param_box must lie in (0, 10] prior stds, got {param_box}")
        self.frameskip, self.action_dim, self.param_box = frameskip, q.shape[0], float(param_box)

    @classmethod
    def for_model(cls, model: Any, quantiles: Sequence[Sequence[float]] = PUSHBLOCKS_STEP_QUANTILES,
                  param_box: float = PARAM_BOX) -> WaypointSampler:
        """The sampler of a ``LatentWorldModel`` (its frameskip and action box)."""
        c = model.config
        return cls(quantiles, c.frameskip, c.action_low, c.action_high, param_box)

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """The planners' search box ``(low, high)[A]`` over the parameters."""
        high = np.full(self.action_dim, self.param_box, np.float32)
        return -high, high

    def steps(self, params: Tensor) -> Tensor:
        """Per-step displacements ``v[..., A]`` of parameters ``params[..., A]``: ``Q_d(Phi(p))``."""
        q = self.quantiles.to(params.device)
        L = q.shape[1]
        u = 0.5 * (1.0 + torch.erf(params / np.sqrt(2.0)))  # Phi(p) in [0, 1]
        x = (u * (L - 1)).clamp(0, L - 1)
        lo = x.floor().long().clamp(max=L - 2)
        w = x - lo
        dims = torch.arange(self.action_dim, device=params.device).expand_as(lo)
        return q[dims, lo] * (1 - w) + q[dims, lo + 1] * w

    def actions(self, params: Tensor, anchor: Any) -> Tensor:
        """``params[n, K, A]`` and ``anchor[A]`` (env units) -> actions ``[n, K * frameskip, A]`` (env units)."""
        p = torch.as_tensor(params, dtype=torch.float32)
        if p.dim() != 3 or p.shape[2] != self.action_dim:
            raise ValueError(f"params must be [n, K, {self.action_dim}], got {list(p.shape)}")
        dev = p.device
        a0 = torch.as_tensor(np.asarray(anchor, np.float32), device=dev).reshape(-1)
        if a0.shape != (self.action_dim,):
            raise ValueError(f"anchor must be [{self.action_dim}], got {list(a0.shape)}")
        v = self.steps(p)  # [n, K, A] per-step displacement of each block
        starts = a0 + torch.cat([torch.zeros_like(v[:, :1]), self.frameskip * v[:, :-1]], dim=1).cumsum(1)
        j = torch.arange(1, self.frameskip + 1, device=dev, dtype=torch.float32)[:, None]  # [fs, 1]
        steps = starts[:, :, None] + v[:, :, None] * j  # [n, K, fs, A]
        steps = torch.maximum(torch.minimum(steps, self.high.to(dev)), self.low.to(dev))
        return steps.reshape(len(p), -1, self.action_dim)


class WaypointDynamics:
    """A planner ``Dynamics`` over waypoint parameters: ``rollout(state, p[n, K, A])`` rolls
    ``inner_actions(sampler.actions(p, anchor))`` through ``inner`` (module docstring).

    Args:
        inner: the dynamics whose rollouts are scored (``LatentDynamics``, ``OracleDynamics``, ...).
        sampler: parameters -> env actions.
        inner_actions: env actions ``[n, F, A]`` -> the ``inner`` dynamics' actions (``model.action_blocks``
            for ``LatentDynamics``; identity for dynamics in env units).
        blocks: parameter rows per plan (``K``).
    """

    def __init__(self, inner: Any, sampler: WaypointSampler, inner_actions: Callable[[Tensor], Tensor] | None = None,
                 blocks: int | None = None) -> None:
        self.inner, self.sampler = inner, sampler
        self.inner_actions = inner_actions or (lambda a: a)
        self.horizon = int(blocks if blocks is not None else inner.horizon)
        self.n_obs_steps = inner.n_obs_steps
        self.action_dim = sampler.action_dim
        self.anchor: np.ndarray | None = None
        """Where the waypoints start (env units); set before each plan."""

    def actions(self, params: Tensor) -> Tensor:
        """Env actions ``[n, K * frameskip, A]`` of ``params[n, K, A]`` from the current ``anchor``."""
        if self.anchor is None:
            raise ValueError("WaypointDynamics.anchor is not set: set it to the pusher's position before planning")
        return self.sampler.actions(params, self.anchor)

    def rollout(self, state: Any, params: Tensor) -> Tensor:
        """``state`` (the inner dynamics') and ``params[n, K, A]`` -> the inner rollout of their actions."""
        return self.inner.rollout(state, self.inner_actions(self.actions(params)))


def main(argv: list[str] | None = None) -> int:
    """Print ``PUSHBLOCKS_STEP_QUANTILES`` for a data set (``--data FILE``)."""
    ap = argparse.ArgumentParser(description="step-displacement quantile table of a data set's noise-free actions")
    ap.add_argument("--data", required=True, help="a forethought episodes parquet file")
    q = step_quantiles(Dataset.load(ap.parse_args(argv).data))
    rows = ("    (" + ", ".join(f"{v:.4f}" for v in np.round(row, 4) + 0.0) + "),\n" for row in q)  # + 0.0: no "-0.0000"
    print("(\n" + "".join(rows) + ")")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
