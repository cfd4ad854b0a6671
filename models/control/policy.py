"""``forethought eval --policy dmpc``: D-MPC and its baselines as a harness policy.

The policy keeps the last observations, and whenever its queue of actions is empty it plans a
chunk (``--planner``), queues the first ``action_steps`` (m) actions and replans after them
(``act``). ``plan_chunk`` plans such a chunk on demand and returns it whole: what a controller that
executes chunks asynchronously (``forethought.ros_ws.policy_controller``) commits to. The
objective is built from the episode's plan step (``Objective.from_step``); the wall time of each
replan is kept in ``replan_ms`` (the harness reports its median and p90).

| ``--planner`` | proposals | search | dynamics |
|---|---|---|---|
| ``ssr`` | N = ``samples`` from ``--model``/``--proposer`` | sample, score, rank | ``--dynamics DIR`` |
| ``mppi`` | ``samples`` | + ``iterations`` MPPI rounds | ``--dynamics DIR`` |
| ``cem`` | none (Gaussian prior) | ``iterations`` CEM rounds | ``--dynamics DIR`` |
| ``oracle`` | as ``search`` (default ssr) | as ``search`` | a copy of the live MuJoCo sim |

``--dynamics`` takes a dynamics-ensemble folder, a SIGReg world-model folder (state model: the
latent rollout read back through its probe, ``world_model.latent_dynamics``) or ``oracle``, which
gives any planner the oracle. Default budgets use 64 rollouts per replan:
ssr 64 x 1, mppi 32 x 2, cem 16 x 4.

Example::

    forethought eval --policy dmpc --planner ssr --model models/pretrained/proposer-pushblocks \\
        --dynamics models/pretrained/dynamics-pushblocks --env forethought/PushBlocks-v0 \\
        --env-kwargs '{"n_blocks": 1}' --skill push --seeds 0-49 --inference-steps 5 --json

``--policy-option`` keys: ``samples``, ``iterations``, ``elites``, ``temperature``, ``init_std``,
``min_std``, ``horizon``, ``goal_fraction`` (share of goal-conditioned proposals, default 1)
(planner); ``beta``, ``energy_weight``, ``keepout`` (``circle:x,y,r`` or ``rect:x,y,hx,hy``,
several joined by ``;``), ``keepout_weight``, ``running_weight``,
``terminal_weight``, ``margin``, ``shaping_weight``, ``disturbance_weight``,
``disturbance_deadband``, ``disturbance_patience``, ``edge_weight`` (objective); ``search`` (``ssr|mppi|cem``, for
the oracle); ``backend`` (``torch``, or ``onnx``: the proposer's denoiser and the dynamics
ensemble's whole rollout are exported to temporary ONNX files and run on onnxruntime, with
``torch.get_num_threads()`` threads, on ``CUDAExecutionProvider`` when ``--device cuda``; the
noise, the DDIM loop and the objective stay in torch, so both backends pick the same chunk for
the same seed). ``--action-steps`` sets m (default 8), ``--inference-steps`` the proposer's DDIM
steps, ``--no-goal`` goal-free proposals (the objective still uses the task).
"""

from __future__ import annotations

import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from forethought.models.control.objectives import KeepOut, Objective
from forethought.models.control.oracle import OracleDynamics
from forethought.models.control.planners import CEMPlanner, MPPIPlanner, Planner, PlannerConfig, SSRPlanner
from forethought.models.evaluation import PolicySpec, register_policy
from forethought.sim import PUSH_BLOCKS_ID, scene, task_env_id

PLANNERS = ("ssr", "mppi", "cem", "oracle")
DEFAULT_BUDGETS: dict[str, dict[str, int]] = {
    "ssr": {"samples": 64, "iterations": 0},
    "mppi": {"samples": 32, "iterations": 1, "elites": 6},
    "cem": {"samples": 16, "iterations": 4, "elites": 4},
}
"""Per search: 64 rollouts per replan each."""
PLANNER_KEYS = {"samples": int, "iterations": int, "elites": int, "horizon": int, "temperature": float,
                "init_std": float, "min_std": float, "goal_fraction": float}
OBJECTIVE_KEYS = {"beta": float, "energy_weight": float, "keepout_weight": float, "running_weight": float,
                  "terminal_weight": float, "margin": float, "shaping_weight": float,
                  "disturbance_weight": float, "disturbance_deadband": float, "disturbance_patience": int,
                  "edge_weight": float}
OTHER_KEYS = ("keepout", "search", "backend")
BACKENDS = ("torch", "onnx")
"""Who evaluates the proposer's denoiser and the dynamics ensemble (``--policy-option backend``)."""


