"""Adapters for the standard Gymnasium MuJoCo envs ``Reacher-v5`` and ``Pusher-v5``.

The stock envs are fine benchmarks but awkward to drive from a plan: their goal cannot be set,
they report no success flag, and one of their reward defaults is not what their documentation
says. The adapters here subclass the stock envs, keep their dynamics, observations and (with the
default arguments) their reward and random start states bit for bit, and add:

- a settable goal (``reset(options=...)`` and a setter for mid-episode changes);
- ``info["is_success"]`` and ``info["distance"]`` with the tolerance stated in the docstring;
- every reward weight passed explicitly, at registration and in the constructor.

Importing :mod:`forethought.sim.envs` registers them::

    import gymnasium as gym
    import forethought.sim.envs  # noqa: F401  (registers the forethought/* ids)

    env = gym.make("forethought/Reacher-v5")
    obs, info = env.reset(seed=0, options={"task": {"skill": "reach", "target": [0.1, -0.1]}})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.pusher_v5 import PusherEnv
from gymnasium.envs.mujoco.reacher_v5 import ReacherEnv

# Reward weights, passed explicitly. Gymnasium 1.x documents `reward_control_weight = 0.1` for
# Reacher-v5 but its constructor defaults to 1 (the v4 behaviour, on which `reward_threshold` and
# published Reacher results rest); we keep 1 and say so, instead of inheriting either silently.
REACHER_REWARD_WEIGHTS: dict[str, float] = {"reward_dist_weight": 1.0, "reward_control_weight": 1.0}
PUSHER_REWARD_WEIGHTS: dict[str, float] = {
    "reward_near_weight": 0.5,
    "reward_dist_weight": 1.0,
    "reward_control_weight": 0.1,
}

# Reacher geometry (reacher.xml): link0 is 0.1 m, the fingertip sits 0.11 m beyond joint1.
REACHER_LINKS: tuple[float, float] = (0.1, 0.11)
REACHER_GOAL_RADIUS = 0.2
"""Largest goal distance from the arm's base (m) accepted; the stock env samples inside it."""
REACHER_SUCCESS_TOL = 0.01
"""Reacher succeeds when the fingertip is within this distance (m) of the goal."""

PUSHER_DEFAULT_GOAL: tuple[float, float] = (0.45, -0.05)
"""The stock Pusher-v5 goal, world frame (m): the goal body's rest position."""
PUSHER_GOAL_LOW: tuple[float, float] = (0.1, -0.5)
PUSHER_GOAL_HIGH: tuple[float, float] = (0.7, 0.1)
"""Accepted goals lie in this world-frame box (m), around the object's start region and inside
the arm's reach at table height."""
PUSHER_SUCCESS_TOL = 0.05
"""Pusher succeeds when the object's centre is within this planar distance (m) of the goal's
centre, i.e. the object (radius 0.05 m) covers the goal's centre."""
PUSHER_MIN_START_DIST = 0.17
"""The stock env re-samples the object start until it is farther than this (m) from the goal."""


def _xy(value: Any, field: str) -> np.ndarray:
    """``value`` as a finite float64 ``[x, y]``, else ``ValueError`` naming ``field``."""
    try:
        xy = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{field} must be [x, y] numbers, got {value!r}") from None
    if xy.shape != (2,) or not np.all(np.isfinite(xy)):
        raise ValueError(f"{field} must be a finite [x, y], got {value!r}")
    return xy


def _check_options(options: Mapping[str, Any] | None, valid: tuple[str, ...]) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ValueError(f"reset options must be a dict, got {type(options).__name__}")
    extra = set(options) - set(valid)
    if extra:
        raise ValueError(f"unknown reset options {sorted(extra)}: valid keys are {list(valid)}")
    return dict(options)


