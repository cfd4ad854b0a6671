"""Pre- and post-processing of the proposer: min-max normaliser and plan-step goal encoder.

The normalisation statistics live beside the weights (``normalizer.safetensors``), never in code,
and are validated by key, width and value when loaded, so that a checkpoint with missing or
mismatched statistics refuses to run instead of silently producing garbage (lerobot#699).
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from forethought.models.proposer.configuration_proposer import ProposerConfig
from forethought.models.stats_file import read_stats, save_stats

NORMALIZER_FORMAT = "forethought-minmax-v1"
STAT_KEYS: tuple[str, ...] = ("observation", "action")
MIN_HALF_RANGE = 1e-4
"""A feature whose data range is below ``2 * MIN_HALF_RANGE`` (e.g. an always-absent block) is
only centred, not scaled, so tiny noise at run time cannot blow up."""


class MinMaxNormalizer:
    """Maps each feature of ``observation[..., S]`` and ``action[..., A]`` linearly to [-1, 1].

    ``x_norm = (x - mid) / half`` with ``mid = (max + min) / 2`` and ``half = (max - min) / 2``
    from the training data (``half = 1`` for constant features). This is Diffusion Policy's and
    LeRobot's ``MIN_MAX`` mode; it keeps training actions inside ``clip_sample``'s [-1, 1].
    """

    def __init__(self, stats: Mapping[str, torch.Tensor]) -> None:
        """``stats``: ``{"observation.min": [S], "observation.max": [S], "action.min": [A], "action.max": [A]}``."""
        expected = {f"{k}.{s}" for k in STAT_KEYS for s in ("min", "max")}
        if set(stats) != expected:
            raise ValueError(
                f"normaliser stats must have exactly the keys {sorted(expected)}, got {sorted(stats)}"
            )
        self.stats = {k: torch.as_tensor(v, dtype=torch.float32).detach().clone() for k, v in stats.items()}
        for key in STAT_KEYS:
            lo, hi = self.stats[f"{key}.min"], self.stats[f"{key}.max"]
            if lo.ndim != 1 or lo.shape != hi.shape:
                raise ValueError(f"normaliser {key} min/max must be 1-D of one width, got {tuple(lo.shape)}/{tuple(hi.shape)}")
            if not (torch.isfinite(lo).all() and torch.isfinite(hi).all()):
                raise ValueError(f"normaliser {key} stats contain NaN or inf")
            if (hi < lo).any():
                raise ValueError(f"normaliser {key}.max is below {key}.min at indices {torch.nonzero(hi < lo).flatten().tolist()}")
        self._mid = {k: (self.stats[f"{k}.max"] + self.stats[f"{k}.min"]) / 2 for k in STAT_KEYS}
        half = {k: (self.stats[f"{k}.max"] - self.stats[f"{k}.min"]) / 2 for k in STAT_KEYS}
        self._half = {k: torch.where(h < MIN_HALF_RANGE, torch.ones_like(h), h) for k, h in half.items()}

    @classmethod
    def fit(cls, observations: np.ndarray | torch.Tensor, actions: np.ndarray | torch.Tensor) -> MinMaxNormalizer:
        """Statistics of ``observations[N, S]`` and ``actions[N, A]``."""
        obs = torch.as_tensor(np.asarray(observations), dtype=torch.float32)
        act = torch.as_tensor(np.asarray(actions), dtype=torch.float32)
        if obs.ndim != 2 or act.ndim != 2 or len(obs) == 0 or len(act) == 0:
            raise ValueError(f"fit needs observations[N, S] and actions[N, A], got {tuple(obs.shape)} and {tuple(act.shape)}")
        return cls({
            "observation.min": obs.amin(0), "observation.max": obs.amax(0),
            "action.min": act.amin(0), "action.max": act.amax(0),
        })

    def width(self, key: str) -> int:
        return int(self.stats[f"{key}.min"].shape[0])

    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """``x[..., W]`` in env units -> [-1, 1] (for data inside the fitted range)."""
        return (x - self._mid[key].to(x)) / self._half[key].to(x)

    def unnormalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """Inverse of ``normalize``."""
        return x * self._half[key].to(x) + self._mid[key].to(x)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the stats to the safetensors file ``path`` (atomically)."""
        save_stats(path, self.stats, NORMALIZER_FORMAT)

    @classmethod
    def load(cls, path: str | os.PathLike[str], config: ProposerConfig) -> MinMaxNormalizer:
        """Read stats from ``path`` and check them against the model's widths; errors name the file."""
        norm = read_stats(path, "proposer", cls)
        for key, want in (("observation", config.obs_dim), ("action", config.action_dim)):
            if norm.width(key) != want:
                raise ValueError(
                    f"normaliser statistics {path} are for {key} width {norm.width(key)} but the model's config "
                    f"says {want}: the stats belong to another model or data set"
                )
        return norm


