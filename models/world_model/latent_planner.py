"""Planning in the world model's latent space: CEM and MPPI toward a goal embedding, and an MPC policy.

Defaults follow LeWorldModel: 300 samples, 30 elites, 10 iterations (30 for Push-T), a horizon of
5 action blocks (25 env steps at frameskip 5), initial std 1 in normalised action units, cost
``||z_H - z_goal||^2`` on the final predicted embedding; sample 0 of every iteration is the
current mean (as stable-worldmodel's ``CEMSolver``). Everything runs batched under
``torch.inference_mode``; the cost is the predictor's matrix products (``samples * iterations *
horizon`` rows of 300-row products). On a 2-core CPU run them on onnxruntime with 2 threads
(``backend="onnx"``, 72 ms per plan at the default budget on a Xeon, ``BENCHMARKS.md``); in
torch one thread is faster than two there (141 vs 254 ms: small products do not pay for waking a
second OpenMP thread), and on a CPU shared with other jobs start Python with
``OMP_WAIT_POLICY=PASSIVE`` (spinning OpenMP threads otherwise make 2 threads far slower than 1).

Example::

    model = LatentWorldModel.from_pretrained("models/pretrained/wm-pushblocks-state")
    planner = LatentCEM(model)
    actions = planner.plan(obs, goal=goal_obs)        # float32[25, 2], env units

A plan-step objective (reach a point, push a block to a region) is scored on the latents through
the linear probe (``probe_objective``), so the same planner serves the LLM planner's goals.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor

from forethought.models.world_model.configuration_world_model import DEFAULT_HORIZON
from forethought.models.world_model.modeling_world_model import LatentWorldModel
from forethought.models.world_model.onnx_rollout import EXPORT_HINT
from forethought.models.world_model.probe import LinearProbe
from forethought.sim import scene

BACKENDS = ("torch", "onnx")
"""Who runs a plan's rollouts: torch, or onnxruntime (``LatentWorldModel.load_onnx``)."""
CostFn = Callable[[Tensor], Tensor]
"""``cost(z[n, K, D]) -> [n]``: lower is better; ``z[:, k]`` is the embedding after block ``k``."""


class LatentCEM:
    """Cross-entropy method over action blocks in latent space.

    Args:
        model: a trained ``LatentWorldModel`` (put in eval mode here).
        samples, elites, iterations: CEM budget; ``samples * iterations * horizon`` predictor calls.
        horizon: action blocks per plan (``horizon * frameskip`` env actions).
        init_std, min_std: std of the first sampling distribution and the floor of later ones,
            in normalised action units ([-1, 1] spans the action box).
        terminal_only: a goal observation is scored on the final block only (LeWM, which
            executes the whole plan); ``False`` averages the distance over all blocks, which
            suits replanning every block (a terminal cost then never hurries).
        seed: seeds the sampling noise (a plan is reproducible for a given seed and call order).
        backend: ``"torch"``, or ``"onnx"`` to run the rollouts on onnxruntime (after
            ``model.load_onnx(FILE)``; the file's horizon must equal ``horizon``).
    """

    def __init__(
        self,
        model: LatentWorldModel,
        samples: int = 300,
        elites: int = 30,
        iterations: int = 10,
        horizon: int = DEFAULT_HORIZON,
        init_std: float = 1.0,
        min_std: float = 0.05,
        terminal_only: bool = True,
        seed: int = 0,
        backend: str = "torch",
    ) -> None:
        for name, v in (("samples", samples), ("elites", elites), ("iterations", iterations), ("horizon", horizon)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if elites > samples:
            raise ValueError(f"elites ({elites}) must be <= samples ({samples})")
        if not (init_std > 0 and 0 <= min_std <= init_std):
            raise ValueError(f"need init_std > 0 and 0 <= min_std <= init_std, got {init_std}, {min_std}")
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r} is not one of {list(BACKENDS)}")
        if backend == "onnx":
            if model.onnx_rollout is None:
                raise ValueError("backend 'onnx' needs an exported rollout: call model.load_onnx(FILE) first "
                                 f"(export one with {EXPORT_HINT})")
            if model.onnx_rollout.horizon != horizon:
                raise ValueError(f"the attached ONNX rollout was exported for a horizon of "
                                 f"{model.onnx_rollout.horizon} blocks, the planner's is {horizon}")
            model.onnx_rollout.check_matches(model)  # the weights may have changed since load_onnx
        self.backend = backend
        self.model = model.eval()
        self.samples, self.elites, self.iterations, self.horizon = samples, elites, iterations, horizon
        self.init_std, self.min_std = float(init_std), float(min_std)
        self.terminal_only = terminal_only
        self.generator = torch.Generator(device=model.processor.action_low.device).manual_seed(seed)

    def _refit(self, candidates: Tensor, costs: Tensor) -> tuple[Tensor, Tensor]:
        """New ``(mean, std)`` ``[K, block_dim]`` from ``candidates[n, K, block_dim]`` and their ``costs[n]``."""
        elite = candidates[torch.topk(costs, self.elites, largest=False).indices]
        return elite.mean(0), elite.std(0, unbiased=False)

    @torch.inference_mode()
    def plan(
        self,
        obs: Any,
        goal: Any = None,
        cost_fn: CostFn | None = None,
        proposals: Any = None,
    ) -> np.ndarray:
        """Actions ``float32[horizon * frameskip, A]`` (env units) that drive ``obs`` toward the goal.

        Args:
            obs: the current observation ``[*obs_shape]`` or a history ``[h, *obs_shape]``.
            goal: a goal observation ``[*obs_shape]`` (a rendered goal image or a goal state):
                cost = squared distance of the final predicted embedding to its embedding.
            cost_fn: instead of ``goal``, any ``cost(z[n, K, D]) -> [n]`` (e.g. ``probe_objective``).
            proposals: optional env-unit action chunks ``[m, F, A]`` (``F >= horizon * frameskip``,
                e.g. diffusion proposals) evaluated as candidates in every iteration.
        """
        cost_fn = self._cost(goal, cost_fn)
        model, c = self.model, self.model.config
        x = model.processor.check_obs(obs)
        if x.dim() == len(c.obs_shape):
            x = x.unsqueeze(0)
        z0 = model.embed(model.processor.normalize_obs(x))[-c.history:]  # [h, D]
        fixed = self._proposal_blocks(proposals)
        K, Bd = self.horizon, c.block_dim
        window, present = model.pad_history(z0.unsqueeze(0).expand(self.samples, -1, -1))
        rollout = model.onnx_rollout if self.backend == "onnx" else model.rollout_window
        mean = torch.zeros(K, Bd, device=z0.device)
        std = torch.full((K, Bd), self.init_std, device=z0.device)
        for _ in range(self.iterations):
            noise = torch.randn(self.samples, K, Bd, generator=self.generator, device=z0.device)
            candidates = (mean + std * noise).clamp(-1.0, 1.0)
            candidates[0] = mean
            if fixed is not None:
                candidates[1:1 + len(fixed)] = fixed
            z = rollout(window, present, candidates)
            mean, std = self._refit(candidates, cost_fn(z))
            std = std.clamp_min(self.min_std)
        actions = mean.reshape(K * c.frameskip, c.action_dim)
        return model.processor.unnormalize_actions(actions).cpu().numpy().astype(np.float32)

    def _cost(self, goal: Any, cost_fn: CostFn | None) -> CostFn:
        if (goal is None) == (cost_fn is None):
            raise ValueError("pass exactly one of goal (an observation) and cost_fn")
        if cost_fn is not None:
            return cost_fn
        z_goal = self.model.encode(self.model.processor.check_obs(goal, "goal"))
        if z_goal.dim() != 1:
            raise ValueError(f"goal must be one observation {list(self.model.config.obs_shape)}, got a batch")
        if self.terminal_only:
            return lambda z: (z[:, -1] - z_goal).square().sum(-1)
        return lambda z: (z - z_goal).square().sum(-1).mean(-1)

    def _proposal_blocks(self, proposals: Any) -> Tensor | None:
        if proposals is None:
            return None
        c = self.model.config
        p = torch.as_tensor(np.asarray(proposals) if not isinstance(proposals, Tensor) else proposals)
        need = self.horizon * c.frameskip
        if p.dim() != 3 or p.shape[1] < need or p.shape[2] != c.action_dim:
            raise ValueError(f"proposals must have shape [m, F >= {need}, {c.action_dim}], got {list(p.shape)}")
        if len(p) > self.samples - 1:
            raise ValueError(f"at most samples - 1 = {self.samples - 1} proposals fit, got {len(p)}")
        return self.model.action_blocks(p[:, :need])


