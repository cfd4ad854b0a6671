"""MuJoCo tasks behind the gymnasium API: envs, scripted experts, rendering.

Importing ``forethought.sim`` registers the envs with gymnasium:

- ``forethought/PushBlocks-v0`` (:class:`forethought.sim.push_blocks.PushBlocksEnv`);
- the adapters in :mod:`forethought.sim.adapters` (``forethought/Reacher-v5``, ``forethought/Pusher-v5``).

Without the import, ``gym.make("forethought.sim:forethought/PushBlocks-v0")`` imports it for you.
"""

from __future__ import annotations

import gymnasium as gym

PUSH_BLOCKS_ID = "forethought/PushBlocks-v0"


def register_envs() -> None:
    """Register this package's envs with gymnasium (idempotent)."""
    if PUSH_BLOCKS_ID not in gym.registry:
        gym.register(
            id=PUSH_BLOCKS_ID,
            entry_point="forethought.sim.push_blocks:PushBlocksEnv",
            max_episode_steps=200,
        )
    from forethought.sim.adapters import register_adapters

    register_adapters()


register_envs()
from forethought.sim.perturb import SHIFTED_ID  # noqa: E402  (registers forethought/PushBlocksShifted-v0)

SAME_TASKS_AS: dict[str, str] = {SHIFTED_ID: PUSH_BLOCKS_ID}
"""Env id -> the env whose tasks, observation layout and expert it shares (only its physics differ)."""


def task_env_id(env_id: str | None) -> str | None:
    """The env id that fixes ``env_id``'s tasks and observation: itself, or the env it changes the physics of."""
    return SAME_TASKS_AS.get(env_id or "", env_id)
