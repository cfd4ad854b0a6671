"""The ROS side of ``bench/faults.py``: one rclpy node that records the graph, relays the robot's
inputs with message faults, and sends commands; loopback only.

``BenchNode(robot_prefix, relay)``:

- **Recorder.** Every message it sees is kept with its arrival time (``time.monotonic()``, s):
  ``joint_states`` (stamp, position[2], velocity[2]), ``objects/<name>/pose`` (name, stamp, x, y),
  ``joint_trajectory`` (positions[P, 2], times[P]), ``task_status`` (the JSON object), every
  ``status`` (node name, level, message, values) and ``goal``. The robot's topics are read under
  ``robot_prefix`` (``raw/`` when sim_node's outputs are remapped there: the recorder sees the
  truth, before any fault).
- **Relay** (``relay=True``): ``raw/joint_states`` and ``raw/objects/<name>/pose`` are republished
  on ``joint_states`` and ``objects/<name>/pose``, where the graph reads them, according to
  ``mode`` (``RELAY_MODES``): ``pass``; ``drop`` (each tick's messages, all topics together, with
  probability ``drop_p``, decided from the stamp so the topics agree); ``delay`` (``delay_s``
  later, from a thread); ``duplicate`` (each message twice); ``reorder`` (each pair of
  consecutive messages of a topic swapped: the older one arrives second). ``counts`` says what it
  did. ``/clock`` is not relayed.
- **Client.** ``send_command(cid, text)`` publishes the ``{"id", "command"}`` envelope on
  ``task_command``; ``reset()`` calls sim_node's ``reset`` service, ``cancel()`` the executive's
  ``cancel``.

A ``SingleThreadedExecutor`` spins the node on a background thread (``start``/``close``). The
caller sets ``ROS_DOMAIN_ID`` before importing this module; ``ROS_AUTOMATIC_DISCOVERY_RANGE``
defaults to ``LOCALHOST`` (``forethought.runtime``).
"""

from __future__ import annotations

from forethought.runtime import apply_defaults

apply_defaults()  # before rclpy: discovery on loopback

import heapq  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.ros_ws.stamped import JOINT_STATES_TOPIC, pose_topic, stamp_seconds  # noqa: E402
from forethought.sim.scene import BLOCK_NAMES  # noqa: E402

RELAY_MODES = ("pass", "drop", "delay", "duplicate", "reorder")


def level_of(status: Any) -> int:
    """A DiagnosticStatus level (bytes in rclpy) as an int: 0 OK, 1 WARN, 2 ERROR, 3 STALE."""
    return status.level[0] if isinstance(status.level, (bytes, bytearray)) else int(status.level)


