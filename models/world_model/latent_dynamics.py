"""The latent world model as planner dynamics: in latent space (``LatentDynamics``), or read back
as task states through the probe (``ProbedLatentDynamics``).

``LatentDynamics`` is the ``Dynamics`` the latent planners (LeWM's CEM and MPPI,
``latent_planner``) search: its state is the embedding history, its actions are the model's
normalised action blocks, and a rollout returns the embedding after each block::

    state = dynamics.start(obs)                     # [history, D + 1]: embeddings, presence flags
    z = dynamics.rollout(state, blocks[n, K, Bd])   # [1, n, K, D]; Bd = frameskip * A, in [-1, 1]

so a planner's action box is ``[-1, 1]^Bd`` and its chunk is ``K`` blocks. The state holds the last
``history`` embeddings, zero-padded before an episode's first frame, each with its presence flag
(the predictor's inputs), so the planner passes it through unchanged. The rollout runs in torch
or, with ``backend="onnx"``, on onnxruntime (``LatentWorldModel.load_onnx``).

``LatentEnsembleDynamics`` rolls the same blocks through several world models trained alike (different
seeds, one action space) and stacks their embeddings on the member axis, ``z[M, n, K, D]``, so an
objective's ``score`` takes the members' mean cost plus ``beta`` times their spread (issue #18: the
spread between training seeds is as large as the gap to the success goal). Each member keeps its own
latent space, so each is read through its own probe (``ProbeObjective`` with one probe per member).

``ProbedLatentDynamics`` implements the controller's ``Dynamics`` call in task-state units
(``rollout(state, actions[n, F, A]) -> states[1, n, F, S]``), so SSR, MPPI and CEM plan through the
SIGReg world model as through the dynamics ensemble (``forethought eval --policy dmpc --dynamics
models/pretrained/wm-pushblocks-state``), over the same 16-step horizon by default. The model
predicts one embedding per action block of ``frameskip`` steps from the current observation alone
(a one-frame history); the linear probe reads each back as a task state, corrected by the probe's
residual at the current state (``s - probe(encode(s))``, so a plan starts where the robot is and
only the predicted change comes from the model); presence flags are copied from the current
state; the per-step states the objectives score are interpolated linearly between the current
state and the block ends. A chunk whose length is not a multiple of ``frameskip`` is padded by
holding its last action (a position target) and the extra steps are dropped. One model, so the
member axis has size 1 (no ensemble spread for the objective's ``beta``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from forethought.models.world_model.configuration_world_model import DEFAULT_HORIZON, WorldModelConfig
from forethought.models.world_model.modeling_world_model import LatentWorldModel
from forethought.models.world_model.onnx_rollout import EXPORT_HINT
from forethought.models.world_model.probe import LinearProbe
from forethought.sim import scene


def is_world_model_dir(directory: str | os.PathLike[str]) -> bool:
    """Whether ``directory`` holds a world model (its ``config.json`` has ``WorldModelConfig``'s ``type``)."""
    try:
        return json.loads((Path(directory) / "config.json").read_text()).get("type") == WorldModelConfig.config_type
    except (OSError, ValueError, AttributeError):
        return False


BACKENDS = ("torch", "onnx")
"""Who runs ``LatentDynamics``' rollouts: torch, or onnxruntime (``LatentWorldModel.load_onnx``)."""


class LatentDynamics:
    """``Dynamics`` in the world model's latent space (module docstring).

    Args:
        model: a trained ``LatentWorldModel`` (put in eval mode here), state or pixels.
        horizon: action blocks per rollout (``K``).
        backend: ``"torch"``, or ``"onnx"`` to run the rollouts on onnxruntime (after
            ``model.load_onnx(FILE)``; the file's horizon must equal ``horizon``).
    """

    def __init__(self, model: LatentWorldModel, horizon: int = DEFAULT_HORIZON, backend: str = "torch") -> None:
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
        self.model, self.horizon, self.backend = model.eval(), horizon, backend
        c = model.config
        self.n_obs_steps = c.history
        """Rows of the state (``start``), which the planners pass through unchanged."""
        self.state_dim, self.action_dim = c.embed_dim + 1, c.block_dim

    def start(self, obs: Any) -> Tensor:
        """The state ``[history, D + 1]`` of an observation ``[*obs_shape]`` or a history
        ``[h, *obs_shape]`` (oldest first, ``frameskip`` env steps apart; the last ``history`` are used)."""
        model, shape = self.model, self.model.config.obs_shape
        x = model.processor.check_obs(obs)
        if x.dim() == len(shape):
            x = x.unsqueeze(0)
        z = model.embed(model.processor.normalize_obs(x))[-model.config.history:]  # [h, D]
        window, present = model.pad_history(z.unsqueeze(0))  # [1, history, D], [1, history]
        return torch.cat([window[0], present[0, :, None]], dim=-1)

    def encode(self, obs: Any) -> Tensor:
        """The embedding of one observation as a one-member ensemble's: ``z[1, D]``."""
        return self.model.encode(obs)[None]

    def rollout(self, state: Tensor, actions: Tensor) -> Tensor:
        """``state[history, D + 1]`` (``start``) and normalised ``actions[n, K, Bd]`` -> ``z[1, n, K, D]``."""
        if actions.dim() != 3 or actions.shape[2] != self.action_dim:
            raise ValueError(f"actions must be normalised blocks [n, K, {self.action_dim}], got {list(actions.shape)}")
        n, D = actions.shape[0], self.state_dim - 1
        window, present = state[:, :D].expand(n, -1, -1), state[:, D].expand(n, -1)
        rollout = self.model.onnx_rollout if self.backend == "onnx" else self.model.rollout_window
        return rollout(window, present, actions).unsqueeze(0)


class LatentEnsembleDynamics:
    """``LatentDynamics`` of several members stacked on the member axis (module docstring).

    Args:
        members: one ``LatentDynamics`` per world model; they must share the horizon, history,
            embedding width, frameskip and action box (the planner samples one set of blocks for all).
    """

    def __init__(self, members: Sequence[LatentDynamics]) -> None:
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
        first = members[0]
        c0 = first.model.config
        keys = ("obs_type", "obs_dim", "action_dim", "frameskip", "history", "embed_dim", "action_low", "action_high")
        for i, m in enumerate(members[1:], 1):
            c = m.model.config
            differ = [k for k in keys if getattr(c, k) != getattr(c0, k)]
            if differ or m.horizon != first.horizon:
                raise ValueError(f"ensemble member {i} differs from member 0 in {differ or ['horizon']}: the members "
                                 "must plan the same blocks from the same observations")
        self.members, self.model, self.horizon = list(members), first.model, first.horizon
        self.n_obs_steps, self.action_dim = first.n_obs_steps, first.action_dim
        self.member_dim = first.state_dim
        self.state_dim = self.member_dim * len(members)

    def start(self, obs: Any) -> Tensor:
        """The members' states side by side: ``[history, M * (D + 1)]``."""
        return torch.cat([m.start(obs) for m in self.members], dim=-1)

    def encode(self, obs: Any) -> Tensor:
        """Each member's embedding of one observation: ``z[M, D]``."""
        return torch.stack([m.model.encode(obs) for m in self.members])

    def rollout(self, state: Tensor, actions: Tensor) -> Tensor:
        """``state[history, M * (D + 1)]`` and normalised ``actions[n, K, Bd]`` -> ``z[M, n, K, D]``."""
        parts = state.split(self.member_dim, dim=-1)
        return torch.cat([m.rollout(s, actions) for m, s in zip(self.members, parts)])


class ProbedLatentDynamics:
    """``Dynamics`` through a state world model and its probe (module docstring).

    Args:
        model: a state ``LatentWorldModel`` (a pixel model has no task state to start from).
        probe: the model folder's ``LinearProbe`` (latent -> task state).
        horizon: the longest chunk ``rollout`` accepts (steps; the planners' horizon without a
            proposer, as the ensemble's and the oracle's 16).
    """

    n_obs_steps = 1

    def __init__(self, model: LatentWorldModel, probe: LinearProbe, horizon: int = 16) -> None:
        c = model.config
        if c.obs_type != "state":
            raise ValueError(f"a {c.obs_type} world model cannot serve as state dynamics: it needs a state model "
                             "(its probe reads the task state the objectives score)")
        if tuple(probe.weight.shape) != (c.obs_dim, c.embed_dim):
            raise ValueError(f"probe maps {probe.weight.shape[1]} -> {probe.weight.shape[0]}, the model needs "
                             f"{c.embed_dim} -> {c.obs_dim}")
        if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        self.model, self.probe, self.horizon = model.eval(), probe, horizon
        self.state_dim, self.action_dim = c.obs_dim, c.action_dim
        self.flags = list(scene.PRESENCE_FLAGS) if c.obs_dim == scene.OBS_DIM else []
        """Presence flags (PushBlocks): copied from the current state, never predicted."""

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], device: str = "cpu", horizon: int = 16
                        ) -> ProbedLatentDynamics:
        """A world-model folder (``config.json``, ``model.safetensors``, ``probe.safetensors``)."""
        model = LatentWorldModel.from_pretrained(directory, device=device)
        return cls(model, LinearProbe.load(directory, model.config.embed_dim, model.config.obs_dim), horizon)

    @torch.inference_mode()
    def rollout(self, state: Any, actions: Any) -> Tensor:
        """``state[S]`` or ``[h, S]`` (the last row is used) and ``actions[n, F, A]`` -> ``states[1, n, F, S]``."""
        s = torch.as_tensor(state, dtype=torch.float32)
        s = s[-1] if s.dim() == 2 else s
        a = torch.as_tensor(actions, dtype=torch.float32)
        if a.dim() != 3 or a.shape[2] != self.action_dim or not 1 <= a.shape[1] <= self.horizon:
            raise ValueError(f"actions must have shape [n, F, {self.action_dim}] with 1 <= F <= {self.horizon}, "
                             f"got {list(a.shape)}")
        n, F, _ = a.shape
        fs = self.model.config.frameskip
        pad = -F % fs
        if pad:
            a = torch.cat([a, a[:, -1:].expand(n, pad, -1)], dim=1)
        z0 = self.model.encode(s)  # [D]; checks the state for NaN/inf
        z = self.model.rollout_latent(z0.expand(n, 1, -1), self.model.action_blocks(a))  # [n, B, D]
        s = s.to(z.device)
        ends = self.probe.corrected(z, s, z0)  # [n, B, S]
        ends[..., self.flags] = s[self.flags]
        knots = torch.cat([s.expand(n, 1, -1), ends], dim=1)  # [n, B + 1, S] at steps 0, fs, 2 fs, ...
        t = torch.arange(1, F + 1, device=ends.device, dtype=torch.float32) / fs  # step k+1 in block units
        lo = t.floor().long().clamp(max=ends.shape[1] - 1)
        w = (t - lo.float())[None, :, None]
        states = knots[:, lo] * (1 - w) + knots[:, lo + 1] * w  # [n, F, S]
        return states.unsqueeze(0)
