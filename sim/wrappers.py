"""Perturbation wrappers: change the physics (or the reward) of a MuJoCo gymnasium env.

They test and fine-tune the "world changed" path of the stack: a heavier block, a slippery
table, a weak motor, or a zone the robot must keep out of. Each wrapper works on any env whose
``env.unwrapped`` has MuJoCo ``model`` and ``data`` (``forethought/PushBlocks-v0``, the
``forethought/Reacher-v5`` and ``forethought/Pusher-v5`` adapters, the stock MuJoCo envs):

| wrapper | changes | default selection |
|---|---|---|
| ``BodyMassScale`` | ``body_mass`` and ``body_inertia`` | PushBlocks: the blocks; Pusher: ``object``; Reacher: the arm links; else every body with mass |
| ``GeomFrictionScale`` | sliding friction ``geom_friction[:, 0]`` (and joint ``frictionloss``, see there) | every geom |
| ``ActuatorGearScale`` | ``actuator_gear`` (the motor's strength) | every actuator |
| ``KeepOutReward`` | the reward: a penalty while a body is inside a zone | PushBlocks: ``pusher``; Reacher: ``fingertip``; Pusher: ``tips_arm`` |

The model scaling is applied once, when the wrapper is built, to the env's own ``MjModel``; it
takes effect from the next physics step and survives ``reset``. ``close()`` restores the exact
original values (wrappers stacked on one env restore in reverse order as each closes). Derived
constants (``body_subtreemass``, inverse weights, ``actuator_acc0`` ...) are recomputed with
``mj_setConst``. Arguments are validated: ``scale`` must be finite and > 0, and unknown names
raise ``ValueError`` listing the valid ones.

Example::

    env = BodyMassScale(gym.make("forethought/PushBlocks-v0"), 3.0)  # blocks 3x heavier
    env = GeomFrictionScale(env, 0.5)                                 # and half the friction
    ...
    env.close()                                                       # model restored
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from .scene import BLOCK_NAMES

_BODY, _GEOM, _ACT = mujoco.mjtObj.mjOBJ_BODY, mujoco.mjtObj.mjOBJ_GEOM, mujoco.mjtObj.mjOBJ_ACTUATOR
_KIND = {_BODY: "body", _GEOM: "geom", _ACT: "actuator"}
_COUNT = {_BODY: "nbody", _GEOM: "ngeom", _ACT: "nu"}


def _mujoco_of(env: gym.Env) -> tuple[mujoco.MjModel, mujoco.MjData]:
    base = env.unwrapped
    model, data = getattr(base, "model", None), getattr(base, "data", None)
    if not isinstance(model, mujoco.MjModel) or not isinstance(data, mujoco.MjData):
        raise TypeError(
            f"{type(base).__name__} is not a MuJoCo env: env.unwrapped needs MjModel `model` and MjData `data`"
        )
    return model, data


def _names(model: mujoco.MjModel, objtype: mujoco.mjtObj) -> list[str | None]:
    return [mujoco.mj_id2name(model, objtype, i) for i in range(getattr(model, _COUNT[objtype]))]


def _resolve(model: mujoco.MjModel, objtype: mujoco.mjtObj, names: Sequence[str] | str, field: str) -> np.ndarray:
    """Ids of ``names``; ``ValueError`` listing the valid names if one is unknown or none given."""
    if isinstance(names, str):
        names = [names]
    names = list(names)
    valid = [n for n in _names(model, objtype) if n]
    if not names:
        raise ValueError(f"{field} must name at least one {_KIND[objtype]}: valid names are {valid}")
    unknown = [n for n in names if not isinstance(n, str) or mujoco.mj_name2id(model, objtype, n) < 0]
    if unknown:
        raise ValueError(f"unknown {_KIND[objtype]} name(s) {unknown} in {field}: valid names are {valid}")
    return np.unique([mujoco.mj_name2id(model, objtype, n) for n in names])


def _check_scale(scale: Any) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    return float(scale)


def _has(model: mujoco.MjModel, objtype: mujoco.mjtObj, *names: str) -> bool:
    return all(mujoco.mj_name2id(model, objtype, n) >= 0 for n in names)


def default_bodies(model: mujoco.MjModel) -> list[str]:
    """The bodies ``BodyMassScale`` scales when given none (see the module table)."""
    blocks = [b for b in BLOCK_NAMES if _has(model, _BODY, b)]
    if blocks:  # PushBlocks
        return blocks
    if _has(model, _BODY, "object", "tips_arm"):  # Pusher
        return ["object"]
    if _has(model, _BODY, "body0", "body1", "fingertip"):  # Reacher
        return ["body0", "body1", "fingertip"]
    return [n for i, n in enumerate(_names(model, _BODY)) if i > 0 and n and model.body_mass[i] > 0]


def default_keep_out_body(model: mujoco.MjModel) -> str:
    """The body ``KeepOutReward`` watches when given none: pusher, fingertip or arm tip."""
    for name in ("pusher", "fingertip", "tips_arm"):
        if _has(model, _BODY, name):
            return name
    valid = [n for n in _names(model, _BODY) if n]
    raise ValueError(f"no default keep-out body in this model: pass body=, one of {valid}")


class _ModelScale(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Scale some ``MjModel`` arrays at construction, restore them on ``close``."""

    def __init__(self, env: gym.Env, scale: float, **record: Any):
        gym.utils.RecordConstructorArgs.__init__(self, scale=scale, **record)
        gym.Wrapper.__init__(self, env)
        self.scale = _check_scale(scale)
        self._model, self._data = _mujoco_of(env)
        self._saved: dict[str, np.ndarray] = {}
        self._restored = False

    def _scale_field(self, field: str, index: Any, factor: float) -> None:
        array = getattr(self._model, field)
        if field not in self._saved:
            self._saved[field] = array.copy()
        array[index] = array[index] * factor

    def _finish(self) -> None:
        mujoco.mj_setConst(self._model, mujoco.MjData(self._model))  # scratch data: the env's is untouched

    def close(self) -> None:
        """Restore the original model values, then close the wrapped env."""
        if not self._restored:
            for field, original in self._saved.items():
                getattr(self._model, field)[...] = original
            if self._saved:
                self._finish()
            self._restored = True
        super().close()


