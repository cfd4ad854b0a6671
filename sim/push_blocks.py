"""PushBlocks: push coloured blocks into named table regions with a planar pusher (MuJoCo)."""

from __future__ import annotations

import math
import os
from typing import Any, Mapping

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import utils
from gymnasium.spaces import Box

from forethought.sim import scene
from forethought.sim.scene import BLOCK_NAMES, OBS_DIM, PUSHER_JOINTS, REGION_NAMES, WORKSPACE_HALF, wrap_yaw

DEFAULT_XML = os.path.join(os.path.dirname(__file__), "assets", "pushblocks.xml")

# Reset sampling (metres).
BLOCK_SPAWN_HALF = 0.13
"""Blocks spawn with centres in [-BLOCK_SPAWN_HALF, BLOCK_SPAWN_HALF]^2 (the central area)."""
PUSHER_SPAWN_HALF = 0.24
MIN_BLOCK_GAP = 0.09
"""Minimum centre distance between two blocks at reset (more than ``scene.ADJACENT_DIST``)."""
MIN_PUSHER_GAP = 0.06
"""Minimum centre distance between the pusher and any block at reset."""
MIN_START_DISTANCE = 0.02
"""At reset the task is at least this far (``scene.step_distance``) from done."""
REACH_POINT_HALF = 0.2
"""Random reach points are drawn in [-REACH_POINT_HALF, REACH_POINT_HALF]^2."""
PARK_XY = ((2.0, 2.0), (2.2, 2.0), (2.4, 2.0))
"""Where absent blocks wait: far outside the walls and the camera's view."""


def sample_task(
    rng: np.random.Generator, present: tuple[str, ...], skills: tuple[str, ...] = ("push", "reach")
) -> dict[str, Any]:
    """Draw a random plan step for a scene with blocks ``present``.

    push (probability 3/4 when both skills are allowed): a random present block to a random
    region, or (probability 0.3 when two or more blocks are present) next to another present
    block; reach: a random region (probability 1/2) or a point in the central
    ``[-REACH_POINT_HALF, REACH_POINT_HALF]^2``.
    """
    for s in skills:
        if s not in ("push", "reach"):
            raise ValueError(f"unknown skill {s!r}: valid skills are ['push', 'reach']")
    if not skills:
        raise ValueError("skills must name at least one of ['push', 'reach']")
    if not present:
        raise ValueError("present must name at least one block")
    push = skills == ("push",) or ("push" in skills and rng.random() < 0.75)
    if push:
        obj = present[int(rng.integers(len(present)))]
        others = [b for b in present if b != obj]
        if others and rng.random() < 0.3:
            target = others[int(rng.integers(len(others)))]
        else:
            target = REGION_NAMES[int(rng.integers(len(REGION_NAMES)))]
        return {"skill": "push", "object": obj, "target": target}
    if rng.random() < 0.5:
        return {"skill": "reach", "target": REGION_NAMES[int(rng.integers(len(REGION_NAMES)))]}
    xy = rng.uniform(-REACH_POINT_HALF, REACH_POINT_HALF, size=2)
    return {"skill": "reach", "target": [round(float(xy[0]), 3), round(float(xy[1]), 3)]}


def _copy_step(step: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, list) else v) for k, v in step.items()}


