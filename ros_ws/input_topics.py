"""A node's stamped inputs over ROS: the ``joint_states`` and ``objects/<name>/pose`` topics, checked.

``InputTopics`` subscribes a node to ``joint_states`` (sensor_msgs/JointState) and one
``objects/<name>/pose`` (geometry_msgs/PoseStamped) per expected object, feeds each message to a
``stamped.StampedInputs`` at the node's clock (sim time under ``use_sim_time``), and builds the
internal observation vector from them:

- ``on_observation(obs, stamp)`` is called once per complete set: when every source has a message
  and their latest stamps lie within ``sync_tolerance_s`` of each other, and the newest stamp is
  newer than the last set's (a ros2_control driver and a perception node publishing at their own
  rates, or ``sim_node``'s one stamp per tick, which a tolerance below one tick pairs exactly);
- ``observation()`` gives the latest inputs at the node's clock, for a consumer that acts on its
  own timer;
- every refusal (``StampedInputs``'s kinds) goes to ``on_refusal(reason)``; the node holds and
  puts ``status_values()`` on its ``status``.

Before the first ``/clock`` message a node under ``use_sim_time`` reads time 0: messages are then
skipped (``waiting_for_clock``), not refused. When the node clock jumps back (a restarted
``sim_node`` restarts ``/clock`` at 0), the inputs' latest messages and the last set's stamp are
forgotten (``clock_resets``, one warning), or every newer message would be refused as out of order
until the clock passed the old stamps. ``observation_msgs`` builds the same messages from
an observation vector, for ``sim_node`` and for tests that stand in for a driver.

``INPUT_PARAMS`` are the robot's input parameters (``launch/*.yaml``), declared once here.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState

from forethought.ros_ws.stamped import (JOINT_STATES_TOPIC, TABLE_FRAME, StampedInputs, pose_topic,
                                        quaternion_from_yaw)
from forethought.sim import scene

INPUT_PARAMS: dict[str, tuple[Any, str]] = {
    "joint_names": (list(scene.PUSHER_JOINTS), "the robot's joints in the observation's x, y order "
                                               "(joint_states, joint_trajectory)"),
    "objects": (list(scene.BLOCK_NAMES), "objects whose pose (objects/<name>/pose) every observation needs"),
    "frame": (TABLE_FRAME, "frame_id every object pose must be in"),
    "max_age_s": (0.5, "inputs older than this (s, node clock) are stale: refused, and the node holds"),
    "sync_tolerance_s": (0.05, "an observation is built when the latest stamps of all inputs lie within this (s)"),
}
"""``{name: (default, description)}`` of the stamped-input parameters, per node."""
BLOCK_CENTRE_Z = 0.02
"""Height (m) of a block's centre above the table (``sim/assets/pushblocks.xml``)."""