class _GoalInfo:
    """What both adapters add: a checked ``success_tolerance``, and the subclass's ``_goal_info()``
    (``is_success``, ``distance``, ...) in the info of ``reset`` and ``step``."""

    success_tolerance: float
    _goal_info: Callable[[], dict[str, Any]]
    """Each adapter's goal terms for ``info`` (``is_success``, ``distance``, ...)."""

    def _set_success_tolerance(self, tolerance: float) -> None:
        if not (np.isfinite(tolerance) and tolerance > 0):
            raise ValueError(f"success_tolerance must be a positive finite distance (m), got {tolerance!r}")
        self.success_tolerance = float(tolerance)

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        info.update(self._goal_info())
        return obs, reward, terminated, truncated, info

    def _get_reset_info(self) -> dict[str, Any]:
        return self._goal_info()


class ReacherGoalEnv(_GoalInfo, ReacherEnv):
    r"""``Reacher-v5`` with a settable goal, a success flag and explicit reward weights.

    ## Description
    The stock two-link planar arm (``reacher.xml``, links 0.1 m and 0.11 m, reach 0.21 m): move
    the fingertip to a goal. Dynamics, action space (torques in ``[-1, 1]``, gear 200),
    observation layout (10 floats, see below), ``dt = 0.02`` s and the 50-step time limit are the
    stock ones.

    ## Observation Space
    | index | observation | unit |
    |---|---|---|
    | 0, 1 | cos(joint0), cos(joint1) | - |
    | 2, 3 | sin(joint0), sin(joint1) | - |
    | 4, 5 | goal x, y (world frame, base at the origin) | m |
    | 6, 7 | joint0, joint1 angular velocity | rad/s |
    | 8, 9 | fingertip - goal, x and y | m |

    ## Goal (what changed)
    The plan step ``{"skill": "reach", "target": [x, y]}`` (``forethought.sim.scene``'s schema)
    sets the goal, through ``reset(options={"task": step})`` or, mid-episode,
    ``set_task(step)``. The target must be finite with ``|target| <= 0.2`` m
    (``REACHER_GOAL_RADIUS``, the stock sampling radius, inside the 0.21 m reach); anything else
    raises ``ValueError``. Without a task the goal is drawn from ``self.np_random`` exactly as
    the stock env does, so the same seed gives the same episode as ``Reacher-v5``.

    ## Rewards
    ``reward = reward_dist + reward_ctrl`` as in the stock env:
    ``reward_dist = -w_dist * |fingertip - goal|`` (3-D, z is always 0) and
    ``reward_ctrl = -w_control * |action|^2``, each in ``info``. Both weights are passed
    explicitly (``REACHER_REWARD_WEIGHTS``): ``w_dist = 1`` and ``w_control = 1``. Gymnasium's
    Reacher-v5 docstring says ``reward_control_weight`` defaults to 0.1, but its constructor
    uses 1 (as v4 did); 1 is what stock Reacher-v5 actually computes.

    ## Info
    | key | meaning |
    |---|---|
    | ``is_success`` | fingertip within ``REACHER_SUCCESS_TOL`` = 0.01 m of the goal |
    | ``distance`` | planar fingertip-goal distance (m) |
    | ``task`` | the active plan step, ``{"skill": "reach", "target": [x, y]}`` |
    | ``reward_dist``, ``reward_ctrl`` | the reward terms (``step`` only) |

    ``reset`` returns the same ``is_success``, ``distance`` and ``task``.

    ## Arguments
    | Parameter | Type | Default | Description |
    |---|---|---|---|
    | ``reward_dist_weight`` | float | 1 | weight of ``reward_dist`` |
    | ``reward_control_weight`` | float | 1 | weight of ``reward_ctrl`` |
    | ``success_tolerance`` | float | 0.01 | ``is_success`` distance (m) |

    Other keyword arguments go to the stock ``ReacherEnv``.

    ## Version History
    * forethought/Reacher-v5: settable goal, ``is_success``/``distance``/``task`` in ``info``,
      explicit reward weights; based on Gymnasium 1.4 Reacher-v5.
    """

    def __init__(
        self,
        reward_dist_weight: float = REACHER_REWARD_WEIGHTS["reward_dist_weight"],
        reward_control_weight: float = REACHER_REWARD_WEIGHTS["reward_control_weight"],
        success_tolerance: float = REACHER_SUCCESS_TOL,
        **kwargs: Any,
    ):
        self._set_success_tolerance(success_tolerance)
        self._requested_goal: np.ndarray | None = None
        super().__init__(
            reward_dist_weight=reward_dist_weight, reward_control_weight=reward_control_weight, **kwargs
        )
        # the stock EzPickle call records positional stock args; record ours so pickling rebuilds this class
        utils.EzPickle.__init__(
            self,
            reward_dist_weight=reward_dist_weight,
            reward_control_weight=reward_control_weight,
            success_tolerance=success_tolerance,
            **kwargs,
        )

    # -- goal ---------------------------------------------------------------------------------
    @staticmethod
    def validate_task(step: Mapping[str, Any]) -> dict[str, Any]:
        """Check a reach step and return it normalised; ``ValueError`` naming the problem."""
        if not isinstance(step, Mapping):
            raise ValueError(f"a Reacher task must be a plan-step dict, got {type(step).__name__}")
        if step.get("skill") != "reach":
            raise ValueError(f"Reacher only supports skill 'reach', got {step.get('skill')!r}")
        extra = set(step) - {"skill", "target"}
        if extra:
            raise ValueError(f"unexpected keys in reach step: {sorted(extra)}")
        xy = _xy(step.get("target"), "reach target")
        r = float(np.linalg.norm(xy))
        if r > REACHER_GOAL_RADIUS:
            raise ValueError(
                f"reach target {xy.tolist()} is {r:.3f} m from the base: Reacher accepts goals within "
                f"{REACHER_GOAL_RADIUS} m (arm length {sum(REACHER_LINKS):.2f} m)"
            )
        return {"skill": "reach", "target": xy.tolist()}

    @property
    def task(self) -> dict[str, Any]:
        """The active plan step, built from the goal in the simulator state."""
        return {"skill": "reach", "target": self.data.qpos[2:4].tolist()}

    def set_task(self, step: Mapping[str, Any]) -> None:
        """Move the goal now (mid-episode); the arm keeps its state."""
        xy = np.asarray(self.validate_task(step)["target"])
        qpos, qvel = self.data.qpos.copy(), self.data.qvel.copy()
        qpos[2:4], qvel[2:4] = xy, 0.0
        self.set_state(qpos, qvel)
        self.goal = xy

    # -- gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None):
        """Reset; ``options={"task": {"skill": "reach", "target": [x, y]}}`` fixes the goal."""
        opts = _check_options(options, ("task",))
        self._requested_goal = (
            np.asarray(self.validate_task(opts["task"])["target"]) if "task" in opts else None
        )
        try:
            return super().reset(seed=seed, options=options)
        finally:
            self._requested_goal = None

    def reset_model(self) -> np.ndarray:
        if self._requested_goal is None:
            return super().reset_model()  # stock draws, so seeds match Reacher-v5
        qpos = self.np_random.uniform(low=-0.1, high=0.1, size=self.model.nq) + self.init_qpos
        self.goal = self._requested_goal.copy()
        qpos[-2:] = self.goal
        qvel = self.init_qvel + self.np_random.uniform(low=-0.005, high=0.005, size=self.model.nv)
        qvel[-2:] = 0
        self.set_state(qpos, qvel)
        return self._get_obs()

    def _goal_info(self) -> dict[str, Any]:
        distance = float(np.linalg.norm((self.get_body_com("fingertip") - self.get_body_com("target"))[:2]))
        return {"is_success": distance <= self.success_tolerance, "distance": distance, "task": self.task}