def _parse_options(options: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any], str | None, str]:
    """``--policy-option`` strings -> (planner settings, objective terms, oracle search, backend)."""
    unknown = sorted(set(options) - set(PLANNER_KEYS) - set(OBJECTIVE_KEYS) - set(OTHER_KEYS))
    if unknown:
        valid = sorted([*PLANNER_KEYS, *OBJECTIVE_KEYS, *OTHER_KEYS])
        raise ValueError(f"unknown --policy-option {unknown} for dmpc: valid keys are {valid}")
    planner: dict[str, Any] = {}
    terms: dict[str, Any] = {}
    for key, value in options.items():
        kind = PLANNER_KEYS.get(key) or OBJECTIVE_KEYS.get(key)
        if kind is None:
            continue
        try:
            (planner if key in PLANNER_KEYS else terms)[key] = kind(value)
        except ValueError:
            raise ValueError(f"--policy-option {key}={value!r} must be a {kind.__name__}") from None
    if options.get("keepout"):
        terms["keepouts"] = tuple(KeepOut.parse(z) for z in options["keepout"].split(";") if z.strip())
    search = options.get("search")
    if search is not None and search not in DEFAULT_BUDGETS:
        raise ValueError(f"--policy-option search={search!r}: valid searches are {sorted(DEFAULT_BUDGETS)}")
    backend = options.get("backend", "torch")
    if backend not in BACKENDS:
        raise ValueError(f"--policy-option backend={backend!r}: valid backends are {list(BACKENDS)}")
    return planner, terms, search, backend


def use_onnx(proposer: Any, dynamics: Any, device: str) -> None:
    """Export ``proposer``'s denoiser and ``dynamics``' rollout (when it is a ``DynamicsEnsemble``) to
    temporary ONNX files and switch both to onnxruntime (CUDA provider for a ``cuda`` device)."""
    from forethought.models.dynamics import DynamicsEnsemble
    from forethought.models.dynamics.onnx_ensemble import export_ensemble
    from forethought.models.onnx_session import providers_for
    from forethought.models.proposer.onnx_denoiser import export_denoiser

    if proposer is None and not isinstance(dynamics, DynamicsEnsemble):
        raise ValueError("--policy-option backend=onnx exports the proposer and the dynamics ensemble, "
                         "and this planner has neither (cem over the oracle or a world model)")
    providers, threads = providers_for(device), torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="dmpc-onnx-") as tmp:
        if proposer is not None:
            proposer.load_onnx(export_denoiser(proposer, Path(tmp) / "denoiser.onnx"), threads, providers)
            proposer.backend = "onnx"
        if isinstance(dynamics, DynamicsEnsemble):
            dynamics.load_onnx(export_ensemble(dynamics, Path(tmp) / "dynamics.onnx"), threads, providers)
            dynamics.backend = "onnx"