def seconds_to_time(seconds: float) -> Time:
    """Seconds -> builtin_interfaces/Time."""
    ns = int(round(seconds * 1e9))
    return Time(sec=ns // 10**9, nanosec=ns % 10**9)


def observation_msgs(obs: np.ndarray, stamp: Time, joint_names: Sequence[str] = scene.PUSHER_JOINTS,
                     frame: str = TABLE_FRAME) -> tuple[JointState, dict[str, PoseStamped]]:
    """``obs[OBS_DIM]`` -> the ``joint_states`` message and ``{object: pose}`` of the blocks present, all
    stamped ``stamp`` (what a driver and a perception node publish for that state)."""
    obs = np.asarray(obs, dtype=np.float64).reshape(-1)
    js = JointState(name=list(joint_names), position=[float(v) for v in obs[scene.PUSHER_POS]],
                    velocity=[float(v) for v in obs[scene.PUSHER_VEL]])
    js.header.stamp = stamp
    poses = {}
    for name in scene.present_blocks(obs):
        i = scene.block_slice(name).start
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, frame
        pos, rot = pose.pose.position, pose.pose.orientation
        pos.x, pos.y, pos.z = float(obs[i + 1]), float(obs[i + 2]), BLOCK_CENTRE_Z
        rot.x, rot.y, rot.z, rot.w = quaternion_from_yaw(float(obs[i + 3]))
        poses[name] = pose
    return js, poses


class InputTopics:
    """``joint_states`` and object-pose subscriptions of ``node``, checked by a ``StampedInputs``."""

    def __init__(self, node: Node, p: Mapping[str, Any],
                 on_observation: Callable[[np.ndarray, float], None] | None = None,
                 on_refusal: Callable[[str], None] | None = None,
                 wrap: Callable[[Callable[..., Any]], Callable[..., Any]] = lambda f: f, depth: int = 10) -> None:
        tol = float(p["sync_tolerance_s"])
        if not (math.isfinite(tol) and tol >= 0):
            raise ValueError(f"sync_tolerance_s={tol!r} must be >= 0 seconds")
        self.node, self.sync_tolerance_s = node, tol
        self.inputs = StampedInputs(p["objects"], p["max_age_s"], p["frame"], p["joint_names"])
        self.on_observation, self.on_refusal = on_observation, on_refusal
        self.sources = (JOINT_STATES_TOPIC, *self.inputs.objects)
        self.last_set = -math.inf  # newest stamp of the last complete set handed to on_observation
        self.waiting_for_clock = 0
        self.last_now = -math.inf  # the latest node clock read (s)
        self.clock_resets = 0
        node.create_subscription(JointState, JOINT_STATES_TOPIC, wrap(self._on_joint_state), depth)
        for name in self.inputs.objects:
            node.create_subscription(PoseStamped, pose_topic(name), wrap(partial(self._on_pose, name)), depth)

    def now(self) -> float | None:
        """The node's clock (s); ``None`` while a node under ``use_sim_time`` has no ``/clock`` yet."""
        t = self.node.get_clock().now().nanoseconds * 1e-9
        if t == 0.0 and self.node.get_parameter("use_sim_time").value:
            return None
        self.check_clock(t)
        return t

    def check_clock(self, now: float) -> None:
        """Note the clock read ``now`` (s); if it is before the previous read (the clock jumped back),
        forget the latest inputs and the last set's stamp, so that the new clock's messages are taken."""
        if now < self.last_now:
            self.inputs.latest.clear()
            self.last_set = -math.inf
            self.clock_resets += 1
            self.node.get_logger().warning(f"clock jumped back from {self.last_now:.3f} s to {now:.3f} s: inputs reset")
        self.last_now = now

    def observation(self) -> np.ndarray:
        """``float32[OBS_DIM]`` from the latest inputs at the node's clock; ``ValueError`` (counted)
        if any is missing or stale: hold."""
        now = self.now()
        if now is None:
            raise ValueError("waiting for /clock (use_sim_time)")
        return self.inputs.observation(now)

    @property
    def latest_stamp(self) -> float | None:
        """Stamp (s) of the newest accepted ``joint_states``; ``None`` before the first."""
        entry = self.inputs.latest.get(JOINT_STATES_TOPIC)
        return None if entry is None else entry[0]

    def _on_joint_state(self, msg: JointState) -> None:
        self._feed(self.inputs.on_joint_state, msg)

    def _on_pose(self, name: str, msg: PoseStamped) -> None:
        self._feed(partial(self.inputs.on_pose, name), msg)

    def _feed(self, accept: Callable[[Any, float], None], msg: Any) -> None:
        now = self.now()
        if now is None:
            self.waiting_for_clock += 1
            return
        try:
            accept(msg, now)
        except ValueError as e:
            if self.on_refusal is not None:
                self.on_refusal(str(e))
            return
        self._maybe_complete(now)

    def _maybe_complete(self, now: float) -> None:
        if self.on_observation is None or any(s not in self.inputs.latest for s in self.sources):
            return
        stamps = [self.inputs.latest[s][0] for s in self.sources]
        if max(stamps) - min(stamps) > self.sync_tolerance_s or max(stamps) <= self.last_set:
            return
        self.last_set = max(stamps)
        try:
            obs = self.inputs.observation(now)
        except ValueError as e:
            if self.on_refusal is not None:
                self.on_refusal(str(e))
            return
        self.on_observation(obs, self.last_set)

    def status_values(self) -> dict[str, Any]:
        """Refusal counts by kind, the last reason, messages skipped while waiting for ``/clock``, and
        how often the clock jumped back."""
        return {**self.inputs.status_values(), "waiting_for_clock": self.waiting_for_clock,
                "clock_resets": self.clock_resets}
