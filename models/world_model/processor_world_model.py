"""Input checks and normalisation of the world model: observations and actions in, model units out.

The statistics are buffers of the model, so they are saved in its ``model.safetensors`` (under
``processor.``) and a checkpoint can never be loaded without them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from forethought.models.world_model.configuration_world_model import WorldModelConfig

MIN_STD = 1e-2
"""State dimensions with a smaller spread in the training data are scaled by this instead (no blow-up)."""
MIN_DELTA_SCALE = 1e-3
"""State dimensions whose change over one action block has a smaller spread (normalised units) never move within
an episode in the training data (presence flags): their readout error is weighed with scale 1 instead."""


class WorldModelProcessor(nn.Module):
    """Validates and normalises observations and actions.

    - state ``float[..., S]`` -> ``(s - mean) / std`` (statistics of the training states);
    - pixels ``uint8[..., H, W, 3]`` -> ``float[..., 3, H, W]`` in [-1, 1];
    - actions (env units, inside ``[action_low, action_high]``) -> [-1, 1], and back.

    With ``state_weight > 0`` it also holds ``delta_scale[S]``, the per-dimension spread of one
    action block's state change in normalised units, which scales the state-readout error.
    """

    def __init__(self, config: WorldModelConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("obs_mean", torch.zeros(config.obs_dim))
        self.register_buffer("obs_std", torch.ones(config.obs_dim))
        self.register_buffer("action_low", torch.tensor(config.action_low, dtype=torch.float32))
        self.register_buffer("action_high", torch.tensor(config.action_high, dtype=torch.float32))
        if config.state_weight > 0:
            self.register_buffer("delta_scale", torch.ones(config.obs_dim))

    def fit(self, states: np.ndarray, deltas: np.ndarray | None = None) -> None:
        """Set the state statistics from training states ``states[N, S]``, and ``delta_scale`` from their
        changes over one action block ``deltas[M, S]`` (``s[t + frameskip] - s[t]``; given iff
        ``state_weight > 0``)."""
        S = self.config.obs_dim
        if (deltas is not None) != (self.config.state_weight > 0):
            raise ValueError("fit takes deltas exactly when state_weight > 0 (they set the state-readout scale)")
        states = np.asarray(states, np.float64).reshape(-1, S)
        std = np.maximum(states.std(axis=0), MIN_STD)
        self.obs_mean.copy_(torch.from_numpy(states.mean(axis=0)).float())
        self.obs_std.copy_(torch.from_numpy(std).float())
        if deltas is not None:
            spread = (np.asarray(deltas, np.float64).reshape(-1, S) / std).std(axis=0)
            self.delta_scale.copy_(torch.from_numpy(np.where(spread < MIN_DELTA_SCALE, 1.0, spread)).float())

    def check_obs(self, obs: Any, name: str = "obs") -> Tensor:
        """``obs`` as a tensor of shape ``[..., *obs_shape]`` on the model's device; ``ValueError`` if not."""
        shape = self.config.obs_shape
        x = obs if isinstance(obs, Tensor) else torch.as_tensor(np.asarray(obs))
        if x.dim() < len(shape) or tuple(x.shape[x.dim() - len(shape):]) != shape:
            kind = "a state float32" if self.config.obs_type == "state" else "an image uint8"
            raise ValueError(f"{name} must have shape [..., {', '.join(map(str, shape))}] ({kind} observation of "
                             f"this {self.config.obs_type} model), got {list(x.shape)}")
        x = x.to(self.obs_mean.device)
        if x.is_floating_point():
            bad = ~torch.isfinite(x)
            if bad.any():
                where = torch.nonzero(bad)[0].tolist()
                raise ValueError(f"{name} contains NaN or inf (first at index {where}): refusing to encode it")
        return x

    def normalize_obs(self, x: Tensor) -> Tensor:
        """Model input from checked observations ``x[..., *obs_shape]``."""
        if self.config.obs_type == "state":
            return (x.float() - self.obs_mean) / self.obs_std
        return x.float().movedim(-1, -3) / 127.5 - 1.0  # [..., 3, H, W]

    def normalize_actions(self, actions: Tensor) -> Tensor:
        """Env actions ``[..., A]`` -> [-1, 1] (values outside the box are clipped first, as the env does)."""
        a = torch.minimum(torch.maximum(actions.float(), self.action_low), self.action_high)
        return (a - self.action_low) / (self.action_high - self.action_low) * 2.0 - 1.0

    def unnormalize_actions(self, actions: Tensor) -> Tensor:
        """[-1, 1] actions ``[..., A]`` -> env units."""
        return (actions.clamp(-1.0, 1.0) + 1.0) / 2.0 * (self.action_high - self.action_low) + self.action_low
