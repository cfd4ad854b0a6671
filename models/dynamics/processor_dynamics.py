"""Normalisation of the dynamics ensemble: states, actions and multi-step residuals.

Statistics live beside the weights (``normalizer.safetensors``) and are checked by key, shape and
value on load, so a checkpoint with missing or mismatched statistics refuses to run.
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import torch
from torch import Tensor

from forethought.models.dynamics.configuration_dynamics import DynamicsConfig
from forethought.models.stats_file import read_stats, save_stats

NORMALIZER_FORMAT = "forethought-dynamics-meanstd-v1"
STAT_KEYS: tuple[str, ...] = ("state", "velocity", "relative", "action", "delta")
OBJECT_KEYS: tuple[str, ...] = ("object", "object_delta")
"""Extra keys of a relational ensemble (``DynamicsConfig.relational``)."""
MIN_STD = 1e-6
"""A feature with a smaller spread (a constant, a copied entry) is only centred, not scaled."""


class DynamicsNormalizer:
    """Mean/std normalisation of the model's inputs and outputs.

    Keys: ``state[..., S]``; ``velocity[..., S]``, the step-to-step change ``s[t] - s[t-1]``;
    ``relative[..., R]``, the ``relative_pairs`` differences; ``action[..., A]``; and
    ``delta[..., F, S]``, where ``delta[:, j] = s[t+1+j] - s[t]`` is the residual the model
    predicts, with its own statistics per horizon step ``j`` since later steps move further.
    A relational ensemble adds ``object[..., I]``, one object's inputs in its own frame
    (``DynamicsEnsemble.object_features``), and ``object_delta[..., F, G - 1]``, one object's
    residuals; both pooled over the object slots, so every slot shares one scale.
    """

    def __init__(self, stats: Mapping[str, Tensor]) -> None:
        """``stats``: ``{"state.mean": [S], "state.std": [S], ..., "delta.mean": [F, S], "delta.std": [F, S]}``
        (and ``object.*``, ``object_delta.*`` for a relational ensemble)."""
        keys = STAT_KEYS + (OBJECT_KEYS if any(k.startswith("object") for k in stats) else ())
        expected = {f"{k}.{s}" for k in keys for s in ("mean", "std")}
        if set(stats) != expected:
            raise ValueError(f"dynamics normaliser stats must have exactly the keys {sorted(expected)}, got {sorted(stats)}")
        self.keys = keys
        self.stats = {k: torch.as_tensor(v, dtype=torch.float32).detach().clone() for k, v in stats.items()}
        for key in keys:
            mean, std = self.stats[f"{key}.mean"], self.stats[f"{key}.std"]
            if mean.shape != std.shape:
                raise ValueError(f"normaliser {key} mean/std shapes differ: {tuple(mean.shape)} vs {tuple(std.shape)}")
            if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
                raise ValueError(f"normaliser {key} stats contain NaN or inf")
            if (std < 0).any():
                raise ValueError(f"normaliser {key}.std is negative")
        self._std = {k: torch.where(self.stats[f"{k}.std"] < MIN_STD, 1.0, self.stats[f"{k}.std"]) for k in keys}
        self._inputs: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}

    @classmethod
    def fit(cls, features: Mapping[str, np.ndarray], valid: Mapping[str, np.ndarray]) -> DynamicsNormalizer:
        """Statistics of ``features[key][N, ...]`` over the rows where ``valid[key][N, ...]`` (a
        prefix of the feature's shape) is True; a key missing from ``valid`` uses every row.
        ``features`` holds ``STAT_KEYS``, and ``OBJECT_KEYS`` too for a relational ensemble."""
        stats = {}
        for key in STAT_KEYS + (OBJECT_KEYS if "object" in features else ()):
            x = np.asarray(features[key], np.float64)
            w = np.asarray(valid.get(key, np.ones(len(x), bool)), np.float64)
            w = w.reshape(w.shape + (1,) * (x.ndim - w.ndim))
            count = np.maximum(w.sum(0), 1.0)
            mean = (x * w).sum(0) / count
            stats[f"{key}.mean"] = torch.from_numpy(mean)
            stats[f"{key}.std"] = torch.from_numpy(np.sqrt(((x - mean) ** 2 * w).sum(0) / count))
        return cls(stats)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self.stats[f"{key}.mean"].shape)

    def normalize(self, key: str, x: Tensor) -> Tensor:
        """``x`` in env units -> zero mean, unit spread (over the fitted data)."""
        return (x - self.stats[f"{key}.mean"].to(x)) / self._std[key].to(x)

    def input_stats(self, n_obs: int, horizon: int) -> tuple[Tensor, Tensor]:
        """Mean and std ``[In]`` of the core network's inputs side by side: ``n_obs`` states,
        ``n_obs - 1`` velocities, the relative entries and ``horizon`` actions (as ``normalize``)."""
        if (n_obs, horizon) not in self._inputs:  # once: predict_deltas asks on every call
            keys = ["state"] * n_obs + ["velocity"] * (n_obs - 1) + ["relative"] + ["action"] * horizon
            self._inputs[n_obs, horizon] = (torch.cat([self.stats[f"{k}.mean"] for k in keys]),
                                            torch.cat([self._std[k] for k in keys]))
        return self._inputs[n_obs, horizon]

    def unnormalize(self, key: str, x: Tensor, entries: Tensor | None = None) -> Tensor:
        """Inverse of ``normalize``; ``entries``: ``x`` holds only these indices of the last axis."""
        mean, std = self.stats[f"{key}.mean"], self._std[key]
        if entries is not None:
            mean, std = mean[..., entries], std[..., entries]
        return x * std.to(x) + mean.to(x)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the stats to the safetensors file ``path`` (atomically)."""
        save_stats(path, self.stats, NORMALIZER_FORMAT)

    @classmethod
    def load(cls, path: str | os.PathLike[str], config: DynamicsConfig) -> DynamicsNormalizer:
        """Read stats from ``path`` and check them against the model's sizes; errors name the file."""
        norm = read_stats(path, "dynamics", cls)
        S = config.state_dim
        want = {"state": (S,), "velocity": (S,), "relative": (len(config.relative_pairs),),
                "action": (config.action_dim,), "delta": (config.horizon, S)}
        if config.relational:
            want.update(object=(config.object_input_dim,), object_delta=(config.horizon, config.object_width - 1))
        elif norm.keys != STAT_KEYS:
            raise ValueError(f"normaliser statistics {path} hold object statistics but the model's config is not "
                             "relational: the stats belong to another model")
        for key, shape in want.items():
            if norm.shape(key) != shape:
                raise ValueError(f"normaliser statistics {path} have {key} shape {list(norm.shape(key))} but the "
                                 f"model's config needs {list(shape)}: the stats belong to another model")
        return norm