class LatentMPPI(LatentCEM):
    """MPPI (TD-MPC2 style): the new mean and std are the elites' averages weighted by ``exp(-cost / temperature)``.

    ``temperature`` is in units of the cost's spread among the elites (the cost is divided by the
    elites' cost range first), so the same value works for any goal distance.
    """

    def __init__(self, model: LatentWorldModel, temperature: float = 0.5, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def _refit(self, candidates: Tensor, costs: Tensor) -> tuple[Tensor, Tensor]:
        elite_costs, idx = torch.topk(costs, self.elites, largest=False)
        elite = candidates[idx]
        spread = (elite_costs[-1] - elite_costs[0]).clamp_min(1e-9)
        w = torch.softmax(-(elite_costs - elite_costs[0]) / (spread * self.temperature), dim=0)[:, None, None]
        mean = (w * elite).sum(0)
        return mean, ((w * (elite - mean).square()).sum(0)).sqrt()


def probe_objective(probe: LinearProbe, task: Mapping[str, Any], obs: np.ndarray) -> CostFn:
    """A latent cost for a PushBlocks plan step, read through the linear probe.

    reach: distance of the probed pusher to the target, averaged over the blocks (so a replanning
    policy hurries); push: the probed block's distance to the target, at the final block plus
    averaged over the blocks, plus half the final pusher-to-block distance (to bring the pusher to
    the block).
    """
    step = scene.validate_step(task, scene.present_blocks(np.asarray(obs)))
    target = torch.as_tensor(scene.target_xy(step, obs), dtype=torch.float32)
    px = scene.PUSHER_POS
    if step["skill"] == "reach":
        return lambda z: (probe(z)[..., px] - target).norm(dim=-1).mean(-1)
    s = scene.block_slice(step["object"]).start
    bxy = slice(s + 1, s + 3)

    def cost(z: Tensor) -> Tensor:
        states = probe(z)  # [n, K, S]
        block, pusher = states[..., bxy], states[..., px]
        return ((block[:, -1] - target).norm(dim=-1) + 0.5 * (pusher[:, -1] - block[:, -1]).norm(dim=-1)
                + (block - target).norm(dim=-1).mean(-1))

    return cost


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
                plan = self.planner.plan(obs, cost_fn=probe_objective(self.probe, task, obs))
            self._queue.extend(plan[: self.execute])
        return self._queue.popleft()
