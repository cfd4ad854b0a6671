"""Surprise: how far the observed embedding lands from the one the world model predicted.

At env step ``t`` the model predicts ``z_t`` open loop over ``horizon`` action blocks: from the
observed embeddings ending at step ``s = t - horizon * frameskip`` (up to ``history`` of them,
``frameskip`` steps apart) and the actions ``a[s .. t - 1]``; the surprise is
``||z_hat_t - z_t||^2 / D``, optionally averaged over the last ``window`` steps. Because SIGReg
keeps embeddings near N(0, I), the value is comparable across models: about 0 when the world
behaves as learned, rising when it does not (a teleported block, a heavier block, a slippery table).

- ``horizon=1, window=1`` (the default) is LeWM's 1-step surprise (LeWM §5.2): it spikes at a
  discontinuity such as a teleport, but a physics change (mass, friction) only shows at the few
  steps with contact, and then only as a small 1-step difference.
- ``horizon=k > 1`` compares the model's imagined future over the last ``k`` blocks with what
  happened: small per-step differences can build up over the open-loop rollout, and a block that
  moved less (mass x3) or slid further (friction x0.2) than imagined keeps the score up for ``k``
  blocks after the contact. This only separates shifted from normal physics when the model's own
  error at contacts is smaller than the shift's effect (``bench/world_model.py`` measures it).
- ``window=w > 1`` averages the last ``w`` per-step values (those that exist), trading latency of
  detection for a steadier signal.

With the model folder's linear ``probe`` (``probe=``), the surprise is read where things are instead:
the mean squared difference (m^2) of the positions the probe reads out of ``z_hat_t`` and ``z_t`` (the
pusher's ``agent_xy`` and every object slot's ``x, y``, ``position_entries``). The latent distance
weighs every embedding direction alike, so the model's own error at contacts (which moves many
directions a little) competes with a teleport (which moves a block's position a lot); read as
positions, a teleported block stands out (issue #18, ``BENCHMARKS.md``: per-step teleport AUROC 0.95 ->
0.98 for the shipped state model, 0.91 -> 1.00 for the contact model).

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

from forethought.models.world_model.configuration_world_model import WorldModelConfig
from forethought.models.world_model.modeling_world_model import LatentWorldModel
from forethought.models.world_model.probe import LinearProbe, encode_all


def _check_options(horizon: int, window: int) -> None:
    for name, v in (("horizon", horizon), ("window", window)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


SURPRISE_SPACES = ("latent", "positions")
"""Where the surprise is measured: the embedding (LeWM), or the positions the probe reads out of it."""


def position_entries(config: WorldModelConfig) -> list[int]:
    """Task-state indices of the positions the position surprise compares: the pusher's ``x, y`` and
    every object slot's ``x, y``."""
    return [*config.agent_xy, *(i for slot in config.object_slots for i in slot[1:])]


def surprise_error(pred: Tensor, z: Tensor, probe: LinearProbe | None = None,
                   positions: list[int] | None = None) -> Tensor:
    """Per-row surprise ``[n]`` of predicted ``pred[n, D]`` against observed ``z[n, D]``: the mean squared
    latent difference, or with ``probe`` that of the probed ``positions`` (m^2)."""
    if probe is None:
        return (pred - z).square().mean(-1)
    return (probe(pred)[:, positions] - probe(z)[:, positions]).square().mean(-1)


def _check_probe(model: LatentWorldModel, probe: LinearProbe | None) -> list[int] | None:
    """The position entries the probe is read at, after checking it fits ``model``; ``None`` without a probe."""
    if probe is None:
        return None
    c = model.config
    positions = position_entries(c)
    if probe.weight.shape[1] != c.embed_dim or max(positions) >= probe.weight.shape[0]:
        raise ValueError(f"the probe maps {probe.weight.shape[1]} -> {probe.weight.shape[0]}: the position surprise "
                         f"needs {c.embed_dim} -> a state holding entries {positions}")
    return positions