class PusherGoalEnv(_GoalInfo, PusherEnv):
    r"""``Pusher-v5`` with a settable goal, a success flag and explicit reward weights.

    ## Description
    The stock 7-DoF arm pushing a cylinder (radius 0.05 m) to a goal disc (radius 0.08 m).
    Dynamics, action space (7 torques in ``[-2, 2]``), the 23-float observation (joint angles,
    joint velocities, then the 3-D positions of ``tips_arm``, ``object`` and ``goal``),
    ``dt = 0.05`` s and the 100-step time limit are the stock ones.

    ## Goal (what changed)
    The stock env ignores ``reset`` options and always puts the goal at (0.45, -0.05). Here the
    goal is an ``[x, y]`` in the world frame, the frame of ``obs[20:22]``:

    - ``PusherGoalEnv(goal=[x, y])`` sets the default goal (the stock one if omitted);
    - ``reset(options={"goal": [x, y]})`` sets it for that episode;
    - ``set_goal([x, y])`` moves it mid-episode.

    Goals must lie in ``PUSHER_GOAL_LOW`` .. ``PUSHER_GOAL_HIGH`` = x in [0.1, 0.7],
    y in [-0.5, 0.1] (the object's start region, inside the arm's reach); anything else raises
    ``ValueError``. The object start is drawn as in the stock env and re-drawn while it is within
    0.17 m of the goal; with the stock goal, the same seed gives the same episode as
    ``Pusher-v5``. (Note: the stock code writes the first draw, in [-0.3, 0], to the object's
    *y* slide and the second, in [-0.2, 0.2], to *x*; we keep that.) The stock
    ``reset_model`` also writes into ``init_qpos`` in place; this one works on a copy.

    ## Rewards
    ``reward = reward_dist + reward_ctrl + reward_near`` as in the stock env, each in ``info``,
    with the weights passed explicitly (``PUSHER_REWARD_WEIGHTS``): ``w_near = 0.5``,
    ``w_dist = 1``, ``w_control = 0.1``. The stock distances are 3-D and include the constant
    0.048 m height difference between the object and the goal; ``info["distance"]`` is planar.

    ## Info
    | key | meaning |
    |---|---|
    | ``is_success`` | object centre within ``PUSHER_SUCCESS_TOL`` = 0.05 m of the goal (planar) |
    | ``distance`` | planar object-goal distance (m) |
    | ``goal`` | the active goal ``[x, y]`` (m, world frame) |
    | ``reward_dist``, ``reward_ctrl``, ``reward_near`` | the reward terms (``step`` only) |

    ## Arguments
    | Parameter | Type | Default | Description |
    |---|---|---|---|
    | ``goal`` | [float, float] | (0.45, -0.05) | default goal, world frame (m) |
    | ``reward_near_weight`` | float | 0.5 | weight of ``reward_near`` |
    | ``reward_dist_weight`` | float | 1 | weight of ``reward_dist`` |
    | ``reward_control_weight`` | float | 0.1 | weight of ``reward_ctrl`` |
    | ``success_tolerance`` | float | 0.05 | ``is_success`` distance (m) |

    ## Version History
    * forethought/Pusher-v5: settable goal, ``is_success``/``distance``/``goal`` in ``info``,
      explicit reward weights, no in-place ``init_qpos`` write; based on Gymnasium 1.4 Pusher-v5.
    """

    def __init__(
        self,
        goal: Any = PUSHER_DEFAULT_GOAL,
        reward_near_weight: float = PUSHER_REWARD_WEIGHTS["reward_near_weight"],
        reward_dist_weight: float = PUSHER_REWARD_WEIGHTS["reward_dist_weight"],
        reward_control_weight: float = PUSHER_REWARD_WEIGHTS["reward_control_weight"],
        success_tolerance: float = PUSHER_SUCCESS_TOL,
        **kwargs: Any,
    ):
        self._set_success_tolerance(success_tolerance)
        self.default_goal = self.validate_goal(goal)
        self._episode_goal = self.default_goal.copy()
        super().__init__(
            reward_near_weight=reward_near_weight,
            reward_dist_weight=reward_dist_weight,
            reward_control_weight=reward_control_weight,
            **kwargs,
        )
        utils.EzPickle.__init__(
            self,
            goal=self.default_goal.tolist(),
            reward_near_weight=reward_near_weight,
            reward_dist_weight=reward_dist_weight,
            reward_control_weight=reward_control_weight,
            success_tolerance=success_tolerance,
            **kwargs,
        )
        self.init_qpos = self.init_qpos.copy()  # the stock reset_model aliases and mutates it
        self._init_qpos0 = self.init_qpos.copy()
        joints = ("obj_slidex", "obj_slidey", "goal_slidex", "goal_slidey")
        adr = {n: int(self.model.jnt_qposadr[self.model.joint(n).id]) for n in joints}
        self._obj_adr = (adr["obj_slidex"], adr["obj_slidey"])
        self._goal_adr = (adr["goal_slidex"], adr["goal_slidey"])
        self._obj_rest = self.model.body("object").pos[:2].copy()
        self._goal_rest = self.model.body("goal").pos[:2].copy()

    @staticmethod
    def validate_goal(goal: Any) -> np.ndarray:
        """``goal`` as a float64 ``[x, y]`` inside the accepted box, else ``ValueError``."""
        xy = _xy(goal, "Pusher goal")
        if np.any(xy < PUSHER_GOAL_LOW) or np.any(xy > PUSHER_GOAL_HIGH):
            raise ValueError(
                f"Pusher goal {xy.tolist()} is outside the accepted box x in "
                f"[{PUSHER_GOAL_LOW[0]}, {PUSHER_GOAL_HIGH[0]}], y in [{PUSHER_GOAL_LOW[1]}, {PUSHER_GOAL_HIGH[1]}] (m)"
            )
        return xy

    @property
    def goal(self) -> np.ndarray:
        """The active goal ``[x, y]`` (m, world frame), read from the simulator state."""
        q = self.data.qpos
        return self._goal_rest + np.array([q[self._goal_adr[0]], q[self._goal_adr[1]]])

    def set_goal(self, goal: Any) -> None:
        """Move the goal now (mid-episode); arm and object keep their state."""
        xy = self.validate_goal(goal)
        qpos, qvel = self.data.qpos.copy(), self.data.qvel.copy()
        off = xy - self._goal_rest
        qpos[self._goal_adr[0]], qpos[self._goal_adr[1]] = off
        qvel[-2:] = 0.0
        self.set_state(qpos, qvel)
        self._episode_goal = xy

    def reset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None):
        """Reset; ``options={"goal": [x, y]}`` sets this episode's goal (world frame, m)."""
        opts = _check_options(options, ("goal",))
        self._episode_goal = self.validate_goal(opts["goal"]) if "goal" in opts else self.default_goal.copy()
        return super().reset(seed=seed, options=options)

    def reset_model(self) -> np.ndarray:
        # Same draws, in the same order, as the stock reset_model.
        qpos = self._init_qpos0.copy()
        while True:
            cylinder = np.concatenate(
                [self.np_random.uniform(low=-0.3, high=0, size=1), self.np_random.uniform(low=-0.2, high=0.2, size=1)]
            )
            # stock layout: qpos[-4] is obj_slidey, qpos[-3] is obj_slidex
            obj_xy = self._obj_rest + np.array([cylinder[1], cylinder[0]])
            if np.linalg.norm(obj_xy - self._episode_goal) > PUSHER_MIN_START_DIST:
                break
        qpos[-4:-2] = cylinder
        goal_off = self._episode_goal - self._goal_rest
        qpos[self._goal_adr[0]], qpos[self._goal_adr[1]] = goal_off
        qvel = self.init_qvel + self.np_random.uniform(low=-0.005, high=0.005, size=self.model.nv)
        qvel[-4:] = 0
        self.set_state(qpos, qvel)
        return self._get_obs()

    def _goal_info(self) -> dict[str, Any]:
        distance = float(np.linalg.norm((self.get_body_com("object") - self.get_body_com("goal"))[:2]))
        return {"is_success": distance <= self.success_tolerance, "distance": distance, "goal": self.goal.tolist()}

