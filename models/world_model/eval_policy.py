"""``forethought eval --policy latent-cem`` (and ``latent-mppi``): latent MPC on plan-step tasks.

The harness (``forethought.models.evaluation``) gives each episode a plan step; the policy scores
imagined latents with the model folder's linear probe (``latent_objectives.ProbeObjective``), so it
needs a state model (a pixel model is planned with goal images instead, see ``bench/world_model.py``).

Example::

    forethought eval --policy latent-cem --model models/pretrained/wm-pushblocks-state \\
        --env forethought/PushBlocks-v0 --env-kwargs '{"n_blocks": 1}' --skill reach --seeds 0-49 \\
        --policy-option iterations=10 --policy-option execute_blocks=1

``--policy-option`` keys: ``samples``, ``elites`` (a tenth of ``samples`` unless given),
``iterations``, ``horizon`` (``WAYPOINT_BUDGET`` with the waypoint sampler; LeWM's 300, 30, 10 over
5 blocks with ``box``), ``execute_blocks`` (blocks run before replanning, 1), ``warm_start`` (1:
start each search from the previous plan's mean shifted by ``execute_blocks``; 0, the default),
``carry_plan`` (waypoint sampler, 1: the previous plan, shifted, is a candidate of the next; 0),
``temperature`` (MPPI only, 0.5), ``backend`` (``torch``, or ``onnx``: the rollout is exported to
a temporary ONNX file and the plans run on onnxruntime), ``sampler`` (``waypoint``, the default:
smooth block steps around the pusher drawn from the training data's step distribution,
``action_sampler.WaypointSampler`` with ``PUSHBLOCKS_STEP_QUANTILES``; or ``box``: LeWM's per-step
samples over the action box), ``ensemble`` (comma-separated world-model folders trained like
``--model``, e.g. with other seeds: every candidate is rolled out through all of them and scored by
the members' mean cost, ``LatentEnsembleDynamics``), ``beta`` (with ``ensemble``: plus ``beta`` times
the members' cost std, 0), ``margin`` (how far inside the success boundary the plan step aims, m;
``TaskObjective``'s 0.01 unless given), ``param_box`` (waypoint sampler: the half-width of its
parameter box in prior stds, ``WAYPOINT_PARAM_BOX`` unless given).

``policy_controller`` runs the same policy (``policy: latent-cem``): ``plan_chunk`` gives it a fresh
plan's first ``execute_blocks`` blocks as one chunk.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from forethought.models.evaluation import PolicySpec, register_policy
from forethought.models.world_model.action_sampler import WaypointSampler
from forethought.models.world_model.configuration_world_model import DEFAULT_HORIZON
from forethought.models.world_model.latent_dynamics import BACKENDS
from forethought.models.world_model.latent_planner import LatentCEM, LatentMPPI, LatentPlanPolicy
from forethought.models.world_model.modeling_world_model import LatentWorldModel
from forethought.models.world_model.onnx_rollout import export_rollout
from forethought.models.world_model.probe import LinearProbe

INT_OPTIONS = ("samples", "elites", "iterations", "horizon", "execute_blocks", "warm_start", "carry_plan")
FLOAT_OPTIONS = ("beta", "margin", "param_box")
SAMPLERS = ("waypoint", "box")
WAYPOINT_BUDGET = {"samples": 200, "elites": 20, "iterations": 2, "horizon": 4}
"""The plan-step budget with the waypoint sampler: 200 samples from the data's step distribution
over 4 blocks, one refit round. On the dev seeds it did as well as LeWM's CEM 300 x 10 over 5
blocks with a ninth of the predictor calls, and best of the budgets of that cost tried
(``BENCHMARKS.md``, issue #18)."""
WAYPOINT_PARAM_BOX = 1.0
"""The plan-step sampler's parameter box (``WaypointSampler.param_box``): steps within the data's central
68 %, at most 2.4 cm per 0.1 s step. With the default 3 the planner chose the data's rare fast sweeps
(a large part of the table in one 0.5 s block), whose pushes the world model predicts far short, and
pushed blocks past corner regions onto the table's edge; on the dev seeds 1 did best of 0.75-3
(``BENCHMARKS.md``, issue #18)."""


class LatentPlannerEvalPolicy:
    """A ``forethought.models.evaluation.Policy`` around ``LatentPlanPolicy`` with a probe objective."""

    def __init__(self, spec: PolicySpec, mppi: bool = False) -> None:
        name = "latent-mppi" if mppi else "latent-cem"
        if spec.model is None:
            raise ValueError(f"--policy {name} needs --model DIR (a world-model folder, e.g. "
                             "models/pretrained/wm-pushblocks-state)")
        allowed = INT_OPTIONS + FLOAT_OPTIONS + ("backend", "sampler", "ensemble") + (("temperature",) if mppi else ())
        unknown = sorted(set(spec.options) - set(allowed))
        if unknown:
            raise ValueError(f"unknown --policy-option {unknown} for {name}: valid keys are {list(allowed)}")
        options = dict(spec.options)
        backend = options.pop("backend", "torch")
        if backend not in BACKENDS:
            raise ValueError(f"--policy-option backend={backend!r} must be one of {list(BACKENDS)}")
        folders = [spec.model] + [f for f in options.pop("ensemble", "").split(",") if f]
        sampler = options.pop("sampler", SAMPLERS[0])
        if sampler not in SAMPLERS:
            raise ValueError(f"--policy-option sampler={sampler!r} must be one of {list(SAMPLERS)}")
        opts: dict[str, Any] = dict(WAYPOINT_BUDGET) if sampler == "waypoint" else {}
        for key, value in options.items():
            try:
                opts[key] = int(value) if key in INT_OPTIONS else float(value)
            except ValueError:
                raise ValueError(f"--policy-option {key}={value!r} must be a number") from None
        if "samples" in options and "elites" not in options:
            opts["elites"] = max(1, opts["samples"] // 10)  # the defaults' tenth
        if "beta" in opts and len(folders) == 1:
            raise ValueError("--policy-option beta weighs the spread of an ensemble: add --policy-option ensemble=DIR")
        beta, margin = opts.pop("beta", 0.0), opts.pop("margin", None)
        box = opts.pop("param_box", WAYPOINT_PARAM_BOX)
        if sampler != "waypoint" and "param_box" in options:
            raise ValueError("--policy-option param_box bounds the waypoint sampler's parameters: drop it with "
                             "sampler=box")
        models = [self._load(name, folder, spec, backend, opts.get("horizon", DEFAULT_HORIZON)) for folder in folders]
        probes = [LinearProbe.load(f, m.config.embed_dim, m.config.obs_dim) for f, m in zip(folders, models)]
        execute = opts.pop("execute_blocks", 1)
        waypoints = WaypointSampler.for_model(models[0], param_box=box) if sampler == "waypoint" else None
        planner = (LatentMPPI if mppi else LatentCEM)(models[0], terminal_only=False, backend=backend,
                                                      sampler=waypoints, warm_start=bool(opts.pop("warm_start", 0)),
                                                      carry_plan=bool(opts.pop("carry_plan", 0)),
                                                      shift_blocks=execute, ensemble=models[1:], **opts)
        self.name = name
        self.policy = LatentPlanPolicy(planner, probes, execute_blocks=execute, beta=beta, margin=margin)
        self.task: dict[str, Any] | None = None

    @staticmethod
    def _load(name: str, folder: str, spec: PolicySpec, backend: str, horizon: int) -> LatentWorldModel:
        """A state world model from ``folder``, checked against the env, its rollout on onnxruntime if asked."""
        model = LatentWorldModel.from_pretrained(folder, device=spec.device)
        c = model.config
        if c.obs_type != "state":
            raise ValueError(f"--policy {name} plans plan-step tasks through the probe and needs a state model; "
                             f"{folder} is a {c.obs_type} model")
        if c.obs_dim != spec.observation_dim or c.action_dim != spec.action_dim:
            raise ValueError(f"world model {folder} takes observations of width {c.obs_dim} and actions of width "
                             f"{c.action_dim}, but {spec.env_id} has {spec.observation_dim} and {spec.action_dim}")
        if backend == "onnx":
            with tempfile.TemporaryDirectory(prefix="latent-rollout-") as tmp:
                model.load_onnx(export_rollout(model, Path(tmp) / "rollout.onnx", horizon))
        return model

    def reset(self, task: dict[str, Any] | None, seed: int) -> None:
        if task is None:
            raise ValueError(f"--policy {self.name} plans toward the task: do not pass --no-goal")
        self.task = task
        self.policy.reset()
        self.policy.planner.reset(seed)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.policy.act(obs, self.task)

    def plan_chunk(self, observations: np.ndarray) -> np.ndarray:
        """A fresh plan from the last of ``observations[T, S]``: ``float32[execute_blocks * frameskip, A]``."""
        if self.task is None:
            raise ValueError(f"--policy {self.name} plans toward a task: reset it with one first")
        obs = np.asarray(observations, np.float32)
        return self.policy.plan_chunk(obs.reshape(-1, obs.shape[-1])[-1], self.task)

    @property
    def replan_ms(self) -> list[float]:
        """Wall time of every plan so far (ms), summarised by the harness as ``replan_ms_median``."""
        return self.policy.replan_ms


register_policy("latent-cem")(LatentPlannerEvalPolicy)
register_policy("latent-mppi")(lambda spec: LatentPlannerEvalPolicy(spec, mppi=True))