def predict_targets(model: LatentWorldModel, z: Tensor, blocks: Tensor, targets: np.ndarray,
                    horizon: int) -> Tensor:
    """Open-loop predictions ``[len(targets), D]`` of ``z[t]`` over ``horizon`` blocks, ``t >= horizon * frameskip``.

    ``z[T+1, D]`` are the observed embeddings, ``blocks[T, A]`` the normalised actions of every step.
    """
    fs, H = model.config.frameskip, model.config.history
    out = torch.empty(len(targets), z.shape[1], device=z.device)
    starts = targets - horizon * fs
    h_of = np.minimum(H, starts // fs + 1)
    for h in np.unique(h_of):
        sel = np.flatnonzero(h_of == h)
        s = torch.as_tensor(starts[sel], device=z.device)
        frames = s[:, None] - fs * torch.arange(h - 1, -1, -1, device=z.device)[None]  # [n, h], oldest first
        steps = s[:, None] + torch.arange(horizon * fs, device=z.device)[None]  # [n, horizon * fs]
        pred = model.rollout_latent(z[frames], blocks[steps].reshape(len(sel), horizon, -1))
        out[torch.as_tensor(sel, device=z.device)] = pred[:, -1]
    return out


def _running_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Mean of the finite values among ``x[t - window + 1 .. t]``; NaN where there are none."""
    ok = np.isfinite(x)
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, x, 0.0))])
    ccount = np.concatenate([[0], np.cumsum(ok)])
    hi = np.arange(1, len(x) + 1)
    lo = np.maximum(0, hi - window)
    count = ccount[hi] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (csum[hi] - csum[lo]) / count, np.nan)


@torch.inference_mode()
def surprise_trace(model: LatentWorldModel, obs: Any, actions: Any, horizon: int = 1, window: int = 1,
                   probe: LinearProbe | None = None) -> np.ndarray:
    """``float64[T + 1]`` surprise of every observation of an episode (NaN for the first ``horizon * frameskip``).

    Args:
        obs: ``[T + 1, *obs_shape]``: the observations ``s_0 .. s_T``.
        actions: ``[T, A]``: ``a_t`` leads from ``s_t`` to ``s_{t+1}`` (env units).
        horizon: open-loop prediction horizon in action blocks (see the module docstring).
        window: running mean over this many steps (1: none).
        probe: the model folder's probe: the surprise of the probed positions (module docstring).
    """
    _check_options(horizon, window)
    positions = _check_probe(model, probe)
    model.eval()
    x = model.processor.check_obs(obs)
    a = torch.as_tensor(np.asarray(actions, np.float32))
    if a.dim() != 2 or a.shape[1] != model.config.action_dim or len(x) != len(a) + 1:
        raise ValueError(f"need obs [T + 1, ...] and actions [T, {model.config.action_dim}], got {list(x.shape)} "
                         f"and {list(a.shape)}")
    z = encode_all(model, x)
    blocks = model.processor.normalize_actions(a.to(z.device))
    out = np.full(len(x), np.nan)
    targets = np.arange(horizon * model.config.frameskip, len(x))
    if len(targets):
        pred = predict_targets(model, z, blocks, targets, horizon)
        out[targets] = surprise_error(pred, z[targets], probe, positions).cpu().numpy()
    return _running_mean(out, window) if window > 1 else out


class SurpriseMonitor:
    """Online surprise, one env step at a time (the ``world_model_node``'s core); the same values as
    ``surprise_trace`` with the same ``horizon``, ``window`` and ``probe``.

    Usage::

        monitor = SurpriseMonitor(model, horizon=4, window=10)
        monitor.reset(obs)
        obs, *_ = env.step(action)
        s = monitor.step(action, obs)   # None until horizon * frameskip steps have passed
    """

    def __init__(self, model: LatentWorldModel, horizon: int = 1, window: int = 1,
                 probe: LinearProbe | None = None) -> None:
        _check_options(horizon, window)
        self.positions = _check_probe(model, probe)
        self.model, self.probe = model.eval(), probe
        self.horizon, self.window = horizon, window
        c = model.config
        self._size = (c.history + horizon - 1) * c.frameskip + 1
        self._z: deque[Tensor] = deque(maxlen=self._size)
        self._a: deque[Tensor] = deque(maxlen=self._size - 1)
        self._recent: deque[float] = deque(maxlen=window)

    @torch.inference_mode()
    def reset(self, obs: Any) -> None:
        """Start a new episode at observation ``obs[*obs_shape]``."""
        self._z.clear()
        self._a.clear()
        self._recent.clear()
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
        # the buffer holds exactly the frames the prediction of its newest one needs (fewer early on)
        t = len(self._z) - 1
        if t < self.horizon * self.model.config.frameskip:
            return None
        z, blocks = torch.stack(list(self._z)), torch.stack(list(self._a))  # a[i] leads from z[i] to z[i + 1]
        pred = predict_targets(self.model, z, blocks, np.array([t]), self.horizon)
        self._recent.append(float(surprise_error(pred, z[t:t + 1], self.probe, self.positions)[0]))
        return float(np.mean(self._recent))


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
