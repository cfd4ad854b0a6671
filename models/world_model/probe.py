"""Linear probe from the latent ``z[D]`` to the task state ``s[S]``: reads positions out of the embedding.

It lets plan-step objectives (reach a point, push a block to a region) be scored directly on
imagined latents, and its R² per state entry says what the embedding encodes (LeWM reports
r = 0.97-0.99 for Push-T positions). Fitted by ridge regression in closed form.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from forethought.files import atomic_path

PROBE_FILE = "probe.safetensors"
RIDGE = 1e-3
ENCODE_CHUNK = 2048


@torch.no_grad()
def encode_all(model: Any, obs: Tensor) -> Tensor:
    """``z[N, D]`` of observations ``obs[N, *obs_shape]``, in eval mode and in chunks."""
    was_training = model.training
    model.eval()
    z = torch.cat([model.encode(obs[i:i + ENCODE_CHUNK]) for i in range(0, len(obs), ENCODE_CHUNK)])
    model.train(was_training)
    return z


class LinearProbe:
    """``s_hat = z @ weight.T + bias``; ``weight[S, D]``, ``bias[S]``."""

    def __init__(self, weight: Tensor, bias: Tensor) -> None:
        if weight.dim() != 2 or bias.shape != (weight.shape[0],):
            raise ValueError(f"probe weight must be [S, D] and bias [S], got {list(weight.shape)}, {list(bias.shape)}")
        self.weight, self.bias = weight.float(), bias.float()

    @classmethod
    def fit(cls, model: Any, obs: Tensor, states: Tensor, ridge: float = RIDGE) -> LinearProbe:
        """Ridge regression of ``states[N, S]`` on the embeddings of ``obs[N, *obs_shape]``."""
        z = encode_all(model, obs).double()
        s = states.to(z.device).double()
        z_mean, s_mean = z.mean(0), s.mean(0)
        zc, sc = z - z_mean, s - s_mean
        gram = zc.T @ zc + ridge * len(z) * torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
        weight = torch.linalg.solve(gram, zc.T @ sc).T  # [S, D]
        return cls(weight.float(), (s_mean - weight @ z_mean).float())

    def __call__(self, z: Tensor) -> Tensor:
        """Task states ``[..., S]`` read out of latents ``z[..., D]``."""
        return z @ self.weight.to(z.device).T + self.bias.to(z.device)

    def corrected(self, z: Tensor, state: Tensor, z_state: Tensor) -> Tensor:
        """Task states ``[..., S]`` of latents ``z[..., D]``, corrected by the probe's error at a known
        ``state[S]`` whose latent is ``z_state[D]``: ``probe(z) + state - probe(z_state)`` (offset-free MPC:
        the probe errs much the same on nearby states, and a linear probe is off by about a centimetre)."""
        return self(z) + (state.to(z.device) - self(z_state))

    def r2(self, model: Any, obs: Tensor, states: Tensor) -> Tensor:
        """Coefficient of determination per state entry ``[S]`` (NaN where the entry is constant)."""
        pred = self(encode_all(model, obs))
        s = states.to(pred.device).float()
        ss_res = (s - pred).square().sum(0)
        ss_tot = (s - s.mean(0)).square().sum(0)
        return torch.where(ss_tot > 1e-12, 1 - ss_res / ss_tot.clamp_min(1e-12), torch.full_like(ss_tot, float("nan")))

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write ``probe.safetensors`` into ``directory``."""
        with atomic_path(Path(directory) / PROBE_FILE) as tmp:
            save_file({"weight": self.weight.contiguous(), "bias": self.bias.contiguous()}, str(tmp))

    @classmethod
    def load(cls, directory: str | os.PathLike[str], embed_dim: int, state_dim: int) -> LinearProbe:
        """Read ``probe.safetensors`` from a model directory, checking its shapes."""
        path = Path(directory) / PROBE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"missing {PROBE_FILE} in {directory}: retrain with `forethought train world-model`, "
                                    "which fits the probe")
        try:
            t = load_file(str(path))
            probe = cls(t["weight"], t["bias"])
        except (SafetensorError, OSError, KeyError, ValueError) as e:
            raise ValueError(f"corrupt probe {path}: {e}") from e
        if tuple(probe.weight.shape) != (state_dim, embed_dim):
            raise ValueError(f"probe {path} maps {probe.weight.shape[1]} -> {probe.weight.shape[0]} but the model needs "
                             f"{embed_dim} -> {state_dim}")
        return probe
