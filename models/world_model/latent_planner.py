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

from collections import deque
from dataclasses import replace
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from forethought.models.control.objectives import Objective
from forethought.models.control.planners import CEMPlanner, MPPIPlanner, Planner, PlannerConfig
from forethought.models.world_model.configuration_world_model import DEFAULT_HORIZON
from forethought.models.world_model.latent_dynamics import LatentDynamics
from forethought.models.world_model.latent_objectives import GoalObjective, ProbeObjective
from forethought.models.world_model.modeling_world_model import LatentWorldModel
from forethought.models.world_model.probe import LinearProbe


class LatentCEM:
    """Cross-entropy method over action blocks in latent space: ``CEMPlanner`` over ``LatentDynamics``.

    Args:
        model: a trained ``LatentWorldModel`` (put in eval mode here).
        samples, elites, iterations: CEM budget; ``samples * iterations * horizon`` predictor calls.
        horizon: action blocks per plan (``horizon * frameskip`` env actions).
        init_std, min_std: std of the first sampling distribution and the floor of later ones,
            in normalised action units ([-1, 1] spans the action box).
        terminal_only: a goal observation is scored on the final block only (``GoalObjective``).
        seed: seeds the sampling noise (a plan is reproducible for a given seed and call order).
        backend: ``"torch"``, or ``"onnx"`` to run the rollouts on onnxruntime (after
            ``model.load_onnx(FILE)``; the file's horizon must equal ``horizon``).
    """

    def __init__(self, model: LatentWorldModel, samples: int = 300, elites: int = 30, iterations: int = 10,
                 horizon: int = DEFAULT_HORIZON, init_std: float = 1.0, min_std: float = 0.05,
                 terminal_only: bool = True, seed: int = 0, backend: str = "torch") -> None:
        config = PlannerConfig(samples=samples, elites=elites, iterations=iterations, horizon=horizon,
                               init_std=init_std, min_std=min_std, carry_elites=False, returns="mean",
                               warm_start=False)
        if elites > samples:
            raise ValueError(f"elites ({elites}) must be <= samples ({samples})")
        self.dynamics = LatentDynamics(model, horizon, backend)
        self.model, self.horizon, self.backend = self.dynamics.model, horizon, backend
        self.terminal_only = terminal_only
        box = np.ones(self.model.config.block_dim, np.float32)  # normalised blocks span [-1, 1]
        self.planner = self._build_planner(config, box, self.model.processor.action_low.device)
        self.planner.reset(seed)

    def _build_planner(self, config: PlannerConfig, box: np.ndarray, device: torch.device) -> Planner:
        """The control planner that runs the search over the action box ``[-box, box]``."""
        return CEMPlanner(self.dynamics, -box, box, config, device=device)

    def reset(self, seed: int) -> None:
        """Reseed the sampling noise."""
        self.planner.reset(seed)

    @torch.inference_mode()
    def plan(self, obs: Any, goal: Any = None, objective: Objective | None = None, proposals: Any = None
             ) -> np.ndarray:
        """Actions ``float32[horizon * frameskip, A]`` (env units) that drive ``obs`` toward the goal.

        Args:
            obs: the current observation ``[*obs_shape]`` or a history ``[h, *obs_shape]``.
            goal: a goal observation ``[*obs_shape]`` (a rendered goal image or a goal state),
                scored by ``GoalObjective``.
            objective: instead of ``goal``, any objective over latents ``z[..., K, D]`` (e.g.
                ``ProbeObjective``).
            proposals: optional env-unit action chunks ``[m, F, A]`` (``F >= horizon * frameskip``,
                e.g. diffusion proposals) evaluated as candidates in every iteration.
        """
        if (goal is None) == (objective is None):
            raise ValueError("pass exactly one of goal (an observation) and objective")
        if objective is None:
            objective = GoalObjective.from_observation(self.model, goal, self.terminal_only)
        c = self.model.config
        state = self.dynamics.start(obs)  # [history, D + 1]
        blocks = self.planner.plan(state, objective, fixed=self._proposal_blocks(proposals))  # [K, Bd]
        actions = torch.from_numpy(blocks).to(state.device).reshape(self.horizon * c.frameskip, c.action_dim)
        return self.model.processor.unnormalize_actions(actions).cpu().numpy().astype(np.float32)

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

    def _build_planner(self, config: PlannerConfig, box: np.ndarray, device: torch.device) -> Planner:
        return MPPIPlanner(None, self.dynamics, -box, box, replace(config, temperature=self.temperature), device=device)


class LatentPlanPolicy:
    """Model-predictive control with a latent planner: plan, execute ``execute_blocks`` blocks, replan.

    The goal is either a goal observation (``set_goal_observation``, the LeWM protocol) or the
    plan step passed to ``act`` (scored through ``probe``). ``act(obs, task)`` follows the
    ``forethought.sim.render.Policy`` protocol.
    """

    def __init__(self, planner: LatentCEM, probe: LinearProbe | None = None, execute_blocks: int = 1) -> None:
        if not 1 <= execute_blocks <= planner.horizon:
            raise ValueError(f"execute_blocks must lie in 1..horizon = {planner.horizon}, got {execute_blocks}")
        self.planner, self.probe = planner, probe
        self.execute = execute_blocks * planner.model.config.frameskip
        self.goal_obs: np.ndarray | None = None
        self._queue: deque[np.ndarray] = deque()

    def reset(self) -> None:
        """Drop the queued actions (call at episode start)."""
        self._queue.clear()

    def set_goal_observation(self, goal: np.ndarray | None) -> None:
        """Plan toward this observation's embedding (``None``: use the task passed to ``act``)."""
        self.goal_obs = None if goal is None else np.asarray(goal)
        self._queue.clear()

    def act(self, obs: np.ndarray, task: Mapping[str, Any] | None = None) -> np.ndarray:
        """The next env action ``float32[A]``."""
        if not self._queue:
            if self.goal_obs is not None:
                plan = self.planner.plan(obs, goal=self.goal_obs)
            else:
                if self.probe is None or task is None:
                    raise ValueError("LatentPlanPolicy needs a goal observation (set_goal_observation) or a task "
                                     "and a probe (load the model folder's probe.safetensors)")
                if self.planner.model.config.obs_type != "state":
                    raise ValueError("a plan-step task needs the task state to read its targets from: give a pixel "
                                     "model a goal observation instead")
                plan = self.planner.plan(obs, objective=ProbeObjective(self.probe, task, obs))
            self._queue.extend(plan[: self.execute])
        return self._queue.popleft()
