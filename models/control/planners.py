"""Sampling planners over imagined state rollouts: SSR (D-MPC), proposal-seeded MPPI, plain CEM.

Every planner has one call, ``plan(obs_history, objective, goal=None) -> chunk float32[F, A]`` (env
units, clamped to the action box), and one budget: ``samples`` candidate chunks per iteration,
each rolled out once through the dynamics (``rollout(state, actions[n, F, A]) -> states[K, n, F, S]``,
the learned ensemble or ``OracleDynamics``) and scored with ``objective.score`` (mean over the K
members plus ``beta`` times their std). A planner evaluates ``samples * (1 + iterations)`` chunks
per call (CEM: ``samples * iterations``), which is what "equal compute" compares.

- ``SSRPlanner`` (D-MPC, Zhou et al. arXiv 2410.05364): ``samples`` proposals from the diffusion
  proposer, one rollout each, the argmin.
- ``MPPIPlanner``: SSR's proposals are the first population, then ``iterations`` rounds of
  Gaussian samples around the MPPI-weighted mean of the elites (as TD-MPC2 mixes policy samples
  into its MPPI), elites carried over between rounds.
- ``CEMPlanner``: no proposer; a Gaussian prior (centre of the action box, or the previous plan
  shifted by the executed steps), ``iterations`` rounds of elite refits.

Each planner returns the lowest-cost chunk it evaluated (never an unevaluated mean), clamped to the
action limits; every candidate is clamped before it is rolled out.

Example::

    planner = SSRPlanner(proposer, dynamics, low, high, PlannerConfig(samples=64))
    planner.reset(seed=0)
    chunk = planner.plan(obs_history, Objective.from_step(step, scene_info), goal=step)   # [F, A]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor

from forethought.models.control.objectives import Objective


def last_steps(history: Tensor, k: int) -> Tensor:
    """The last ``k`` rows of ``history[h, S]``, the first row repeated in front when ``h < k`` (episode start)."""
    if len(history) >= k:
        return history[-k:]
    return torch.cat([history[:1].expand(k - len(history), -1), history])


class Dynamics(Protocol):
    """What the planners roll candidates through (``DynamicsEnsemble``, ``OracleDynamics``)."""

    horizon: int
    n_obs_steps: int

    def rollout(self, state: np.ndarray | Tensor, actions: np.ndarray | Tensor) -> Tensor:
        """``state[S]`` or ``[n_obs_steps, S]`` and ``actions[n, F, A]`` -> ``states[K, n, F, S]``."""


class Proposer(Protocol):
    """What SSR and MPPI sample from (``DiffusionProposer``, or a scripted stand-in in tests)."""

    def propose(self, obs_history: np.ndarray | Tensor, n: int, goal: Mapping[str, Any] | None = None,
                generator: torch.Generator | None = None, num_inference_steps: int | None = None) -> Tensor:
        """``actions[n, F, A]`` in env units."""


@dataclass
class PlannerConfig:
    """Budget and search settings shared by the planners.

    Attributes:
        samples: candidate chunks per iteration (SSR: the number of proposals N).
        iterations: MPPI refinement rounds after the proposals; CEM rounds (at least 1).
        elites: candidates refit on per round (MPPI, CEM).
        temperature: MPPI weight ``softmax(-(c - c_min) / (temperature * elite cost range))``.
        init_std: CEM prior std, in normalised action units ([-1, 1] spans the box).
        min_std: floor of the refit std (normalised units).
        horizon: steps per plan (``None``: the proposer's horizon, at most the dynamics' horizon).
        action_steps: actions executed per plan (m); CEM shifts its warm start by it.
        use_goal: give the proposer the plan step (goal-conditioned proposals) or not.
        goal_fraction: with ``use_goal``, the share of proposals conditioned on the goal; the rest
            are goal-free (broader: they cover detours that a new objective term may need).
        num_inference_steps: the proposer's DDIM steps (``None``: its default).
    """

    samples: int = 64
    iterations: int = 2
    elites: int = 8
    temperature: float = 0.5
    init_std: float = 0.5
    min_std: float = 0.05
    horizon: int | None = None
    action_steps: int = 8
    use_goal: bool = True
    goal_fraction: float = 1.0
    num_inference_steps: int | None = None

    def __post_init__(self) -> None:
        for name in ("samples", "elites", "action_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"planner {name} must be a positive integer, got {v!r}")
        if not isinstance(self.iterations, int) or isinstance(self.iterations, bool) or self.iterations < 0:
            raise ValueError(f"planner iterations must be an integer >= 0, got {self.iterations!r}")
        if self.horizon is not None and (not isinstance(self.horizon, int) or self.horizon < 1):
            raise ValueError(f"planner horizon must be a positive integer or None, got {self.horizon!r}")
        if not 0.0 <= self.goal_fraction <= 1.0:
            raise ValueError(f"planner goal_fraction must lie in [0, 1], got {self.goal_fraction!r}")
        if not (self.temperature > 0 and self.init_std > 0 and 0 <= self.min_std <= self.init_std):
            raise ValueError(f"need temperature > 0 and 0 <= min_std <= init_std, got {self.temperature}, "
                             f"{self.min_std}, {self.init_std}")


class Planner(ABC):
    """Shared machinery: action box, normalisation, batched scoring, seeding (see the module docstring).

    Args:
        dynamics: rolls candidates out (``rollout``).
        action_low, action_high: the env's action box ``[A]``; every candidate and the output are clamped to it.
        config: budget and search settings.
    """

    def __init__(self, dynamics: Dynamics, action_low: Sequence[float], action_high: Sequence[float],
                 config: PlannerConfig | None = None) -> None:
        self.dynamics, self.config = dynamics, config or PlannerConfig()
        self.low = torch.as_tensor(np.asarray(action_low, dtype=np.float32))
        self.high = torch.as_tensor(np.asarray(action_high, dtype=np.float32))
        if self.low.shape != self.high.shape or self.low.dim() != 1 or not bool((self.low < self.high).all()):
            raise ValueError(f"action limits must be two [A] vectors with low < high, got {action_low}, {action_high}")
        self.mid, self.half = (self.high + self.low) / 2, (self.high - self.low) / 2
        self.generator = torch.Generator().manual_seed(0)
        self.evaluations = 0
        """Chunks rolled out since ``reset``."""

    @property
    def horizon(self) -> int:
        """Steps per planned chunk."""
        longest = int(getattr(self.dynamics, "max_horizon", self.dynamics.horizon))
        return min(self.config.horizon or longest, longest)

    def reset(self, seed: int = 0) -> None:
        """Start an episode: reseed the sampling noise, drop any warm start."""
        self.generator.manual_seed(seed)
        self.evaluations = 0

    def clamp(self, actions: Tensor) -> Tensor:
        """``actions[..., A]`` clamped to the action box."""
        return torch.maximum(torch.minimum(actions.float(), self.high), self.low)

    def evaluate(self, history: Tensor, objective: Objective, actions: Tensor) -> Tensor:
        """Costs ``[n]`` of ``actions[n, F, A]`` (clamped first) from ``history[h, S]``; NaN costs count as +inf."""
        actions = self.clamp(actions)
        states = self.dynamics.rollout(last_steps(history, self.dynamics.n_obs_steps), actions)  # [K, n, F, S]
        self.evaluations += actions.shape[0]
        return torch.nan_to_num(objective.score(states.float(), actions), nan=float("inf"))

    def plan(self, obs_history: np.ndarray | Tensor, objective: Objective,
             goal: Mapping[str, Any] | None = None) -> np.ndarray:
        """The chosen chunk ``float32[F, A]`` (env units, within the action box) for ``obs_history[h, S]``
        (latest last); ``goal`` is the plan step for goal-conditioned proposals."""
        history = torch.as_tensor(np.asarray(obs_history, dtype=np.float32))
        if history.dim() != 2:
            raise ValueError(f"obs_history must be [h, S] (latest last), got shape {list(history.shape)}")
        if not bool(torch.isfinite(history).all()):
            raise ValueError("obs_history contains NaN or inf: refusing to plan on it")
        with torch.inference_mode():
            chunk = self.clamp(self._search(history, objective, goal))
        if not bool(torch.isfinite(chunk).all()):
            raise ValueError("the planner produced a non-finite chunk: refusing to act on it")
        return chunk.numpy().astype(np.float32)

    @abstractmethod
    def _search(self, history: Tensor, objective: Objective, goal: Mapping[str, Any] | None) -> Tensor:
        """The chosen chunk ``[F, A]`` (env units) for a checked ``history[h, S]``."""

    def _refine(self, history: Tensor, objective: Objective, candidates: Tensor | None, mean: Tensor,
                std: Tensor, rounds: int, weighted: bool) -> tuple[Tensor, Tensor]:
        """Evaluate ``candidates[n, F, A]`` (if any), then ``rounds`` rounds of Gaussian samples around
        the refit ``mean, std[F, A]`` (normalised); returns the best chunk seen and the last mean."""
        c = self.config
        best, best_cost = None, float("inf")
        pool, pool_costs = None, None
        for r in range(rounds + (candidates is not None)):
            if r > 0 or candidates is None:
                noise = torch.randn(c.samples, *mean.shape, generator=self.generator)
                z = (mean + std * noise).clamp(-1.0, 1.0)
                z[0] = mean
                candidates = self.mid + self.half * z
            costs = self.evaluate(history, objective, candidates)
            i = int(torch.argmin(costs))
            if float(costs[i]) < best_cost or best is None:
                best, best_cost = self.clamp(candidates[i]), float(costs[i])
            z = (self.clamp(candidates) - self.mid) / self.half
            if pool is not None:
                z, costs = torch.cat([z, pool]), torch.cat([costs, pool_costs])
            k = min(c.elites, len(costs))
            pool_costs, idx = torch.topk(costs, k, largest=False)
            pool = z[idx]
            mean, std = self._refit(pool, pool_costs, weighted)
        assert best is not None
        return best, mean

    def _refit(self, elites: Tensor, costs: Tensor, weighted: bool) -> tuple[Tensor, Tensor]:
        """``(mean, std)[F, A]`` of ``elites[E, F, A]``: MPPI-weighted or plain (CEM)."""
        if weighted:
            finite = torch.isfinite(costs)
            spread = (costs[finite].max() - costs[finite].min()).clamp_min(1e-9) if finite.any() else torch.tensor(1.0)
            w = torch.softmax(-(costs - costs.min()) / (spread * self.config.temperature), dim=0)
            w = torch.nan_to_num(w)[:, None, None]
            mean = (w * elites).sum(0)
            std = (w * (elites - mean).square()).sum(0).sqrt()
        else:
            mean, std = elites.mean(0), elites.std(0, unbiased=False)
        return mean, std.clamp_min(self.config.min_std)


class SSRPlanner(Planner):
    """D-MPC's sample-score-rank: ``samples`` proposals, one rollout each, the lowest cost."""

    def __init__(self, proposer: Proposer, dynamics: Dynamics, action_low: Sequence[float],
                 action_high: Sequence[float], config: PlannerConfig | None = None) -> None:
        super().__init__(dynamics, action_low, action_high, config)
        self.proposer = proposer
        self.n_obs_steps = int(getattr(getattr(proposer, "config", None), "n_obs_steps", 1))
        proposer_horizon = getattr(getattr(proposer, "config", None), "horizon", None)
        self.proposer_horizon = int(proposer_horizon) if proposer_horizon is not None else None

    @property
    def horizon(self) -> int:
        h = super().horizon
        return h if self.proposer_horizon is None else min(h, self.proposer_horizon)

    def proposals(self, history: Tensor, goal: Mapping[str, Any] | None) -> Tensor:
        """``actions[samples, F, A]`` from the proposer (clamped), cut to the plan horizon."""
        c = self.config
        hist = last_steps(history, self.n_obs_steps)
        n_goal = round(c.samples * c.goal_fraction) if c.use_goal and goal is not None else 0
        parts = [self.proposer.propose(hist, n, g, self.generator, c.num_inference_steps)
                 for n, g in ((n_goal, goal), (c.samples - n_goal, None)) if n > 0]
        return self.clamp(torch.cat([torch.as_tensor(p) for p in parts])[:, : self.horizon])

    def _search(self, history: Tensor, objective: Objective, goal: Mapping[str, Any] | None) -> Tensor:
        candidates = self.proposals(history, goal)
        costs = self.evaluate(history, objective, candidates)
        return candidates[int(torch.argmin(costs))]


