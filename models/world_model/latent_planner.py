"""Planning in the world model's latent space: LeWM's CEM and MPPI toward a goal, and an MPC policy.

``LatentCEM`` and ``LatentMPPI`` are the control planners (``models.control.planners``: ``CEMPlanner``,
``MPPIPlanner`` without a proposer) over ``LatentDynamics``, configured as LeWorldModel plans: in
the model's normalised action-block space, refit on each round's own samples
(``carry_elites=False``), returning the final mean (``returns="mean"``), no warm start. The
defaults follow LeWM: 300 samples, 30 elites, 10 iterations (30 for Push-T), a horizon of 5
action blocks (25 env steps at frameskip 5), initial std 1 in normalised action units, cost
``||z_H - z_goal||^2`` on the final predicted embedding (``GoalObjective``); sample 0 of every
iteration is the current mean (as stable-worldmodel's ``CEMSolver``). A plan-step objective
(reach a point, push a block to a region) is scored through the linear probe
(``ProbeObjective``), so the same planner serves the LLM planner's goals.

``sampler=WaypointSampler(...)`` (``action_sampler``) replaces the per-step box sampling with what
the training data contains: one step displacement per block around the pusher, drawn from the data's
step distribution, linear within a block (issue #18: the box samples jump tens of centimetres per step and the
model cannot rank them). The planners then search and refit those parameters (initial std ``1 /
sampler.param_box`` normalised, i.e. ``p ~ N(0, 1)``), return the lowest-cost chunk they evaluated
(``returns="best"``), and ``plan`` needs the anchor: the pusher's position, read from a state
observation, or passed (``anchor=``) for a pixel model.

Everything runs batched under ``torch.inference_mode``; the cost is the predictor's matrix
products (``samples * iterations * horizon`` rows of 300-row products). On a 2-core CPU run them
on onnxruntime with 2 threads (``backend="onnx"``, 72 ms per plan at the default budget on a
Xeon, ``BENCHMARKS.md``); in torch one thread is faster than two there (141 vs 254 ms: small
products do not pay for waking a second OpenMP thread), and on a CPU shared with other jobs start
Python with ``OMP_WAIT_POLICY=PASSIVE`` (spinning OpenMP threads otherwise make 2 threads far
slower than 1).

Example::

    model = LatentWorldModel.from_pretrained("models/pretrained/wm-pushblocks-state")
    planner = LatentCEM(model)
    actions = planner.plan(obs, goal=goal_obs)        # float32[25, 2], env units
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from forethought.models.control.objectives import Objective
from forethought.models.control.planners import CEMPlanner, MPPIPlanner, Planner, PlannerConfig
from forethought.models.world_model.action_sampler import WaypointDynamics, WaypointSampler
from forethought.models.world_model.configuration_world_model import DEFAULT_HORIZON
from forethought.models.world_model.latent_dynamics import LatentDynamics, LatentEnsembleDynamics
from forethought.models.world_model.latent_objectives import GOAL_COSTS, ProbeObjective, goal_objective
from forethought.models.world_model.modeling_world_model import LatentWorldModel
from forethought.models.world_model.probe import LinearProbe
from forethought.sim import scene


class LatentCEM:
    """Cross-entropy method over action blocks in latent space: ``CEMPlanner`` over ``LatentDynamics``.

    Args:
        model: a trained ``LatentWorldModel`` (put in eval mode here).
        samples, elites, iterations: CEM budget; ``samples * iterations * horizon`` predictor calls.
        horizon: action blocks per plan (``horizon * frameskip`` env actions).
        init_std, min_std: std of the first sampling distribution and the floor of later ones,
            in normalised action units ([-1, 1] spans the action box, or with ``sampler`` the
            parameter box); ``init_std=None``: 1 (box) or ``1 / sampler.param_box`` (the ``N(0, 1)`` prior).
        terminal_only: a goal observation is scored on the final block only (``GoalObjective``).
        seed: seeds the sampling noise (a plan is reproducible for a given seed and call order).
        backend: ``"torch"``, or ``"onnx"`` to run the rollouts on onnxruntime (after
            ``model.load_onnx(FILE)``; the file's horizon must equal ``horizon``).
        sampler: ``None`` (LeWM: every step's action in the box), or a ``WaypointSampler``
            (smooth block deltas around the pusher; module docstring).
        goal_cost: how a goal observation is scored (``GOAL_COSTS``): ``"latent"`` (LeWM),
            ``"blocks"`` (the probed blocks' distance, ``BlockGoalObjective``; needs ``probe``) or
            ``"push"`` (that plus the push shaping; needs ``probe``).
        probe: the model folder's ``LinearProbe``.
        warm_start: start each plan's search from the previous plan's final mean shifted by
            ``shift_blocks`` (the blocks executed in between), as the control planners do; ``False``
            (LeWM): from the prior at every plan. ``reset`` drops it.
        shift_blocks: blocks executed between two plans (the warm start's and ``carry_plan``'s shift).
        carry_plan: with a ``sampler``, the previous plan's chosen parameters, shifted by
            ``shift_blocks`` (the freed blocks hold: ``p = 0``, the data's median step), are a
            candidate in every round, so a replan keeps the plan it is executing unless it finds a
            better one. ``reset`` drops it.
        ensemble: more world models trained like ``model`` (other seeds): every candidate is rolled
            out through all of them (``LatentEnsembleDynamics``, ``[M, n, K, D]``), for a plan-step
            objective with a probe per member (``ProbeObjective``); a goal observation needs one model.
    """

    def __init__(self, model: LatentWorldModel, samples: int = 300, elites: int = 30, iterations: int = 10,
                 horizon: int = DEFAULT_HORIZON, init_std: float | None = None, min_std: float = 0.05,
                 terminal_only: bool = True, seed: int = 0, backend: str = "torch",
                 sampler: WaypointSampler | None = None, goal_cost: str = "latent",
                 probe: LinearProbe | None = None, warm_start: bool = False, shift_blocks: int = 1,
                 carry_plan: bool = False, ensemble: Sequence[LatentWorldModel] = ()) -> None:
        if goal_cost not in GOAL_COSTS or (goal_cost != "latent" and probe is None):
            raise ValueError(f"goal_cost must be one of {list(GOAL_COSTS)} (all but 'latent' with a probe), "
                             f"got {goal_cost!r}")
        if init_std is None:
            init_std = 1.0 if sampler is None else 1.0 / sampler.param_box
        config = PlannerConfig(samples=samples, elites=elites, iterations=iterations, horizon=horizon,
                               init_std=init_std, min_std=min_std, carry_elites=False,
                               returns="mean" if sampler is None else "best", warm_start=warm_start,
                               action_steps=shift_blocks)
        if elites > samples:
            raise ValueError(f"elites ({elites}) must be <= samples ({samples})")
        members = [LatentDynamics(m, horizon, backend) for m in (model, *ensemble)]
        self.latent: LatentDynamics | LatentEnsembleDynamics = (
            members[0] if len(members) == 1 else LatentEnsembleDynamics(members))
        self.model, self.horizon, self.backend = self.latent.model, horizon, backend
        self.terminal_only, self.sampler, self.goal_cost, self.probe = terminal_only, sampler, goal_cost, probe
        self.dynamics: LatentDynamics | WaypointDynamics = self.latent
        if sampler is None:
            high = np.ones(self.model.config.block_dim, np.float32)  # normalised blocks span [-1, 1]
            low = -high
        else:
            c = self.model.config
            if (sampler.frameskip, sampler.action_dim) != (c.frameskip, c.action_dim):
                raise ValueError(f"the sampler's frameskip {sampler.frameskip} and action width {sampler.action_dim} "
                                 f"must match the model's ({c.frameskip}, {c.action_dim})")
            self.dynamics = WaypointDynamics(self.latent, sampler, self.model.action_blocks, horizon)
            low, high = sampler.box()
        if carry_plan and sampler is None:
            raise ValueError("carry_plan shifts waypoint parameters: pass a sampler")
        self.carry_plan, self.shift_blocks = carry_plan, shift_blocks
        self._last_params: Tensor | None = None  # [K, A], the previous plan's chosen parameters
        self.planner = self._build_planner(config, low, high, self.model.processor.action_low.device)
        self.planner.reset(seed)

    def _build_planner(self, config: PlannerConfig, low: np.ndarray, high: np.ndarray, device: torch.device
                       ) -> Planner:
        """The control planner that runs the search over the box ``[low, high]``."""
        return CEMPlanner(self.dynamics, low, high, config, device=device)

    def reset(self, seed: int) -> None:
        """Reseed the sampling noise; forget the previous plan."""
        self.planner.reset(seed)
        self._last_params = None

    @torch.inference_mode()
    def plan(self, obs: Any, goal: Any = None, objective: Objective | None = None, proposals: Any = None,
             anchor: Any = None) -> np.ndarray:
        """Actions ``float32[horizon * frameskip, A]`` (env units) that drive ``obs`` toward the goal.

        Args:
            obs: the current observation ``[*obs_shape]`` or a history ``[h, *obs_shape]``.
            goal: a goal observation ``[*obs_shape]`` (a rendered goal image or a goal state),
                scored under ``goal_cost``.
            objective: instead of ``goal``, any objective over latents ``z[..., K, D]`` (e.g.
                ``ProbeObjective``).
            proposals: optional env-unit action chunks ``[m, F, A]`` (``F >= horizon * frameskip``,
                e.g. diffusion proposals) evaluated as candidates in every iteration (box sampler only).
            anchor: with a ``sampler``, where the waypoints start ``[A]`` (env units): default the
                pusher's position in a state observation (required for a pixel model).
        """
        if (goal is None) == (objective is None):
            raise ValueError("pass exactly one of goal (an observation) and objective")
        if objective is None:
            if isinstance(self.latent, LatentEnsembleDynamics):
                raise ValueError("an ensemble scores plan-step objectives (ProbeObjective, a probe per member): "
                                 "plan toward a goal observation with one model")
            objective = goal_objective(self.model, goal, self.goal_cost, self.probe, self.terminal_only)
        c = self.model.config
        state = self.latent.start(obs)  # [history, D + 1]
        if isinstance(self.dynamics, WaypointDynamics):
            if proposals is not None:
                raise ValueError("proposals are chunks of env actions: the waypoint sampler searches block deltas")
            self.dynamics.anchor = self._anchor(obs, anchor)
            params = torch.from_numpy(self.planner.plan(state, objective, fixed=self._carried())).to(state.device)
            if self.carry_plan:
                self._last_params = params  # [K, A]
            return self.dynamics.actions(params[None])[0].cpu().numpy().astype(np.float32)
        blocks = self.planner.plan(state, objective, fixed=self._proposal_blocks(proposals))  # [K, Bd]
        actions = torch.from_numpy(blocks).to(state.device).reshape(self.horizon * c.frameskip, c.action_dim)
        return self.model.processor.unnormalize_actions(actions).cpu().numpy().astype(np.float32)

    def _carried(self) -> Tensor | None:
        """The previous plan's parameters shifted by ``shift_blocks``, freed blocks holding: ``[1, K, A]``."""
        if self._last_params is None:
            return None
        last, k = self._last_params, min(self.shift_blocks, len(self._last_params))
        return torch.cat([last[k:], torch.zeros_like(last[:k])])[None]

    def _anchor(self, obs: Any, anchor: Any) -> np.ndarray:
        """The waypoints' start ``[A]``: ``anchor``, or the pusher's position in the (latest) state observation."""
        if anchor is not None:
            return np.asarray(anchor, np.float32).reshape(-1)
        c = self.model.config
        if c.obs_type != "state" or c.obs_dim != scene.OBS_DIM:
            raise ValueError("the waypoint sampler needs anchor= (the pusher's position) for a model whose observation "
                             "is not a PushBlocks state")
        return np.asarray(obs, np.float32).reshape(-1, c.obs_dim)[-1, scene.PUSHER_POS]

    def _proposal_blocks(self, proposals: Any) -> Tensor | None:
        """Env-unit ``proposals[m, F, A]`` -> normalised blocks ``[m, horizon, frameskip * A]``."""
        if proposals is None:
            return None
        c = self.model.config
        p = torch.as_tensor(np.asarray(proposals) if not isinstance(proposals, Tensor) else proposals)
        need = self.horizon * c.frameskip
        if p.dim() != 3 or p.shape[1] < need or p.shape[2] != c.action_dim:
            raise ValueError(f"proposals must have shape [m, F >= {need}, {c.action_dim}], got {list(p.shape)}")
        if len(p) > self.planner.config.samples - 1:
            raise ValueError(f"at most samples - 1 = {self.planner.config.samples - 1} proposals fit, got {len(p)}")
        return self.model.action_blocks(p[:, :need])


class LatentMPPI(LatentCEM):
    """MPPI (TD-MPC2 style): ``MPPIPlanner`` without a proposer over ``LatentDynamics``; the new mean
    and std are the elites' averages weighted by ``exp(-cost / temperature)``.

    ``temperature`` is in units of the cost's spread among the elites (the cost is divided by the
    elites' cost range first), so the same value works for any goal distance.
    """

    def __init__(self, model: LatentWorldModel, temperature: float = 0.5, **kwargs: Any) -> None:
        self.temperature = temperature
        super().__init__(model, **kwargs)

    def _build_planner(self, config: PlannerConfig, low: np.ndarray, high: np.ndarray, device: torch.device
                       ) -> Planner:
        return MPPIPlanner(None, self.dynamics, low, high, replace(config, temperature=self.temperature), device=device)


class LatentPlanPolicy:
    """Model-predictive control with a latent planner: plan, execute ``execute_blocks`` blocks, replan.

    The goal is either a goal observation (``set_goal_observation``, the LeWM protocol) or the
    plan step passed to ``act`` (scored through ``probe``: one per member of an ensemble planner,
    whose spread weighs ``beta``; ``margin``: how far inside the success boundary it aims, as
    ``TaskObjective``'s). ``act(obs, task)`` follows the ``forethought.sim.render.Policy``
    protocol; ``replan_ms`` lists the wall time of every plan (ms).
    """

    def __init__(self, planner: LatentCEM, probe: LinearProbe | Sequence[LinearProbe] | None = None,
                 execute_blocks: int = 1, beta: float = 0.0, margin: float | None = None) -> None:
        if not 1 <= execute_blocks <= planner.horizon:
            raise ValueError(f"execute_blocks must lie in 1..horizon = {planner.horizon}, got {execute_blocks}")
        if probe is not None:
            members = len(getattr(planner.latent, "members", [planner.latent]))
            if (1 if isinstance(probe, LinearProbe) else len(probe)) != members:
                raise ValueError(f"the planner rolls out {members} member(s): pass one probe per member")
        self.planner, self.probe, self.beta, self.margin = planner, probe, beta, margin
        self.execute = execute_blocks * planner.model.config.frameskip
        self.goal_obs: np.ndarray | None = None
        self._queue: deque[np.ndarray] = deque()
        self.replan_ms: list[float] = []

    def reset(self) -> None:
        """Drop the queued actions (call at episode start)."""
        self._queue.clear()

    def set_goal_observation(self, goal: np.ndarray | None) -> None:
        """Plan toward this observation's embedding (``None``: use the task passed to ``act``)."""
        self.goal_obs = None if goal is None else np.asarray(goal)
        self._queue.clear()

    def act(self, obs: np.ndarray, task: Mapping[str, Any] | None = None, anchor: Any = None) -> np.ndarray:
        """The next env action ``float32[A]`` (``anchor``: the pusher's position for a waypoint
        sampler on a pixel model, see ``LatentCEM.plan``)."""
        if not self._queue:
            self._queue.extend(self.plan_chunk(obs, task, anchor))
        return self._queue.popleft()

    def plan_chunk(self, obs: np.ndarray, task: Mapping[str, Any] | None = None, anchor: Any = None) -> np.ndarray:
        """A fresh plan's first ``execute_blocks`` blocks: ``float32[execute_blocks * frameskip, A]``."""
        t0 = time.perf_counter()
        if self.goal_obs is not None:
            plan = self.planner.plan(obs, goal=self.goal_obs, anchor=anchor)
        else:
            if self.probe is None or task is None:
                raise ValueError("LatentPlanPolicy needs a goal observation (set_goal_observation) or a task "
                                 "and a probe (load the model folder's probe.safetensors)")
            if self.planner.model.config.obs_type != "state":
                raise ValueError("a plan-step task needs the task state to read its targets from: give a pixel "
                                 "model a goal observation instead")
            last = np.asarray(obs, np.float32).reshape(-1, self.planner.model.config.obs_dim)[-1]
            objective = ProbeObjective(self.probe, task, last, self.planner.latent.encode(last), self.beta,
                                       self.margin)
            plan = self.planner.plan(obs, objective=objective)
        self.replan_ms.append((time.perf_counter() - t0) * 1e3)
        return plan[: self.execute]