class BodyMassScale(_ModelScale):
    """Multiply the mass of some bodies by ``scale``, and their rotational inertia with it.

    Scaling inertia by the same factor is what a uniformly denser body would have, so the
    shape of the inertia ellipsoid (and the centre of mass) stays put.

    Args:
        env: a MuJoCo env (``env.unwrapped.model``).
        scale: mass factor, finite and > 0 (2.0 = twice as heavy).
        bodies: body names (*optional*). Defaults to ``default_bodies(model)``: the blocks in
            PushBlocks, ``object`` in Pusher, the arm (``body0``, ``body1``, ``fingertip``) in
            Reacher, else every body with mass. NOTE: in the stock models joint armature
            dominates: Reacher's armature of 1 dwarfs its links' inertia, and Pusher's
            ``object`` (7.9e-6 kg) slides on joints with armature 0.04, so mass changes there
            move trajectories only slightly (Reacher) or not measurably (Pusher).
    """

    def __init__(self, env: gym.Env, scale: float, bodies: Sequence[str] | str | None = None):
        super().__init__(env, scale, bodies=bodies)
        names = default_bodies(self._model) if bodies is None else bodies
        self.body_ids = _resolve(self._model, _BODY, names, "bodies")
        self.bodies = tuple(mujoco.mj_id2name(self._model, _BODY, int(i)) for i in self.body_ids)
        self._scale_field("body_mass", self.body_ids, self.scale)
        self._scale_field("body_inertia", self.body_ids, self.scale)
        self._finish()


class GeomFrictionScale(_ModelScale):
    """Multiply the sliding friction of some geoms by ``scale``.

    MuJoCo gives a contact the *larger* sliding friction of its two geoms (with equal
    priority), so scaling only one side of a contact can change nothing. The default therefore
    scales every geom, which scales every contact's friction exactly; ``<pair>`` contacts
    involving a selected geom get their tangential friction scaled too.

    Planar models such as PushBlocks slide their bodies on joints and let nothing touch the
    table: there, table friction is the Coulomb ``frictionloss`` of the bodies' joints. With
    ``joint_friction=True`` (the default) the ``frictionloss`` of every joint of a selected
    geom's body is scaled as well, so a block on a slipperier table slides further. Viscous
    joint ``damping`` is left alone.

    Args:
        env: a MuJoCo env.
        scale: friction factor, finite and > 0 (0.5 = half the friction).
        geoms: geom names (*optional*, defaults to every geom, named or not).
        joint_friction: also scale those bodies' joint ``frictionloss`` (*optional*, defaults to True).
    """

    def __init__(
        self, env: gym.Env, scale: float, geoms: Sequence[str] | str | None = None, joint_friction: bool = True
    ):
        super().__init__(env, scale, geoms=geoms, joint_friction=joint_friction)
        m = self._model
        self.geom_ids = np.arange(m.ngeom) if geoms is None else _resolve(m, _GEOM, geoms, "geoms")
        self.geoms = tuple(mujoco.mj_id2name(m, _GEOM, int(i)) or f"#{i}" for i in self.geom_ids)
        self._scale_field("geom_friction", (self.geom_ids, 0), self.scale)
        if m.npair:
            pairs = np.flatnonzero(np.isin(m.pair_geom1, self.geom_ids) | np.isin(m.pair_geom2, self.geom_ids))
            if pairs.size:
                self._scale_field("pair_friction", (pairs, slice(0, 2)), self.scale)
        self.dof_ids = np.zeros(0, dtype=int)
        if joint_friction:
            bodies = np.unique(m.geom_bodyid[self.geom_ids])
            self.dof_ids = np.flatnonzero(np.isin(m.dof_bodyid, bodies) & (m.dof_frictionloss > 0))
            if self.dof_ids.size:
                self._scale_field("dof_frictionloss", self.dof_ids, self.scale)