class BenchNode(Node):
    """Recorder, relay and command client of the fault bench (see the module docstring)."""

    def __init__(self, robot_prefix: str = "", relay: bool = False, drop_p: float = 0.3, delay_s: float = 0.1,
                 seed: int = 0) -> None:
        super().__init__("fault_bench")
        self.relay, self.mode, self.drop_p, self.delay_s, self.seed = relay, "pass", drop_p, delay_s, seed
        self.counts: Counter[str] = Counter()
        self.joint_states: list[tuple[float, float, np.ndarray, np.ndarray]] = []
        self.poses: list[tuple[float, str, float, float, float]] = []
        self.trajectories: list[tuple[float, np.ndarray, np.ndarray]] = []
        self.task_status: list[tuple[float, dict[str, Any]]] = []
        self.status: list[tuple[float, str, int, str, dict[str, str]]] = []
        self.goals: list[tuple[float, str]] = []
        self._held: dict[str, Any] = {}  # reorder: the message waiting for its successor, per topic
        self._delayed: list[tuple[float, int, str, Any]] = []  # heap of (due, seq, topic, msg)
        self._seq = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._out = {}
        topics = {JOINT_STATES_TOPIC: JointState, **{pose_topic(b): PoseStamped for b in BLOCK_NAMES}}
        for topic, kind in topics.items():
            if relay:
                self._out[topic] = self.create_publisher(kind, topic, 10)
            self.create_subscription(kind, robot_prefix + topic, lambda m, t=topic: self._on_robot(t, m), 10)
        self.create_subscription(JointTrajectory, "joint_trajectory", self._on_trajectory, 100)
        self.create_subscription(String, "task_status", self._on_task_status, nc.TASK_STATUS_QOS)
        self.create_subscription(DiagnosticArray, "status", self._on_status, 100)
        self.create_subscription(String, "goal", lambda m: self.goals.append((time.monotonic(), m.data)), 100)
        self.pub_command = self.create_publisher(String, "task_command", nc.TASK_COMMAND_QOS)
        self.reset_client = self.create_client(Trigger, "reset")
        self.cancel_client = self.create_client(Trigger, "cancel")
        self.executor_ = SingleThreadedExecutor()
        self.executor_.add_node(self)
        self._threads = [threading.Thread(target=self._spin, daemon=True, name="bench-spin"),
                         threading.Thread(target=self._release_delayed, daemon=True, name="bench-delay")]

    # ------------------------------------------------------------------ life cycle
    def start(self) -> "BenchNode":
        for t in self._threads:
            t.start()
        return self

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=2.0)
        self.executor_.shutdown()
        self.destroy_node()

    def _spin(self) -> None:
        while not self._stop.is_set() and rclpy.ok():
            self.executor_.spin_once(timeout_sec=0.05)

    # ------------------------------------------------------------------ recorder
    def _on_robot(self, topic: str, msg: Any) -> None:
        t = time.monotonic()
        stamp = stamp_seconds(msg.header.stamp)
        if topic == JOINT_STATES_TOPIC:
            self.joint_states.append((t, stamp, np.array(msg.position[:2], dtype=float),
                                      np.array(msg.velocity[:2], dtype=float)))
        else:
            name = topic.split("/")[1]
            self.poses.append((t, name, stamp, msg.pose.position.x, msg.pose.position.y))
        if self.relay:
            self._forward(topic, msg)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        positions = np.array([p.positions for p in msg.points], dtype=float).reshape(len(msg.points), -1)
        times = np.array([p.time_from_start.sec + 1e-9 * p.time_from_start.nanosec for p in msg.points])
        self.trajectories.append((time.monotonic(), positions, times))

    def _on_task_status(self, msg: String) -> None:
        try:
            event = json.loads(msg.data)
        except json.JSONDecodeError:
            event = {"id": None, "state": "unparsable", "text": msg.data[:200]}
        self.task_status.append((time.monotonic(), event))

    def _on_status(self, msg: DiagnosticArray) -> None:
        t = time.monotonic()
        for st in msg.status:
            self.status.append((t, st.name.lstrip("/"), level_of(st), st.message,
                                {kv.key: kv.value for kv in st.values}))

    def save(self, path: Any) -> None:
        """The recorded series as ``.npz`` (times: ``time.monotonic()``): ``js_t[N]``, ``js_stamp[N]``,
        ``js_pos[N, 2]``, ``js_vel[N, 2]``; ``pose_t[M]``, ``pose_block[M]`` (index in ``BLOCK_NAMES``),
        ``pose_stamp[M]``, ``pose_xy[M, 2]``; ``traj_t[T]``, ``traj_first[T, 2]``, ``traj_last[T, 2]``,
        ``traj_duration[T]``; ``task_status`` and ``status`` as JSON lines ``[t, ...]``."""
        js, poses, trajs = list(self.joint_states), list(self.poses), list(self.trajectories)
        np.savez_compressed(
            path,
            js_t=np.array([j[0] for j in js]), js_stamp=np.array([j[1] for j in js]),
            js_pos=np.array([j[2] for j in js]).reshape(-1, 2), js_vel=np.array([j[3] for j in js]).reshape(-1, 2),
            pose_t=np.array([p[0] for p in poses]), pose_block=np.array([BLOCK_NAMES.index(p[1]) for p in poses]),
            pose_stamp=np.array([p[2] for p in poses]), pose_xy=np.array([p[3:5] for p in poses]).reshape(-1, 2),
            traj_t=np.array([t[0] for t in trajs]),
            traj_first=np.array([t[1][0] if len(t[1]) else (np.nan, np.nan) for t in trajs]).reshape(-1, 2),
            traj_last=np.array([t[1][-1] if len(t[1]) else (np.nan, np.nan) for t in trajs]).reshape(-1, 2),
            traj_duration=np.array([t[2][-1] if len(t[2]) else np.nan for t in trajs]),
            task_status=np.array([json.dumps([t, e]) for t, e in list(self.task_status)]),
            status=np.array([json.dumps([t, n, lv, m, v]) for t, n, lv, m, v in list(self.status)]))

    # ------------------------------------------------------------------ relay
    def set_mode(self, mode: str) -> None:
        """Switch the relay's fault; messages held for a reorder or still delayed are discarded
        (counted ``discarded``): they would arrive after newer ones."""
        if mode not in RELAY_MODES:
            raise ValueError(f"relay mode {mode!r}: one of {RELAY_MODES}")
        with self._cond:
            self.counts["discarded"] += len(self._held) + len(self._delayed)
            self._held.clear()
            self._delayed.clear()
            self.mode = mode

    def _publish(self, topic: str, msg: Any) -> None:
        self._out[topic].publish(msg)
        self.counts["forwarded"] += 1

    def _forward(self, topic: str, msg: Any) -> None:
        mode = self.mode
        if mode == "pass":
            self._publish(topic, msg)
        elif mode == "drop":
            ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            if random.Random(ns * 1_000_003 + self.seed).random() < self.drop_p:  # the same draw on every topic
                self.counts["dropped"] += 1
            else:
                self._publish(topic, msg)
        elif mode == "delay":
            with self._cond:
                self._seq += 1
                heapq.heappush(self._delayed, (time.monotonic() + self.delay_s, self._seq, topic, msg))
                self._cond.notify()
        elif mode == "duplicate":
            self._publish(topic, msg)
            self._publish(topic, msg)
            self.counts["duplicated"] += 1
        else:  # reorder
            with self._cond:
                older = self._held.pop(topic, None)
                if older is None:
                    self._held[topic] = msg
                    return
            self._publish(topic, msg)
            self._publish(topic, older)
            self.counts["reordered"] += 1

    def _release_delayed(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while not self._stop.is_set() and (not self._delayed or self._delayed[0][0] > time.monotonic()):
                    self._cond.wait(None if not self._delayed else max(0.0, self._delayed[0][0] - time.monotonic()))
                if self._stop.is_set():
                    return
                _, _, topic, msg = heapq.heappop(self._delayed)
            self._publish(topic, msg)
            self.counts["delayed"] += 1

    # ------------------------------------------------------------------ client
    def wait_for_subscribers(self, timeout_s: float) -> bool:
        """Whether ``task_command`` has a subscriber (the planner) within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while self.pub_command.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.pub_command.get_subscription_count() > 0

    def send_command(self, cid: str, text: str) -> float:
        """Publish ``{"id": cid, "command": text}`` on ``task_command``; return the time sent."""
        t = time.monotonic()
        self.pub_command.publish(String(data=json.dumps({"id": cid, "command": text})))
        return t

    def reset(self, timeout_s: float = 10.0) -> bool:
        """Call sim_node's ``reset``; whether it answered with success within ``timeout_s``."""
        return self._call(self.reset_client, timeout_s)

    def cancel(self, timeout_s: float = 10.0) -> bool:
        """Call the executive's ``cancel`` (the running plan ends ``cancelled``, the robot holds)."""
        return self._call(self.cancel_client, timeout_s)

    def _call(self, client: Any, timeout_s: float) -> bool:
        if not client.wait_for_service(timeout_sec=timeout_s):
            return False
        future = client.call_async(Trigger.Request())
        deadline = time.monotonic() + timeout_s
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        return future.done() and future.result() is not None and future.result().success
