"""``forethought/PushBlocksShifted-v0``: PushBlocks with changed physics, for the test-time adaptation demo.

The same task, scene and observation as ``forethought/PushBlocks-v0``, with heavier blocks, a
slipperier table and a weaker pusher motor (the wrappers of ``forethought.sim.wrappers``):

| kwarg | default | scales |
|---|---|---|
| ``mass_scale`` | 3.0 | block ``body_mass`` and ``body_inertia`` |
| ``friction_scale`` | 0.3 | every geom's sliding ``geom_friction`` and the blocks' joint ``frictionloss`` |
| ``gear_scale`` | 0.4 | the pusher's ``actuator_gear`` (its maximum force) |

Any other kwarg goes to ``PushBlocksEnv``. Through ``forethought.sim.task_env_id`` the id
shares PushBlocks' scripted expert, play waypoints, block-count draw and observation labels, so
``forethought collect`` records it like the nominal env::

    forethought collect --env forethought/PushBlocksShifted-v0 --episodes 20 --noise 0.1 \\
        --play-fraction 0.5 --seed 500 --out data/dyn/shifted.parquet
    forethought collect --env forethought/PushBlocksShifted-v0 --episodes 20 --out data/x.parquet \\
        --env-kwargs '{"mass_scale": 5.0, "gear_scale": 1.0}'
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from forethought.sim.push_blocks import PushBlocksEnv
from forethought.sim.wrappers import ActuatorGearScale, BodyMassScale, GeomFrictionScale

SHIFT: dict[str, float] = {"mass_scale": 3.0, "friction_scale": 0.3, "gear_scale": 0.4}
"""The default change of ``forethought.sim.SHIFTED_ID`` (issue #4's dynamics-change benchmark)."""


def make_shifted(
    mass_scale: float = SHIFT["mass_scale"],
    friction_scale: float = SHIFT["friction_scale"],
    gear_scale: float = SHIFT["gear_scale"],
    **kwargs: Any,
) -> gym.Env:
    """A ``PushBlocksEnv(**kwargs)`` with its physics scaled (see the module table)."""
    env: gym.Env = PushBlocksEnv(**kwargs)
    env = BodyMassScale(env, mass_scale)
    env = GeomFrictionScale(env, friction_scale)
    return ActuatorGearScale(env, gear_scale)