class GoalEncoder:
    """Encodes a plan step (``forethought.sim.scene``'s schema) as ``float32[G]``, or "no goal".

    Layout: ``[present | skill one-hot | object one-hot | target region one-hot |
    target block one-hot | target xy flag, x, y]``; the xy slot holds a reach point or a
    region's centre (``region_xy``). "No goal" is all zeros, which is also what goal dropout
    feeds during training, so ``goal=None`` asks for unconditional proposals.
    """

    def __init__(
        self,
        skills: Sequence[str],
        objects: Sequence[str],
        regions: Sequence[str],
        region_xy: Sequence[tuple[float, float]],
    ) -> None:
        self.skills, self.objects, self.regions = tuple(skills), tuple(objects), tuple(regions)
        assert len(region_xy) == len(self.regions)
        self.region_xy = {r: (float(x), float(y)) for r, (x, y) in zip(self.regions, region_xy)}
        self._skill = 1
        self._object = self._skill + len(self.skills)
        self._region = self._object + len(self.objects)
        self._block = self._region + len(self.regions)
        self._point = self._block + len(self.objects)
        self.width = self._point + 3

    def _index(self, field: str, value: Any, vocab: tuple[str, ...], step: Mapping[str, Any]) -> int:
        if value not in vocab:
            raise ValueError(
                f"goal {field} {value!r} in plan step {dict(step)} is not one this model knows: valid {field}s "
                f"are {list(vocab)}"
            )
        return vocab.index(value)

    def encode(self, step: Mapping[str, Any] | None) -> np.ndarray:
        """``float32[G]`` for plan step ``step`` (zeros for ``None``)."""
        out = np.zeros(self.width, np.float32)
        if step is None:
            return out
        if not isinstance(step, Mapping):
            raise ValueError(f"goal must be a plan-step dict or None, got {type(step).__name__}")
        out[0] = 1.0
        out[self._skill + self._index("skill", step.get("skill"), self.skills, step)] = 1.0
        if "object" in step:
            out[self._object + self._index("object", step["object"], self.objects, step)] = 1.0
        target = step.get("target")
        if isinstance(target, str):
            if target in self.regions:
                out[self._region + self.regions.index(target)] = 1.0
                out[self._point :] = (1.0, *self.region_xy[target])
            else:
                out[self._block + self._index("target", target, self.regions + self.objects, step) - len(self.regions)] = 1.0
        elif target is not None:
            xy = np.asarray(target, dtype=np.float64)
            if xy.shape != (2,) or not np.all(np.isfinite(xy)):
                raise ValueError(f"goal target must be a name or a finite [x, y], got {target!r}")
            out[self._point :] = (1.0, xy[0], xy[1])
        return out

    def encode_many(self, steps: Sequence[Mapping[str, Any] | None]) -> np.ndarray:
        """``float32[B, G]``, one row per step."""
        return np.stack([self.encode(s) for s in steps]) if steps else np.zeros((0, self.width), np.float32)
