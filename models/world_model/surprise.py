"""Surprise: how far the observed embedding lands from the one the world model predicted.

At env step ``t`` (``t >= frameskip``) the model predicts ``z_t`` from the embeddings
``frameskip, 2 frameskip, ...`` steps earlier (up to ``history`` of them) and the action block
``a[t - frameskip .. t - 1]``; the surprise is ``||z_hat_t - z_t||^2 / D``. Because SIGReg keeps
embeddings near N(0, I), the value is comparable across models: about 0 when the world behaves
as learned, rising when it does not (a teleported block, a heavier block, a slippery table).
LeWM reports the same signal for teleport and colour changes (LeWM §5.2).

``rollout_spread`` adds an uncertainty signal from perturbation: the spread of ``K`` rollouts
whose latents are jittered with Gaussian noise (SIGReg makes latents unit-scale, so one sigma
serves every model).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch
from torch import Tensor

from forethought.models.world_model.modeling_world_model import LatentWorldModel
from forethought.models.world_model.probe import encode_all


def _predict_targets(model: LatentWorldModel, z: Tensor, blocks: Tensor, targets: np.ndarray) -> Tensor:
    """Predictions ``[len(targets), D]`` of ``z[t]`` for each target step ``t >= frameskip``.

    ``z[T+1, D]`` are the observed embeddings, ``blocks[T, A]`` the normalised actions of every step.
    """
    fs, H = model.config.frameskip, model.config.history
    out = torch.empty(len(targets), z.shape[1], device=z.device)
    h_of = np.minimum(H, targets // fs)
    for h in np.unique(h_of):
        sel = np.flatnonzero(h_of == h)
        t = torch.as_tensor(targets[sel], device=z.device)
        frames = t[:, None] - fs * torch.arange(h, 0, -1, device=z.device)[None]  # [n, h], oldest first
        steps = t[:, None] - fs + torch.arange(fs, device=z.device)[None]  # [n, fs]
        out[torch.as_tensor(sel, device=z.device)] = model.predict(z[frames], blocks[steps].flatten(1))
    return out


@torch.inference_mode()
def surprise_trace(model: LatentWorldModel, obs: Any, actions: Any) -> np.ndarray:
    """``float64[T + 1]`` surprise of every observation of an episode (NaN for the first ``frameskip``).

    Args:
        obs: ``[T + 1, *obs_shape]``: the observations ``s_0 .. s_T``.
        actions: ``[T, A]``: ``a_t`` leads from ``s_t`` to ``s_{t+1}`` (env units).
    """
    model.eval()
    x = model.processor.check_obs(obs)
    a = torch.as_tensor(np.asarray(actions, np.float32))
    if a.dim() != 2 or a.shape[1] != model.config.action_dim or len(x) != len(a) + 1:
        raise ValueError(f"need obs [T + 1, ...] and actions [T, {model.config.action_dim}], got {list(x.shape)} "
                         f"and {list(a.shape)}")
    z = encode_all(model, x)
    blocks = model.processor.normalize_actions(a.to(z.device))
    out = np.full(len(x), np.nan)
    targets = np.arange(model.config.frameskip, len(x))
    if len(targets):
        pred = _predict_targets(model, z, blocks, targets)
        out[targets] = ((pred - z[targets]).square().mean(-1)).cpu().numpy()
    return out


class SurpriseMonitor:
    """Online surprise, one env step at a time (the ``world_model_node``'s core).

    Usage::

        monitor = SurpriseMonitor(model)
        monitor.reset(obs)
        obs, *_ = env.step(action)
        s = monitor.step(action, obs)   # None until frameskip steps have passed
    """

    def __init__(self, model: LatentWorldModel) -> None:
        self.model = model.eval()
        c = model.config
        self._size = c.history * c.frameskip + 1
        self._z: deque[Tensor] = deque(maxlen=self._size)
        self._a: deque[Tensor] = deque(maxlen=self._size - 1)

    @torch.inference_mode()
    def reset(self, obs: Any) -> None:
        """Start a new episode at observation ``obs[*obs_shape]``."""
        self._z.clear()
        self._a.clear()
        self._z.append(self.model.encode(obs))

    @torch.inference_mode()
    def step(self, action: Any, obs: Any) -> float | None:
        """Record ``action[A]`` and the observation it led to; return that observation's surprise."""
        if not self._z:
            raise ValueError("SurpriseMonitor.step called before reset(obs)")
        a = torch.as_tensor(np.asarray(action, np.float32)).reshape(-1)
        if a.shape != (self.model.config.action_dim,) or not torch.isfinite(a).all():
            raise ValueError(f"action must be {self.model.config.action_dim} finite numbers, got {a.tolist()}")
        self._z.append(self.model.encode(obs))
        self._a.append(self.model.processor.normalize_actions(a.to(self._z[0].device)))
        t = len(self._z) - 1
        if t < self.model.config.frameskip:
            return None
        z, blocks = torch.stack(list(self._z)), torch.stack(list(self._a))  # a[i] leads from z[i] to z[i + 1]
        pred = _predict_targets(self.model, z, blocks, np.array([t]))
        return float((pred[0] - z[t]).square().mean())


@torch.inference_mode()
def rollout_spread(model: LatentWorldModel, z_hist: Tensor, blocks: Tensor, num_rollouts: int = 8,
                   sigma: float = 0.05, generator: torch.Generator | None = None) -> Tensor:
    """Spread ``[n, K]`` (mean per-dim variance) of ``num_rollouts`` rollouts with latent noise.

    ``z_hist[n, h, D]`` and normalised ``blocks[n, K, frameskip * A]`` as ``rollout_latent`` takes;
    every predicted latent is jittered by N(0, sigma^2) before it is fed back.
    """
    n, h, d = z_hist.shape
    H = model.config.history
    window = z_hist.repeat_interleave(num_rollouts, 0)[:, -H:]
    b = blocks.repeat_interleave(num_rollouts, 0)
    out = []
    for k in range(blocks.shape[1]):
        z_next = model.predict(window, b[:, k])
        z_next = z_next + sigma * torch.randn(z_next.shape, generator=generator, device=z_next.device)
        out.append(z_next)
        window = torch.cat([window, z_next.unsqueeze(1)], dim=1)[:, -H:]
    z = torch.stack(out, 1).reshape(n, num_rollouts, blocks.shape[1], d)
    return z.var(dim=1).mean(-1)