class ActuatorGearScale(_ModelScale):
    """Multiply the gear of some actuators by ``scale``: a weaker (< 1) or stronger motor.

    For ``motor`` actuators (PushBlocks, Reacher, Pusher) the joint force is ``gear * ctrl``, so
    this scales the force at every control and the maximum force. For position or velocity
    servos the gear also rescales the length the servo sees, which moves its set point.

    Args:
        env: a MuJoCo env.
        scale: gear factor, finite and > 0 (0.5 = half the force).
        actuators: actuator names (*optional*, defaults to every actuator, named or not).
    """

    def __init__(self, env: gym.Env, scale: float, actuators: Sequence[str] | str | None = None):
        super().__init__(env, scale, actuators=actuators)
        m = self._model
        self.actuator_ids = np.arange(m.nu) if actuators is None else _resolve(m, _ACT, actuators, "actuators")
        self.actuators = tuple(mujoco.mj_id2name(m, _ACT, int(i)) or f"#{i}" for i in self.actuator_ids)
        self._scale_field("actuator_gear", self.actuator_ids, self.scale)
        self._finish()


class KeepOutReward(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Add a penalty to the reward while a body is inside a keep-out zone.

    The zone is a vertical prism over the table: an axis-aligned box (``half_size``) or a disc
    (``radius``) around ``center`` in the world x-y plane; its boundary counts as inside. Each
    step the body's position ``data.xpos`` after the step is checked, and::

        reward = env_reward + reward_keep_out,   reward_keep_out = -penalty if inside else 0

    ``info["keep_out_violation"]`` (bool) and ``info["reward_keep_out"]`` record it, on
    ``step`` and on ``reset``. The physics is untouched.

    Args:
        env: a MuJoCo env.
        center: zone centre ``[x, y]`` (m, world frame).
        half_size: box half extents, a number or ``[hx, hy]`` (m); give this or ``radius``.
        radius: disc radius (m); give this or ``half_size``.
        penalty: reward subtracted per step inside, finite and >= 0 (*optional*, defaults to 1).
        body: the watched body (*optional*): ``pusher`` (PushBlocks), ``fingertip`` (Reacher) or
            ``tips_arm`` (Pusher) by default.
    """

    def __init__(
        self,
        env: gym.Env,
        center: Sequence[float],
        half_size: float | Sequence[float] | None = None,
        radius: float | None = None,
        penalty: float = 1.0,
        body: str | None = None,
    ):
        gym.utils.RecordConstructorArgs.__init__(
            self, center=center, half_size=half_size, radius=radius, penalty=penalty, body=body
        )
        gym.Wrapper.__init__(self, env)
        self._model, self._data = _mujoco_of(env)
        c = np.asarray(center, dtype=np.float64) if _is_numeric(center) else None
        if c is None or c.shape != (2,) or not np.all(np.isfinite(c)):
            raise ValueError(f"center must be a finite [x, y] (m), got {center!r}")
        if (half_size is None) == (radius is None):
            raise ValueError("give exactly one of half_size (box) or radius (disc)")
        if radius is not None:
            if not _is_number(radius) or not (np.isfinite(radius) and radius > 0):
                raise ValueError(f"radius must be a positive finite distance (m), got {radius!r}")
            self.radius, self.half_size = float(radius), None
        else:
            h = np.asarray(half_size, dtype=np.float64) if _is_numeric(half_size) else None
            if h is not None and h.shape in ((), (1,)):
                h = np.full(2, float(h.reshape(-1)[0]))
            if h is None or h.shape != (2,) or not np.all(np.isfinite(h)) or np.any(h <= 0):
                raise ValueError(f"half_size must be a positive finite number or [hx, hy] (m), got {half_size!r}")
            self.radius, self.half_size = None, h
        if not _is_number(penalty) or not (np.isfinite(penalty) and penalty >= 0):
            raise ValueError(f"penalty must be a finite number >= 0, got {penalty!r}")
        self.center, self.penalty = c, float(penalty)
        self.body = default_keep_out_body(self._model) if body is None else body
        self.body_id = int(_resolve(self._model, _BODY, [self.body], "body")[0])

    def inside(self) -> bool:
        """Whether the watched body is in the zone now."""
        d = self._data.xpos[self.body_id, :2] - self.center
        if self.radius is not None:
            return bool(np.hypot(d[0], d[1]) <= self.radius)
        return bool(np.all(np.abs(d) <= self.half_size))

    def _terms(self) -> dict[str, Any]:
        violation = self.inside()
        return {"keep_out_violation": violation, "reward_keep_out": -self.penalty if violation else 0.0}

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        info.update(self._terms())
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        terms = self._terms()
        info.update(terms)
        return obs, float(reward) + terms["reward_keep_out"], terminated, truncated, info


def _is_number(x: Any) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, float, np.integer, np.floating))


def _is_numeric(x: Any) -> bool:
    try:
        a = np.asarray(x)
    except Exception:  # noqa: BLE001 - anything that is not array-like is simply not numeric
        return False
    return a.dtype.kind in "iuf"