class PushBlocksEnv(gym.Env, utils.EzPickle):
    r"""
    ## Description
    A planar pusher (a dark cylinder of radius 1.5 cm) moves over a walled 0.6 m x 0.6 m table
    holding one to three coloured cubes (`red_block`, `green_block`, `blue_block`, 4 cm side,
    0.1 kg) and seven named regions drawn on the table (`center`, `left`, `right`, `top_left`,
    `top_right`, `bottom_left`, `bottom_right`; see `forethought.sim.scene.REGIONS`). Each
    episode has one *task*, a plan step: push a block into a region, push a block next to another
    block, or reach a region or a point with the pusher. The task is part of the env's state,
    not of the observation: a policy receives it separately (as the planner's goal), and it can be
    changed mid-episode with `env.unwrapped.set_task(step)`.

    Coordinates are metres in the table frame: x to the right, y up in the top-down `top`
    camera image, origin at the table centre.

    ## Action Space
    The action space is a `Box(-0.27, 0.27, (2,), float32)`: the *target position* of the
    pusher. Out-of-range actions are clipped; a NaN action raises `ValueError`. At every physics
    substep the env runs a PD position servo, $F = k_p (a - p) - k_d \dot p$, and sends
    $F / F_{max}$ (clipped to [-1, 1]) to a force motor with `gear` $F_{max}$ = 10 N, so scaling
    `model.actuator_gear` gives a weaker (or stronger) motor.

    | Num | Action                      | Control Min | Control Max | Name (in corresponding XML file) | Joint | Type (Unit)  |
    |-----|-----------------------------|-------------|-------------|----------------------------------|-------|--------------|
    | 0   | target x of the pusher      | -0.27       | 0.27        | pusher_x (motor)                 | slide | position (m) |
    | 1   | target y of the pusher      | -0.27       | 0.27        | pusher_y (motor)                 | slide | position (m) |

    ## Observation Space
    The observation is a `Box(-Inf, Inf, (16,), float32)` laid out as in
    `forethought.sim.scene` (`OBS_DIM`, `OBS_LABELS`). An absent block has all four of its
    entries set to 0.

    | Num | Observation                                  | Min  | Max | Name (in corresponding XML file) | Joint | Type (Unit)          |
    |-----|----------------------------------------------|------|-----|----------------------------------|-------|----------------------|
    | 0   | x of the pusher                              | -Inf | Inf | pusher_x                         | slide | position (m)         |
    | 1   | y of the pusher                              | -Inf | Inf | pusher_y                         | slide | position (m)         |
    | 2   | x velocity of the pusher                     | -Inf | Inf | pusher_x                         | slide | velocity (m/s)       |
    | 3   | y velocity of the pusher                     | -Inf | Inf | pusher_y                         | slide | velocity (m/s)       |
    | 4   | red block present (1) or absent (0)          | 0    | 1   | red_block                        | -     | flag                 |
    | 5   | x of the red block                           | -Inf | Inf | red_block_x                      | slide | position (m)         |
    | 6   | y of the red block                           | -Inf | Inf | red_block_y                      | slide | position (m)         |
    | 7   | yaw of the red block, wrapped to [-pi/4, pi/4) | -pi/4 | pi/4 | red_block_yaw                | hinge | angle (rad)          |
    | 8-11  | the same for the green block               |      |     | green_block_*                    |       |                      |
    | 12-15 | the same for the blue block                |      |     | blue_block_*                     |       |                      |

    ## Rewards
    The reward is ***reward*** *=* $-d$, where $d$ = `scene.step_distance(task, obs)` is the
    distance (m) still to cover: block (push) or pusher (reach) to the target region's rectangle;
    for "next to" a block, the centre distance beyond `scene.ADJACENT_DIST`; for a reach point,
    the distance beyond `scene.REACH_POINT_TOL`. It is 0 exactly when the task is achieved.
    `info["reward_distance"]` holds the single term.

    ## Starting State
    With $n$ blocks, the present blocks are the first $n$ of (`red_block`, `green_block`,
    `blue_block`); the others are parked outside the walls with contacts off and are not drawn.
    Present blocks start at rest at $\mathcal{U}_{[-0.13, 0.13]^2}$ with yaw
    $\mathcal{U}_{[-\pi, \pi)}$, pairwise at least 9 cm apart; the pusher starts at rest at
    $\mathcal{U}_{[-0.24, 0.24]^2}$, at least 6 cm from every block. Layouts that already
    (nearly) satisfy the task are redrawn. The task comes from `options["task"]`, else it is drawn
    with `sample_task` from `self.np_random`.

    The physics timestep is 0.005 s and `frame_skip` is 20, so *dt = 0.1 s* (10 Hz control).

    ## Episode End
    ### Termination
    The episode terminates when the task is achieved (`info["is_success"]`).

    ### Truncation
    The default duration of an episode is 200 timesteps (20 s).

    ## Arguments
    ```python
    import gymnasium as gym
    import forethought.sim.envs  # registers the env
    env = gym.make("forethought/PushBlocks-v0", n_blocks=3, render_mode="rgb_array", width=96, height=96)
    obs, info = env.reset(seed=0, options={"task": {"skill": "push", "object": "red_block", "target": "left"}})
    ```

    | Parameter     | Type              | Default              | Description                                                        |
    |---------------|-------------------|----------------------|--------------------------------------------------------------------|
    | `n_blocks`    | **int**           | `3`                  | Blocks present (1-3); `reset(options={"n_blocks": k})` overrides it for one episode |
    | `xml_file`    | **str**           | `"pushblocks.xml"`   | Path to a MuJoCo model with the same names                          |
    | `frame_skip`  | **int**           | `20`                 | Physics substeps per env step (dt = frame_skip x 0.005 s)          |
    | `servo_kp`    | **float**         | `270`                | Position gain of the pusher servo (N/m)                            |
    | `servo_kd`    | **float**         | `18`                 | Velocity gain of the pusher servo (N s/m)                          |
    | `render_mode` | **str or None**   | `None`               | `"rgb_array"`: `render()` returns `uint8[height, width, 3]`        |
    | `width`       | **int**           | `96`                 | Image width (pixels)                                                |
    | `height`      | **int**           | `96`                 | Image height (pixels)                                               |

    `reset(options=...)` accepts `"task"` (a plan step, validated with `scene.validate_step`;
    an unknown object, region or skill raises `ValueError` listing the valid names) and
    `"n_blocks"`.

    `info` holds `is_success`, `distance` (m), `reward_distance`, `task`, `blocks`
    (`{name: [x, y, yaw]}` for the present blocks, yaw unwrapped) and `pusher` (`[x, y]`).

    ## Version History
    * v0: Initial version: planar pusher with a PD position servo, 1-3 blocks, seven regions,
      push / push-next-to / reach tasks.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        n_blocks: int = 3,
        xml_file: str = DEFAULT_XML,
        frame_skip: int = 20,
        servo_kp: float = 270.0,
        servo_kd: float = 18.0,
        render_mode: str | None = None,
        width: int = 96,
        height: int = 96,
    ) -> None:
        utils.EzPickle.__init__(self, n_blocks, xml_file, frame_skip, servo_kp, servo_kd, render_mode, width, height)
        self._check_n_blocks(n_blocks)
        if not (isinstance(frame_skip, (int, np.integer)) and frame_skip >= 1):
            raise ValueError(f"frame_skip must be a positive int, got {frame_skip!r}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode {render_mode!r} is not supported: use None or 'rgb_array'")
        if not (int(width) > 0 and int(height) > 0):
            raise ValueError(f"width and height must be positive, got {width} x {height}")
        if not os.path.isabs(xml_file) and not os.path.exists(xml_file):
            xml_file = os.path.join(os.path.dirname(DEFAULT_XML), xml_file)
        self.n_blocks = int(n_blocks)
        self.frame_skip = int(frame_skip)
        self.render_mode = render_mode
        self.width, self.height = int(width), int(height)
        self._kp, self._kd = float(servo_kp), float(servo_kd)

        self.model = mujoco.MjModel.from_xml_path(xml_file)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._pusher_qpos = [int(m.jnt_qposadr[m.joint(j).id]) for j in PUSHER_JOINTS]
        self._pusher_dof = [int(m.jnt_dofadr[m.joint(j).id]) for j in PUSHER_JOINTS]
        self._act = [m.actuator(a).id for a in PUSHER_JOINTS]  # each motor is named after its joint
        # Nominal max force: the servo's output is normalised by it, so a perturbed (scaled)
        # model.actuator_gear changes the force the motor really delivers.
        self._gear_nominal = [float(m.actuator_gear[a, 0]) for a in self._act]
        self._block_qpos = {
            b: [int(m.jnt_qposadr[m.joint(f"{b}_{j}").id]) for j in ("x", "y", "yaw")] for b in BLOCK_NAMES
        }
        self._block_dof = {b: [int(m.jnt_dofadr[m.joint(f"{b}_{j}").id]) for j in ("x", "y", "yaw")] for b in BLOCK_NAMES}
        self._block_geom = {b: m.geom(b).id for b in BLOCK_NAMES}
        self._block_geom_default = {
            b: (int(m.geom_contype[g]), int(m.geom_conaffinity[g]), m.geom_rgba[g].copy())
            for b, g in self._block_geom.items()
        }
        self._top_cam = m.camera("top").id

        self.action_space = Box(-WORKSPACE_HALF, WORKSPACE_HALF, (scene.ACTION_DIM,), np.float32)
        self.observation_space = Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
        self._present: tuple[str, ...] = BLOCK_NAMES[: self.n_blocks]
        self._task: dict[str, Any] = {"skill": "reach", "target": "center"}
        self._renderer: mujoco.Renderer | None = None
        self._configure_blocks(self._present)
        mujoco.mj_forward(self.model, self.data)

    # ------------------------------------------------------------------ properties
    @property
    def dt(self) -> float:
        """Seconds per env step."""
        return float(self.model.opt.timestep) * self.frame_skip

    @property
    def task(self) -> dict[str, Any]:
        """The active plan step (a copy)."""
        return _copy_step(self._task)

    @property
    def present(self) -> tuple[str, ...]:
        """Names of the blocks in the scene this episode."""
        return self._present

    def set_task(self, step: Mapping[str, Any]) -> None:
        """Replace the active plan step; raises ``ValueError`` if it names something not in the scene."""
        self._task = scene.validate_step(step, self._present)

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"task", "n_blocks"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}: valid options are ['n_blocks', 'task']")
        n = self.n_blocks
        if options.get("n_blocks") is not None:
            n = self._check_n_blocks(options["n_blocks"])
        present = BLOCK_NAMES[:n]
        if options.get("task") is not None:
            task = scene.validate_step(options["task"], present)
        else:
            task = sample_task(self.np_random, present)
        self._present, self._task = present, task
        self._configure_blocks(present)
        self.reset_model()
        return self._get_obs(), self._get_info(self._get_obs())

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (scene.ACTION_DIM,):
            raise ValueError(f"action must have shape ({scene.ACTION_DIM},), got {np.shape(action)}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action must be finite (target pusher x, y in m), got {a.tolist()}")
        a = np.clip(a, -WORKSPACE_HALF, WORKSPACE_HALF)
        self._do_simulation(float(a[0]), float(a[1]))
        obs = self._get_obs()
        reward, distance = self._get_rew(obs)
        info = self._get_info(obs, distance)
        return obs, reward, bool(info["is_success"]), False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode: make the env with render_mode='rgb_array'")
            return None
        if self._renderer is None:
            vis = self.model.vis.global_
            vis.offwidth, vis.offheight = max(vis.offwidth, self.width), max(vis.offheight, self.height)
            self._renderer = mujoco.Renderer(self.model, self.height, self.width)
        # mj_step leaves body poses one substep behind qpos: refresh them so the image matches obs.
        mujoco.mj_kinematics(self.model, self.data)
        self._renderer.update_scene(self.data, camera=self._top_cam)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _check_n_blocks(n: Any) -> int:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(BLOCK_NAMES):
            raise ValueError(f"n_blocks must be an int in 1..{len(BLOCK_NAMES)}, got {n!r}")
        return int(n)

    def _configure_blocks(self, present: tuple[str, ...]) -> None:
        """Turn contacts and drawing on for present blocks, off for absent ones."""
        m = self.model
        for b, g in self._block_geom.items():
            contype, conaffinity, rgba = self._block_geom_default[b]
            on = b in present
            m.geom_contype[g] = contype if on else 0
            m.geom_conaffinity[g] = conaffinity if on else 0
            m.geom_rgba[g] = rgba if on else (0.0, 0.0, 0.0, 0.0)

    def reset_model(self) -> None:
        """Draw a start layout (from ``self.np_random``) that does not already satisfy the task."""
        rng, d = self.np_random, self.data
        for _ in range(1000):
            mujoco.mj_resetData(self.model, d)
            blocks: list[np.ndarray] = []
            while len(blocks) < len(self._present):
                xy = rng.uniform(-BLOCK_SPAWN_HALF, BLOCK_SPAWN_HALF, size=2)
                if all(np.linalg.norm(xy - o) >= MIN_BLOCK_GAP for o in blocks):
                    blocks.append(xy)
            while True:
                pxy = rng.uniform(-PUSHER_SPAWN_HALF, PUSHER_SPAWN_HALF, size=2)
                if all(np.linalg.norm(pxy - o) >= MIN_PUSHER_GAP for o in blocks):
                    break
            d.qpos[self._pusher_qpos] = pxy
            for i, b in enumerate(BLOCK_NAMES):
                qa = self._block_qpos[b]
                if i < len(blocks):
                    d.qpos[qa] = (blocks[i][0], blocks[i][1], rng.uniform(-math.pi, math.pi))
                else:
                    d.qpos[qa] = (PARK_XY[i][0], PARK_XY[i][1], 0.0)
            if scene.step_distance(self._task, self._get_obs()) >= MIN_START_DISTANCE:
                break
        else:  # pragma: no cover - every valid task has a large feasible set
            raise RuntimeError(f"could not draw a start layout for task {self._task}")
        d.ctrl[:] = 0.0
        mujoco.mj_forward(self.model, d)

    def _do_simulation(self, tx: float, ty: float) -> None:
        """``frame_skip`` physics substeps, closing the PD servo onto target ``(tx, ty)`` at each."""
        m, d = self.model, self.data
        qpos, qvel, ctrl = d.qpos, d.qvel, d.ctrl
        (ix, iy), (vx, vy), (ax, ay) = self._pusher_qpos, self._pusher_dof, self._act
        gx, gy = self._gear_nominal
        kp, kd = self._kp, self._kd
        for _ in range(self.frame_skip):
            ux = (kp * (tx - qpos[ix]) - kd * qvel[vx]) / gx
            uy = (kp * (ty - qpos[iy]) - kd * qvel[vy]) / gy
            ctrl[ax] = 1.0 if ux > 1.0 else (-1.0 if ux < -1.0 else ux)
            ctrl[ay] = 1.0 if uy > 1.0 else (-1.0 if uy < -1.0 else uy)
            mujoco.mj_step(m, d)

    def _get_obs(self) -> np.ndarray:
        qpos, qvel = self.data.qpos, self.data.qvel
        obs = np.zeros(OBS_DIM, dtype=np.float32)
        obs[0:2] = qpos[self._pusher_qpos]
        obs[2:4] = qvel[self._pusher_dof]
        for b in self._present:
            s = scene.block_slice(b).start
            x, y, yaw = qpos[self._block_qpos[b]]
            obs[s : s + 4] = (1.0, x, y, wrap_yaw(float(yaw)))
        return obs

    def _get_rew(self, obs: np.ndarray) -> tuple[float, float]:
        distance = scene.step_distance(self._task, obs)
        return -distance, distance

    def _get_info(self, obs: np.ndarray, distance: float | None = None) -> dict[str, Any]:
        if distance is None:
            distance = scene.step_distance(self._task, obs)
        qpos = self.data.qpos
        return {
            "is_success": distance <= 0.0,
            "distance": distance,
            "reward_distance": -distance,
            "task": _copy_step(self._task),
            "blocks": {b: [float(v) for v in qpos[self._block_qpos[b]]] for b in self._present},
            "pusher": [float(v) for v in qpos[self._pusher_qpos]],
        }