class MPPIPlanner(SSRPlanner):
    """SSR's proposals as the first MPPI population, then ``iterations`` rounds of MPPI refinement."""

    def _search(self, history: Tensor, objective: Objective, goal: Mapping[str, Any] | None) -> Tensor:
        candidates = self.proposals(history, goal)
        zeros = torch.zeros(candidates.shape[1:])
        best, _ = self._refine(history, objective, candidates, zeros, zeros, self.config.iterations, weighted=True)
        return best


class CEMPlanner(Planner):
    """Cross-entropy method with a Gaussian prior and no proposer (the baseline).

    The prior mean is the centre of the action box at an episode's first plan, then the previous
    plan's final mean shifted by ``action_steps`` (last step repeated); the prior std is ``init_std``.
    """

    def __init__(self, dynamics: Dynamics, action_low: Sequence[float], action_high: Sequence[float],
                 config: PlannerConfig | None = None) -> None:
        super().__init__(dynamics, action_low, action_high, config)
        if self.config.iterations < 1:
            raise ValueError("CEM needs iterations >= 1")
        self._warm: Tensor | None = None

    def reset(self, seed: int = 0) -> None:
        super().reset(seed)
        self._warm = None

    def _search(self, history: Tensor, objective: Objective, goal: Mapping[str, Any] | None) -> Tensor:
        F, A, m = self.horizon, len(self.low), self.config.action_steps
        if self._warm is None:
            mean = torch.zeros(F, A)
        else:
            mean = torch.cat([self._warm[m:], self._warm[-1:].expand(min(m, F), -1)])[:F]
        std = torch.full((F, A), self.config.init_std)
        best, self._warm = self._refine(history, objective, None, mean, std, self.config.iterations, weighted=False)
        return best
