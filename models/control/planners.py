"""Sampling planners over imagined rollouts: SSR (D-MPC), MPPI, CEM, and the latent planners' configuration.

Every planner has one call, ``plan(obs_history, objective, goal=None) -> chunk float32[F, A]`` (the
dynamics' action units, clamped to the action box), and one budget: ``samples`` candidate chunks
per iteration, each rolled out once through the dynamics (``rollout(state, actions[n, F, A]) ->
states[K, n, F, S]``: the learned ensemble, ``OracleDynamics``, or the world model's
``LatentDynamics``) and scored with ``objective.score`` (mean over the K members plus ``beta``
times their std). A planner evaluates ``samples * (1 + iterations)`` chunks per call with
proposals (SSR, MPPI), ``samples * iterations`` without (CEM, MPPI from a Gaussian prior), which
is what "equal compute" compares.

- ``SSRPlanner`` (D-MPC, Zhou et al. arXiv 2410.05364): ``samples`` proposals from the diffusion
  proposer, one rollout each, the argmin.
- ``MPPIPlanner``: SSR's proposals (or, without a proposer, Gaussian samples around the prior) are
  the first population, then ``iterations`` rounds of Gaussian samples around the MPPI-weighted
  mean of the elites (as TD-MPC2 mixes policy samples into its MPPI).
- ``CEMPlanner``: no proposer; a Gaussian prior (centre of the action box, or the previous plan
  shifted by the executed steps), ``iterations`` rounds of elite refits.

The Gaussian rounds sample in normalised units (``[-1, 1]`` spans the box), and every round refits
the sampling distribution with ``refit``, the one refit rule of all planners: the elites' mean
and std (CEM) or their MPPI-weighted mean and std. Row 0 of every round is the current mean.
By default a planner returns the lowest-cost chunk it evaluated, carries the elites over between
rounds and warm-starts its prior; LeWM's latent CEM and MPPI (``world_model.latent_planner``) are
these planners with ``carry_elites=False, returns="mean", warm_start=False``. Every candidate is
clamped to the action box before it is rolled out.

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

RETURNS = ("best", "mean")


def last_steps(history: Tensor, k: int) -> Tensor:
    """The last ``k`` rows of ``history[h, S]``, the first row repeated in front when ``h < k`` (episode start)."""
    if len(history) >= k:
        return history[-k:]
    return torch.cat([history[:1].expand(k - len(history), -1), history])


def refit(elites: Tensor, costs: Tensor, min_std: float, temperature: float | None = None) -> tuple[Tensor, Tensor]:
    """The next sampling distribution ``(mean, std)[F, A]`` from ``elites[E, F, A]`` (normalised units)
    and their ``costs[E]`` (ascending, as ``torch.topk`` gives them); ``std >= min_std``.

    ``temperature=None``: the elites' plain mean and std (CEM). Otherwise MPPI: weights
    ``softmax(-(c - c_min) / (temperature * (c_max - c_min)))`` over the finite costs (an infinite
    cost weighs 0), so ``temperature`` is in units of the elites' cost range.
    """
    if temperature is None:
        mean, std = elites.mean(0), elites.std(0, unbiased=False)
    else:
        finite = torch.isfinite(costs)
        spread = (costs[finite].max() - costs[finite].min()).clamp_min(1e-9) if finite.any() else costs.new_tensor(1.0)
        w = torch.softmax(-(costs - costs.min()) / (spread * temperature), dim=0)
        w = torch.nan_to_num(w)[:, None, None]
        mean = (w * elites).sum(0)
        std = (w * (elites - mean).square()).sum(0).sqrt()
    return mean, std.clamp_min(min_std)


class Dynamics(Protocol):
    """What the planners roll candidates through (``DynamicsEnsemble``, ``OracleDynamics``,
    ``ProbedLatentDynamics``, ``LatentDynamics``)."""

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

    Budget:
        samples: candidate chunks per iteration (SSR: the number of proposals N).
        iterations: MPPI refinement rounds after the proposals; CEM rounds (at least 1).
        elites: candidates refit on per round (MPPI, CEM).
        action_steps: actions executed per plan (m); the warm start shifts by it.
        horizon: steps per plan (``None``: the proposer's horizon, at most the dynamics' horizon).
    Gaussian rounds:
        temperature: MPPI weight ``softmax(-(c - c_min) / (temperature * elite cost range))``.
        init_std: Gaussian prior std, in normalised action units ([-1, 1] spans the box).
        min_std: floor of the refit std (normalised units).
    Proposals:
        use_goal: give the proposer the plan step (goal-conditioned proposals) or not.
        goal_fraction: with ``use_goal``, the share of proposals conditioned on the goal; the rest
            are goal-free (broader: they cover detours that a new objective term may need).
        num_inference_steps: the proposer's DDIM steps (``None``: its default).
    D-MPC or LeWM (the latent planners set all three to the second option):
        carry_elites: keep the elites of earlier rounds in each refit's pool (``False``: refit on
            the round's own samples only).
        returns: ``"best"``, the lowest-cost chunk evaluated, or ``"mean"``, the last refit mean
            (SSR always returns its best proposal).
        warm_start: a Gaussian prior starts from the previous plan's final mean shifted by
            ``action_steps`` (``False``: from the centre of the box at every plan).
    """

    # budget
    samples: int = 64
    iterations: int = 2
    elites: int = 8
    action_steps: int = 8
    horizon: int | None = None
    # Gaussian rounds
    temperature: float = 0.5
    init_std: float = 0.5
    min_std: float = 0.05
    # proposals
    use_goal: bool = True
    goal_fraction: float = 1.0
    num_inference_steps: int | None = None
    # D-MPC or LeWM
    carry_elites: bool = True
    returns: str = "best"
    warm_start: bool = True

    def __post_init__(self) -> None:
        counts = {"samples": 1, "elites": 1, "action_steps": 1, "iterations": 0}
        if self.horizon is not None:
            counts["horizon"] = 1
        for name, least in counts.items():  # the smallest valid value of each count
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < least:
                raise ValueError(f"planner {name} must be an integer >= {least}, got {v!r}")
        if not 0.0 <= self.goal_fraction <= 1.0:
            raise ValueError(f"planner goal_fraction must lie in [0, 1], got {self.goal_fraction!r}")
        if not (self.temperature > 0 and self.init_std > 0 and 0 <= self.min_std <= self.init_std):
            raise ValueError(f"need temperature > 0 and 0 <= min_std <= init_std, got {self.temperature}, "
                             f"{self.min_std}, {self.init_std}")
        if self.returns not in RETURNS:
            raise ValueError(f"planner returns={self.returns!r} is not one of {list(RETURNS)}")


