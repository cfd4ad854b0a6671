"""Stamped, standard inputs -> the internal observation vector (pure numpy: no rclpy, no simulator).

What a robot provides, and what ``sim_node`` publishes the same way:

- ``joint_states`` (sensor_msgs/JointState): position and velocity of each of ``joint_names``
  (``pusher_x``, ``pusher_y``), stamped.
- ``objects/<name>/pose`` (geometry_msgs/PoseStamped), one topic per object, in frame ``table``
  (metres, origin at the table centre, x right, y to the top of the top-down camera image, z up): the object's
  pose, stamped. Only the planar part is used: x, y and the yaw about z.

``StampedInputs`` keeps the latest accepted message of each source and builds
``forethought.sim.scene``'s ``obs[OBS_DIM]`` (16 floats) from them. It refuses, with a reason
(``ValueError``, counted in ``refusals`` by kind, the last one in ``last_refusal`` and its kind in
``last_refusal_kind``: put them on ``status``; the consumer holds, except on ``out_of_order``):

- ``malformed``: unknown object, missing joint, NaN/inf, velocity missing;
- ``wrong_frame``: a pose whose ``header.frame_id`` is not ``frame``;
- ``out_of_order``: a stamp not newer than the last accepted one of the same source (a DDS
  duplicate, reordered delivery, a replay): never acted on, but the newer inputs still stand, so
  a consumer need not hold for it (its staleness check catches inputs that stop);
- ``future``: a stamp more than ``max_age_s`` ahead of the consumer's clock;
- ``stale``: a message older than ``max_age_s`` on arrival, or, when the observation is built, a
  source whose latest message is older than that (or that never arrived).

Stamps and ``now`` are seconds on one clock: the node's (sim time when ``sim_node`` is the clock).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from forethought.sim import scene

TABLE_FRAME = "table"
JOINT_STATES_TOPIC = "joint_states"
REFUSAL_KINDS = ("malformed", "wrong_frame", "out_of_order", "future", "stale")


def pose_topic(name: str) -> str:
    """The PoseStamped topic of object ``name`` (relative: it follows the node's namespace)."""
    return f"objects/{scene.check_block(name)}/pose"


def stamp_seconds(stamp: Any) -> float:
    """builtin_interfaces/Time (``sec``, ``nanosec``) -> seconds."""
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


def yaw_from_quaternion(x: float, y: float, z: float, w: float) -> float:
    """Rotation about z (rad, in [-pi, pi]) of a unit quaternion; ZYX Euler convention."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def quaternion_from_yaw(yaw: float) -> tuple[float, float, float, float]:
    """``(x, y, z, w)`` of the rotation by ``yaw`` (rad) about z."""
    return 0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0)


class StampedInputs:
    """Latest ``joint_states`` and object poses, checked; ``observation(now)`` -> ``obs[OBS_DIM]``."""

    def __init__(self, objects: Sequence[str], max_age_s: float, frame: str = TABLE_FRAME,
                 joint_names: Sequence[str] = scene.PUSHER_JOINTS) -> None:
        objects = tuple(objects)
        for name in objects:
            scene.check_block(name)
        if len(set(objects)) != len(objects):
            raise ValueError(f"objects={list(objects)} names an object twice; list each once")
        if not (math.isfinite(max_age_s) and max_age_s > 0):
            raise ValueError(f"max_age_s={max_age_s!r} must be a positive number of seconds")
        if not frame:
            raise ValueError("frame must name the frame of the object poses, e.g. 'table'")
        if len(set(joint_names)) != len(scene.PUSHER_JOINTS):
            raise ValueError(f"joint_names={list(joint_names)}: the observation holds {len(scene.PUSHER_JOINTS)} "
                             f"distinct joints, in the order x, y")
        self.objects, self.max_age_s, self.frame = objects, float(max_age_s), frame
        self.joint_names = tuple(joint_names)
        self.latest: dict[str, tuple[float, np.ndarray]] = {}
        """source (``joint_states`` or an object name) -> (stamp s, values: ``[q, dq]`` or ``[x, y, yaw]``)."""
        self.refusals = dict.fromkeys(REFUSAL_KINDS, 0)
        self.last_refusal = ""
        self.last_refusal_kind = ""

    def _refuse(self, kind: str, reason: str) -> ValueError:
        self.refusals[kind] += 1
        self.last_refusal, self.last_refusal_kind = reason, kind
        return ValueError(reason)

    def _accept(self, source: str, stamp: float, values: np.ndarray, now: float) -> None:
        if not np.all(np.isfinite(values)) or not math.isfinite(stamp):
            raise self._refuse("malformed", f"{source}: NaN or infinite value")
        if stamp > now + self.max_age_s:
            raise self._refuse("future", f"{source}: stamp {stamp:.3f} s is {stamp - now:.3f} s ahead of "
                                         f"the clock (max_age_s={self.max_age_s})")
        if now - stamp > self.max_age_s:
            raise self._refuse("stale", f"{source}: {now - stamp:.3f} s old on arrival (max_age_s={self.max_age_s})")
        if source in self.latest and stamp <= self.latest[source][0]:
            raise self._refuse("out_of_order", f"{source}: stamp {stamp:.3f} s is not newer than the last "
                                               f"accepted {self.latest[source][0]:.3f} s (replayed or reordered)")
        self.latest[source] = (stamp, values)

    def on_joint_state(self, msg: Any, now: float) -> None:
        """Check and keep a sensor_msgs/JointState; ``ValueError`` (counted) if refused."""
        names = list(msg.name)
        missing = [j for j in self.joint_names if j not in names]
        if missing:
            raise self._refuse("malformed", f"{JOINT_STATES_TOPIC}: no joint {missing} in {names}")
        idx = [names.index(j) for j in self.joint_names]
        if len(msg.position) != len(names) or len(msg.velocity) != len(names):
            raise self._refuse("malformed", f"{JOINT_STATES_TOPIC}: needs one position and one velocity per "
                                            f"name ({len(names)} names, {len(msg.position)} positions, "
                                            f"{len(msg.velocity)} velocities)")
        values = np.array([msg.position[i] for i in idx] + [msg.velocity[i] for i in idx], dtype=np.float64)
        self._accept(JOINT_STATES_TOPIC, stamp_seconds(msg.header.stamp), values, now)

    def on_pose(self, name: str, msg: Any, now: float) -> None:
        """Check and keep object ``name``'s geometry_msgs/PoseStamped; ``ValueError`` (counted) if refused."""
        if name not in self.objects:
            raise self._refuse("malformed", f"pose of {name!r}: not one of the expected objects {list(self.objects)}")
        if msg.header.frame_id != self.frame:
            raise self._refuse("wrong_frame", f"{pose_topic(name)}: frame {msg.header.frame_id!r}, expected "
                                              f"{self.frame!r}")
        p, q = msg.pose.position, msg.pose.orientation
        values = np.array([p.x, p.y, yaw_from_quaternion(q.x, q.y, q.z, q.w)], dtype=np.float64)
        self._accept(name, stamp_seconds(msg.header.stamp), values, now)

    def observation(self, now: float) -> np.ndarray:
        """``float32[OBS_DIM]`` from the latest inputs; ``ValueError`` (counted as stale) if any
        source is missing or older than ``max_age_s`` at ``now``: the caller holds."""
        for source in (JOINT_STATES_TOPIC, *self.objects):
            if source not in self.latest:
                raise self._refuse("stale", f"{source}: nothing received yet")
            age = now - self.latest[source][0]
            if age > self.max_age_s:
                raise self._refuse("stale", f"{source}: latest is {age:.3f} s old (max_age_s={self.max_age_s})")
        obs = np.zeros(scene.OBS_DIM, dtype=np.float32)
        joints = self.latest[JOINT_STATES_TOPIC][1]
        obs[scene.PUSHER_POS], obs[scene.PUSHER_VEL] = joints[:2], joints[2:]
        for name in self.objects:
            x, y, yaw = self.latest[name][1]
            s = scene.block_slice(name).start
            obs[s : s + 4] = (1.0, x, y, scene.wrap_yaw(yaw))
        return obs

    def fresh_objects(self, now: float) -> tuple[str, ...] | None:
        """The objects whose latest pose is at most ``max_age_s`` old at ``now``, in ``objects``
        order; ``None`` before the first pose of any."""
        seen = [name for name in self.objects if name in self.latest]
        if not seen:
            return None
        return tuple(name for name in seen if now - self.latest[name][0] <= self.max_age_s)

    def status_values(self) -> dict[str, Any]:
        """What a consumer puts on ``status``: refusal counts by kind and the last reason."""
        return {**{f"refused_{k}": v for k, v in self.refusals.items()}, "last_input_refusal": self.last_refusal}
