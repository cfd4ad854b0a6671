"""MuJoCo tasks behind the gymnasium API: envs, scripted experts, rendering.

Importing this package is light (no gymnasium, MuJoCo or pyarrow): it holds the env ids, one
definition each, and :func:`task_env_id`. Importing :mod:`forethought.sim.envs` registers the
envs with gymnasium:

- ``forethought/PushBlocks-v0`` (:class:`forethought.sim.push_blocks.PushBlocksEnv`);
- ``forethought/PushBlocksShifted-v0`` (:func:`forethought.sim.perturb.make_shifted`);
- ``forethought/Reacher-v5`` and ``forethought/Pusher-v5`` (:mod:`forethought.sim.adapters`).

Without the import, ``gym.make("forethought.sim.envs:forethought/PushBlocks-v0")`` imports it for you.
"""

from __future__ import annotations

PUSH_BLOCKS_ID = "forethought/PushBlocks-v0"
SHIFTED_ID = "forethought/PushBlocksShifted-v0"
"""PushBlocks with heavier blocks, a slipperier table and a weaker motor (:mod:`forethought.sim.perturb`)."""
REACHER_ID = "forethought/Reacher-v5"
PUSHER_ID = "forethought/Pusher-v5"

SAME_TASKS_AS: dict[str, str] = {SHIFTED_ID: PUSH_BLOCKS_ID}
"""Env id -> the env whose tasks, observation layout and expert it shares (only its physics differ)."""


def task_env_id(env_id: str | None) -> str | None:
    """The env id that fixes ``env_id``'s tasks and observation: itself, or the env it changes the physics of."""
    return SAME_TASKS_AS.get(env_id or "", env_id)