class Planner(ABC):
    """Shared machinery: action box, proposals, normalisation, batched scoring, the Gaussian search,
    seeding (see the module docstring).

    Args:
        dynamics: rolls candidates out (``rollout``).
        action_low, action_high: the action box ``[A]`` in the dynamics' units; every candidate and
            the output are clamped to it.
        config: budget and search settings.
        proposer: samples the first candidates (SSR, MPPI), or ``None``.
        device: where the search runs (its noise, means and candidates).
    """

    def __init__(self, dynamics: Dynamics, action_low: Sequence[float], action_high: Sequence[float],
                 config: PlannerConfig | None = None, proposer: Proposer | None = None,
                 device: str | torch.device = "cpu") -> None:
        self.dynamics, self.config, self.proposer = dynamics, config or PlannerConfig(), proposer
        self.low = torch.as_tensor(np.asarray(action_low, dtype=np.float32), device=device)
        self.high = torch.as_tensor(np.asarray(action_high, dtype=np.float32), device=device)
        if self.low.shape != self.high.shape or self.low.dim() != 1 or not bool((self.low < self.high).all()):
            raise ValueError(f"action limits must be two [A] vectors with low < high, got {action_low}, {action_high}")
        self.mid, self.half = (self.high + self.low) / 2, (self.high - self.low) / 2
        proposer_config = getattr(proposer, "config", None)
        self.n_obs_steps = int(getattr(proposer_config, "n_obs_steps", 1))
        """Observations the proposer conditions on."""
        horizon = getattr(proposer_config, "horizon", None)
        self.proposer_horizon = int(horizon) if horizon is not None else None
        self.generator = torch.Generator(device=device).manual_seed(0)
        self.evaluations = 0
        """Chunks rolled out since ``reset``."""
        self._warm: Tensor | None = None

    @property
    def horizon(self) -> int:
        """Steps per planned chunk."""
        longest = int(getattr(self.dynamics, "max_horizon", self.dynamics.horizon))
        h = min(self.config.horizon or longest, longest)
        return h if self.proposer_horizon is None else min(h, self.proposer_horizon)

    def reset(self, seed: int = 0) -> None:
        """Start an episode: reseed the sampling noise, drop any warm start."""
        self.generator.manual_seed(seed)
        self.evaluations = 0
        self._warm = None

    def clamp(self, actions: Tensor) -> Tensor:
        """``actions[..., A]`` clamped to the action box."""
        return torch.maximum(torch.minimum(actions.float(), self.high), self.low)

    def evaluate(self, history: Tensor, objective: Objective, actions: Tensor) -> Tensor:
        """Costs ``[n]`` of ``actions[n, F, A]`` (clamped first) from ``history[h, S]``; NaN costs count as +inf."""
        actions = self.clamp(actions)
        states = self.dynamics.rollout(last_steps(history, self.dynamics.n_obs_steps), actions)  # [K, n, F, S]
        self.evaluations += actions.shape[0]
        return torch.nan_to_num(objective.score(states.float(), actions), nan=float("inf"))

    def plan(self, obs_history: np.ndarray | Tensor, objective: Objective, goal: Mapping[str, Any] | None = None,
             fixed: Tensor | None = None) -> np.ndarray:
        """The chosen chunk ``float32[F, A]`` (within the action box) for ``obs_history[h, S]``.

        Args:
            obs_history: the states the dynamics starts from, latest last (observations, or
                ``LatentDynamics.start``'s latent window).
            objective: scores the imagined futures.
            goal: the plan step, for goal-conditioned proposals.
            fixed: chunks ``[m, F' >= F, A]`` evaluated in every Gaussian round, at rows
                ``1 .. m`` (``m < samples``), e.g. proposals from another model (the latent planners').
        """
        if isinstance(obs_history, Tensor):
            history = obs_history.float().to(self.low.device)
        else:
            history = torch.as_tensor(np.asarray(obs_history, dtype=np.float32), device=self.low.device)
        if history.dim() != 2:
            raise ValueError(f"obs_history must be [h, S] (latest last), got shape {list(history.shape)}")
        if not bool(torch.isfinite(history).all()):
            raise ValueError("obs_history contains NaN or inf: refusing to plan on it")
        with torch.inference_mode():
            chunk = self.clamp(self._search(history, objective, goal, self._normalise_fixed(fixed)))
        if not bool(torch.isfinite(chunk).all()):
            raise ValueError("the planner produced a non-finite chunk: refusing to act on it")
        return chunk.cpu().numpy().astype(np.float32)

    def _normalise_fixed(self, fixed: Tensor | None) -> Tensor | None:
        """``fixed[m, F', A]`` cut to the horizon, clamped and in normalised units."""
        if fixed is None:
            return None
        F, A = self.horizon, len(self.low)
        if fixed.dim() != 3 or fixed.shape[1] < F or fixed.shape[2] != A or len(fixed) >= self.config.samples:
            raise ValueError(f"fixed candidates must have shape [m, F >= {F}, {A}] with m < samples = "
                             f"{self.config.samples}, got {list(fixed.shape)}")
        return (self.clamp(fixed[:, :F].to(self.low.device)) - self.mid) / self.half

    @abstractmethod
    def _search(self, history: Tensor, objective: Objective, goal: Mapping[str, Any] | None,
                fixed: Tensor | None) -> Tensor:
        """The chosen chunk ``[F, A]`` for a checked ``history[h, S]`` (``fixed``: normalised, or ``None``)."""

    def proposals(self, history: Tensor, goal: Mapping[str, Any] | None) -> Tensor:
        """``actions[samples, F, A]`` from the proposer (clamped), cut to the plan horizon."""
        c = self.config
        hist = last_steps(history, self.n_obs_steps)
        n_goal = round(c.samples * c.goal_fraction) if c.use_goal and goal is not None else 0
        parts = [self.proposer.propose(hist, n, g, self.generator, c.num_inference_steps)
                 for n, g in ((n_goal, goal), (c.samples - n_goal, None)) if n > 0]
        return self.clamp(torch.cat([torch.as_tensor(p) for p in parts])[:, : self.horizon])

    def _prior_search(self, history: Tensor, objective: Objective, fixed: Tensor | None, weighted: bool) -> Tensor:
        """``iterations`` Gaussian rounds from the prior: the centre of the box, or with ``warm_start``
        the previous plan's final mean shifted by ``action_steps`` (last step repeated); std ``init_std``."""
        c = self.config
        F, A, m = self.horizon, len(self.low), c.action_steps
        if self._warm is None:
            mean = torch.zeros(F, A, device=self.low.device)
        else:
            mean = torch.cat([self._warm[m:], self._warm[-1:].expand(min(m, F), -1)])[:F]
        std = torch.full((F, A), c.init_std, device=self.low.device)
        chunk, last_mean = self._refine(history, objective, None, mean, std, c.iterations, weighted, fixed)
        self._warm = last_mean if c.warm_start else None
        return chunk

    def _refine(self, history: Tensor, objective: Objective, candidates: Tensor | None, mean: Tensor, std: Tensor,
                rounds: int, weighted: bool, fixed: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Evaluate ``candidates[n, F, A]`` (if any), then ``rounds`` rounds of Gaussian samples around
        the refit ``mean, std[F, A]`` (normalised; row 0 the mean, rows ``1 .. m`` the normalised
        ``fixed[m, F, A]``); returns the chunk (``config.returns``) and the last mean."""
        c = self.config
        best, best_cost = None, float("inf")
        pool, pool_costs = None, None
        for r in range(rounds + (candidates is not None)):
            if r > 0 or candidates is None:
                noise = torch.randn(c.samples, *mean.shape, generator=self.generator, device=self.low.device)
                z = (mean + std * noise).clamp(-1.0, 1.0)
                z[0] = mean
                if fixed is not None:
                    z[1 : 1 + len(fixed)] = fixed
                candidates = self.mid + self.half * z
            costs = self.evaluate(history, objective, candidates)
            i = int(torch.argmin(costs))
            if float(costs[i]) < best_cost or best is None:
                best, best_cost = self.clamp(candidates[i]), float(costs[i])
            z = (self.clamp(candidates) - self.mid) / self.half
            if pool is not None and c.carry_elites:
                z, costs = torch.cat([z, pool]), torch.cat([costs, pool_costs])
            pool_costs, idx = torch.topk(costs, min(c.elites, len(costs)), largest=False)
            pool = z[idx]
            mean, std = refit(pool, pool_costs, c.min_std, c.temperature if weighted else None)
        assert best is not None
        return (self.mid + self.half * mean if c.returns == "mean" else best), mean


class SSRPlanner(Planner):
    """D-MPC's sample-score-rank: ``samples`` proposals, one rollout each, the lowest cost."""

    def __init__(self, proposer: Proposer, dynamics: Dynamics, action_low: Sequence[float],
                 action_high: Sequence[float], config: PlannerConfig | None = None,
                 device: str | torch.device = "cpu") -> None:
        super().__init__(dynamics, action_low, action_high, config, proposer, device)

    def _search(self, history: Tensor, objective: Objective, goal: Mapping[str, Any] | None,
                fixed: Tensor | None) -> Tensor:
        candidates = self.proposals(history, goal)
        costs = self.evaluate(history, objective, candidates)
        return candidates[int(torch.argmin(costs))]


class MPPIPlanner(Planner):
    """SSR's proposals as the first MPPI population, then ``iterations`` rounds of MPPI refinement;
    without a proposer, ``iterations`` MPPI rounds from the Gaussian prior (as CEM)."""

    def __init__(self, proposer: Proposer | None, dynamics: Dynamics, action_low: Sequence[float],
                 action_high: Sequence[float], config: PlannerConfig | None = None,
                 device: str | torch.device = "cpu") -> None:
        super().__init__(dynamics, action_low, action_high, config, proposer, device)
        if proposer is None and self.config.iterations < 1:
            raise ValueError("MPPI without a proposer needs iterations >= 1")

    def _search(self, history: Tensor, objective: Objective, goal: Mapping[str, Any] | None,
                fixed: Tensor | None) -> Tensor:
        if self.proposer is None:
            return self._prior_search(history, objective, fixed, weighted=True)
        candidates = self.proposals(history, goal)
        zeros = torch.zeros(candidates.shape[1:], device=self.low.device)
        chunk, _ = self._refine(history, objective, candidates, zeros, zeros, self.config.iterations, True, fixed)
        return chunk


class CEMPlanner(Planner):
    """Cross-entropy method with a Gaussian prior and no proposer (the baseline).

    The prior mean is the centre of the action box at an episode's first plan, then (with
    ``warm_start``) the previous plan's final mean shifted by ``action_steps`` (last step
    repeated); the prior std is ``init_std``.
    """

    def __init__(self, dynamics: Dynamics, action_low: Sequence[float], action_high: Sequence[float],
                 config: PlannerConfig | None = None, device: str | torch.device = "cpu") -> None:
        super().__init__(dynamics, action_low, action_high, config, device=device)
        if self.config.iterations < 1:
            raise ValueError("CEM needs iterations >= 1")

    def _search(self, history: Tensor, objective: Objective, goal: Mapping[str, Any] | None,
                fixed: Tensor | None) -> Tensor:
        return self._prior_search(history, objective, fixed, weighted=False)