class DMPCPolicy:
    """A ``forethought.models.evaluation.Policy`` that plans with a D-MPC planner (module docstring)."""

    def __init__(self, spec: PolicySpec) -> None:
        name = spec.planner or "ssr"
        if name not in PLANNERS:
            raise ValueError(f"--planner {name!r}: valid planners are {list(PLANNERS)}")
        planner_opts, self.terms, search, backend = _parse_options(dict(spec.options))
        if search is not None and name != "oracle" and spec.dynamics != "oracle":
            raise ValueError("--policy-option search=... only applies to the oracle "
                             "(--planner oracle or --dynamics oracle)")
        oracle = name == "oracle" or spec.dynamics == "oracle"
        search = search or ("ssr" if name == "oracle" else name)
        self.env_id = spec.env_id
        probe = gym.make(spec.env_id)
        low, high = probe.action_space.low, probe.action_space.high
        probe.close()

        proposer = None
        if search != "cem":
            if spec.model is None:
                raise ValueError(f"--planner {name} samples proposals: pass --model DIR (or --proposer DIR), "
                                 "a proposer checkpoint such as models/pretrained/proposer-pushblocks")
            from forethought.models.proposer.modeling_proposer import DiffusionProposer

            proposer = DiffusionProposer.from_pretrained(spec.model, device=spec.device)
            c = proposer.config
            if c.obs_dim != spec.observation_dim or c.action_dim != spec.action_dim:
                raise ValueError(f"proposer {spec.model} has observation/action widths {c.obs_dim}/{c.action_dim}, "
                                 f"{spec.env_id} has {spec.observation_dim}/{spec.action_dim}")
            if spec.num_inference_steps is not None:
                c.check_inference_steps(spec.num_inference_steps)
        if oracle:
            horizon = planner_opts.get("horizon") or (proposer.config.horizon if proposer is not None else 16)
            self.dynamics: Any = OracleDynamics(horizon=horizon)
        else:
            if spec.dynamics is None:
                raise ValueError(f"--planner {name} rolls candidates through learned dynamics: pass --dynamics DIR "
                                 "(e.g. models/pretrained/dynamics-pushblocks) or --dynamics oracle")
            from forethought.models.dynamics import DynamicsEnsemble
            from forethought.models.world_model.latent_dynamics import ProbedLatentDynamics, is_world_model_dir

            if is_world_model_dir(spec.dynamics):  # the SIGReg world model, read back through its probe
                self.dynamics = ProbedLatentDynamics.from_pretrained(spec.dynamics, device=spec.device)
            else:
                self.dynamics = DynamicsEnsemble.from_pretrained(spec.dynamics, device=spec.device).eval()
            if (self.dynamics.state_dim, self.dynamics.action_dim) != (spec.observation_dim, spec.action_dim):
                raise ValueError(f"dynamics {spec.dynamics} has state/action widths {self.dynamics.state_dim}/"
                                 f"{self.dynamics.action_dim}, {spec.env_id} has "
                                 f"{spec.observation_dim}/{spec.action_dim}")
        if backend == "onnx":
            use_onnx(proposer, self.dynamics, spec.device)
        budget = {**DEFAULT_BUDGETS[search], **planner_opts}
        config = PlannerConfig(**budget, action_steps=spec.action_steps or 8, use_goal=spec.use_goal,
                               num_inference_steps=spec.num_inference_steps)
        if search == "cem":
            self.planner: Planner = CEMPlanner(self.dynamics, low, high, config)
        else:
            self.planner = (SSRPlanner if search == "ssr" else MPPIPlanner)(proposer, self.dynamics, low, high, config)
        if config.action_steps > self.planner.horizon:
            raise ValueError(f"--action-steps {config.action_steps} exceeds the plan horizon {self.planner.horizon}")
        n_obs = max(self.planner.n_obs_steps, self.dynamics.n_obs_steps)
        self._history: deque[np.ndarray] = deque(maxlen=n_obs)
        self._queue: deque[np.ndarray] = deque()
        self.task: dict[str, Any] | None = None
        self.objective: Objective | None = None
        self.keepouts: tuple[KeepOut, ...] = tuple(self.terms.pop("keepouts", ()))
        self.replan_ms: list[float] = []
        """Wall time (ms) of every replan since construction."""

    def bind_env(self, env: gym.Env) -> None:
        """Called by the harness with the env it steps: the oracle rolls out from its live state."""
        if isinstance(self.dynamics, OracleDynamics):
            self.dynamics.bind(env)

    def reset(self, task: dict[str, Any] | None, seed: int) -> None:
        if task is None:
            raise ValueError("--policy dmpc scores futures against the task: do not pass --no-goal without a task "
                             "(--no-goal only makes the proposals goal-free)")
        self.task = dict(task)
        self.objective = None
        self._history.clear()
        self._queue.clear()
        self.planner.reset(seed)

    def set_keepouts(self, zones: tuple[KeepOut, ...]) -> None:
        """Replace the keep-out zones (before the episode's first action)."""
        self.keepouts = tuple(zones)
        self.objective = None

    def act(self, obs: np.ndarray) -> np.ndarray:
        x = self._observe(obs)
        if not self._queue:
            self._queue.extend(self._plan(x))
        return self._queue.popleft()

    def plan_chunk(self, observations: np.ndarray) -> np.ndarray:
        """A fresh chunk ``float32[m, A]`` (m = ``action_steps``) planned from the last of
        ``observations[T, S]`` (or one ``[S]``): the observations since the previous call, oldest
        first, each kept in the history as ``act`` keeps it. Queued actions are dropped. Calling it
        whenever ``act``'s queue would be empty and executing the chunk gives ``act``'s actions."""
        obs = np.asarray(observations, dtype=np.float32)
        if obs.ndim not in (1, 2) or not obs.size:
            raise ValueError(f"observations must be [T, S] or [S] with T >= 1, got {list(obs.shape)}")
        xs = [self._observe(o) for o in obs.reshape(-1, obs.shape[-1])]
        self._queue.clear()
        return self._plan(xs[-1])

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        """Check ``obs[S]`` and keep it in the history; return it as ``float32[S]``."""
        if self.task is None:
            raise ValueError("call reset(task, seed) before act")
        x = np.asarray(obs, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(x)):
            first = int(np.flatnonzero(~np.isfinite(x))[0])
            raise ValueError(f"observation contains NaN or inf (first at index {first}): refusing to plan on it")
        if self.objective is None:
            blocks = scene.present_blocks(x) if task_env_id(self.env_id) == PUSH_BLOCKS_ID else None
            self.objective = Objective.from_step(self.task, blocks, env_id=self.env_id, keepouts=self.keepouts,
                                                 **self.terms)
        self._history.append(x)
        return x

    def _plan(self, x: np.ndarray) -> np.ndarray:
        """Plan from the history (``x[S]`` its last entry); the first ``action_steps`` actions,
        clipped to the action space, ``float32[m, A]``."""
        history = np.stack(list(self._history))
        t0 = time.perf_counter()
        self.objective.observe(x)
        chunk = self.planner.plan(history, self.objective, goal=self.task)
        self.replan_ms.append((time.perf_counter() - t0) * 1e3)
        actions = np.asarray(chunk[: self.planner.config.action_steps])
        return np.clip(actions, self.planner.low.numpy(), self.planner.high.numpy()).astype(np.float32)


register_policy("dmpc")(DMPCPolicy)
