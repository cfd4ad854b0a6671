"""Registers forethought's envs with gymnasium: importing this module is all it takes.

| id | entry point | time limit (steps) | reward threshold |
|---|---|---|---|
| ``forethought/PushBlocks-v0`` | ``push_blocks:PushBlocksEnv`` | 200 | - |
| ``forethought/Reacher-v5`` | ``adapters:ReacherGoalEnv`` | 50 | -3.75 |
| ``forethought/Pusher-v5`` | ``adapters:PusherGoalEnv`` | 100 | 0.0 |
| ``forethought/PushBlocksShifted-v0`` | ``perturb:make_shifted`` | 200 | - |

The adapters' limits and thresholds are the stock ones; every reward weight is passed as a
registration kwarg, so ``gym.make(id).spec.kwargs`` shows what is used::

    import gymnasium as gym
    import forethought.sim.envs  # noqa: F401  (registers the forethought/* ids)

    env = gym.make("forethought/PushBlocks-v0", n_blocks=3)

Gymnasium 1.x has no plugin entry points, so the import is explicit; ``gym.make`` also imports
the module named before a colon: ``gym.make("forethought.sim.envs:forethought/PushBlocks-v0")``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from forethought.sim import PUSH_BLOCKS_ID, PUSHER_ID, REACHER_ID, SHIFTED_ID
from forethought.sim.adapters import PUSHER_REWARD_WEIGHTS, REACHER_REWARD_WEIGHTS

SPECS: dict[str, dict[str, Any]] = {
    PUSH_BLOCKS_ID: {"entry_point": "forethought.sim.push_blocks:PushBlocksEnv", "max_episode_steps": 200},
    REACHER_ID: {"entry_point": "forethought.sim.adapters:ReacherGoalEnv", "max_episode_steps": 50,
                 "reward_threshold": -3.75, "kwargs": dict(REACHER_REWARD_WEIGHTS)},
    PUSHER_ID: {"entry_point": "forethought.sim.adapters:PusherGoalEnv", "max_episode_steps": 100,
                "reward_threshold": 0.0, "kwargs": dict(PUSHER_REWARD_WEIGHTS)},
    SHIFTED_ID: {"entry_point": "forethought.sim.perturb:make_shifted", "max_episode_steps": 200},
}
"""Env id -> its ``gymnasium.register`` arguments (the table above)."""


def register_envs() -> None:
    """Register every id of ``SPECS`` with gymnasium (idempotent)."""
    for env_id, spec in SPECS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, **spec)


register_envs()
