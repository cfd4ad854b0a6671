"""The latent world model as D-MPC dynamics: encode, roll out in latent space, read the states back.

``ProbedLatentDynamics`` implements the controller's ``Dynamics`` call (``rollout(state,
actions[n, F, A]) -> states[1, n, F, S]``), so SSR, MPPI and CEM plan through the SIGReg world
model as through the dynamics ensemble (``forethought eval --policy dmpc --dynamics
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
from typing import Any

import torch
from torch import Tensor

from forethought.models.world_model.configuration_world_model import CONFIG_TYPE
from forethought.models.world_model.modeling_world_model import LatentWorldModel
from forethought.models.world_model.probe import LinearProbe
from forethought.sim import scene


def is_world_model_dir(directory: str | os.PathLike[str]) -> bool:
    """Whether ``directory`` holds a world model (its ``config.json`` has ``"type": CONFIG_TYPE``)."""
    try:
        return json.loads((Path(directory) / "config.json").read_text()).get("type") == CONFIG_TYPE
    except (OSError, ValueError, AttributeError):
        return False


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
        self.flags = [scene.block_slice(b).start for b in scene.BLOCK_NAMES] if c.obs_dim == scene.OBS_DIM else []
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
        ends = self.probe(z) + (s - self.probe(z0))  # [n, B, S], corrected by the probe's residual at s
        ends[..., self.flags] = s[self.flags]
        knots = torch.cat([s.expand(n, 1, -1), ends], dim=1)  # [n, B + 1, S] at steps 0, fs, 2 fs, ...
        t = torch.arange(1, F + 1, device=ends.device, dtype=torch.float32) / fs  # step k+1 in block units
        lo = t.floor().long().clamp(max=ends.shape[1] - 1)
        w = (t - lo.float())[None, :, None]
        states = knots[:, lo] * (1 - w) + knots[:, lo + 1] * w  # [n, F, S]
        return states.unsqueeze(0)
