"""Presets and state layouts of the learned dynamics ensemble (``DynamicsEnsemble``).

The model's own settings are its constructor arguments (``@register_to_config``, saved to
``config.json``); this file holds what ``forethought train dynamics --config NAME`` adds on top of
the data: named presets, and the per-env state layout (which entries are copied unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from forethought.sim import scene, task_env_id

PUSH_BLOCKS_ID = "forethought/PushBlocks-v0"
REACHER_ID = "forethought/Reacher-v5"


@dataclass(frozen=True)
class StateLayout:
    """Entries of the state that the model copies instead of predicting.

    Attributes:
        passthrough_dims: entries that never change within an episode (a presence flag, the
            Reacher goal); the prediction copies the current value.
        presence_groups: ``(flag, d1, d2, ...)`` per object slot: when entry ``flag`` is below
            0.5 (object absent) entries ``d1, d2, ...`` are copied too (they hold zeros).
        relative_pairs: ``(a, b)`` pairs whose difference ``s[a] - s[b]`` is an extra input (an
            object's position relative to the pusher, where contacts happen).
    """

    passthrough_dims: tuple[int, ...] = ()
    presence_groups: tuple[tuple[int, ...], ...] = ()
    relative_pairs: tuple[tuple[int, int], ...] = ()


def _pushblocks_layout() -> StateLayout:
    slots = [scene.block_slice(b) for b in scene.BLOCK_NAMES]
    return StateLayout(
        passthrough_dims=tuple(s.start for s in slots),
        presence_groups=tuple(tuple(range(s.start, s.stop)) for s in slots),
        relative_pairs=tuple((s.start + 1 + i, i) for s in slots for i in (0, 1)),  # block xy - pusher xy
    )


STATE_LAYOUTS: dict[str, StateLayout] = {
    PUSH_BLOCKS_ID: _pushblocks_layout(),
    REACHER_ID: StateLayout(passthrough_dims=(4, 5)),  # goal_x, goal_y
}
"""env id -> the layout of its observation; envs not listed predict every entry."""


def state_layout(env_id: str | None) -> StateLayout:
    """The layout for data from ``env_id`` (an all-predicted layout for unknown envs)."""
    return STATE_LAYOUTS.get(task_env_id(env_id) or "", StateLayout())


@dataclass(frozen=True)
class DynamicsPreset:
    """A named recipe: model settings the data does not fix, and training settings."""

    description: str
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, DynamicsPreset] = {
    "tiny": DynamicsPreset(
        "seconds-long run for tests and smoke checks",
        model={"ensemble_size": 3, "hidden_dim": 32, "num_layers": 2},
        train={"steps": 150, "batch_size": 64, "lr": 3e-3, "weight_decay": 1e-4, "warmup_steps": 10,
               "checkpoint_every": 50, "log_every": 25, "ema_max_decay": 0.99},
    ),
    "pushblocks": DynamicsPreset(
        "PushBlocks (1-3 blocks, every task), 5 members x 3 hidden layers of 160 (about 2 MB float32), "
        "4 steps per call chained to 16",
        model={"ensemble_size": 5, "hidden_dim": 160, "num_layers": 3, "horizon": 4, "rollout_horizon": 16},
        train={"steps": 8000, "batch_size": 128, "lr": 1e-3, "weight_decay": 1e-2, "warmup_steps": 200,
               "checkpoint_every": 1000, "ema_max_decay": 0.999},
    ),
    "reacher": DynamicsPreset(
        "Reacher-v5, 5 members x 3 hidden layers of 160 (about 2 MB float32), 4 steps per call chained to 16",
        model={"ensemble_size": 5, "hidden_dim": 160, "num_layers": 3, "horizon": 4, "rollout_horizon": 16},
        train={"steps": 8000, "batch_size": 128, "lr": 1e-3, "weight_decay": 1e-2, "warmup_steps": 200,
               "checkpoint_every": 1000, "ema_max_decay": 0.999},
    ),
    "gpu": DynamicsPreset(
        "for a GPU host: 5 members x 4 hidden layers of 512, large batches; too big to ship",
        model={"ensemble_size": 5, "hidden_dim": 512, "num_layers": 4, "horizon": 4, "rollout_horizon": 16},
        train={"steps": 50_000, "batch_size": 1024, "lr": 1e-3, "weight_decay": 1e-2, "warmup_steps": 1000,
               "checkpoint_every": 5000, "ema_max_decay": 0.999},
    ),
}


def get_preset(name: str) -> DynamicsPreset:
    """The preset called ``name``, else ``ValueError`` listing the valid names."""
    if name not in PRESETS:
        raise ValueError(f"unknown dynamics config {name!r}: valid configs are {sorted(PRESETS)}")
    return PRESETS[name]
