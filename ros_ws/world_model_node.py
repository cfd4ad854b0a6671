"""world_model_node: the latent world model's surprise monitor on the ROS graph.

    python -m forethought.ros_ws.world_model_node --ros-args --params-file stack.yaml

A thin wrapper: the learning code is ``forethought.models.world_model.surprise.SurpriseMonitor``
(how far each observation's embedding lands from the one the world model predicted from the
recent observations and the commands applied since; about 0 while the world behaves as learned).

- ``joint_commands`` (sensor_msgs/JointState, ``position`` per joint of ``pusher_x, pusher_y``):
  the command the robot (sim_node) applied this tick, published before the ``observation`` it
  led to. One with the wrong joints or size, or a NaN/inf, is ignored and counted
  (``refused_commands``).
- ``observation`` (Float32MultiArray, layout in ``node_common``): paired with the command
  published between the previous observation and this one (by DDS source timestamps, so the
  publisher of both must be on one clock: sim_node, or one robot driver) and fed to the monitor as
  one env step. One with NaN/inf or the wrong size is ignored and counted (``refused_observations``).
- Episodes: the monitor restarts at an observation (``monitor.reset``) when it is the first, when
  it was published more than ``stale_s`` after the previous one (``episodes`` counts these), or
  when it cannot be paired: no command yet, or not exactly one command since the previous
  observation (a dropped or refused message; ``unpaired_observations``). A scene reset that is not
  announced on any topic (sim_node's ``reset`` service) looks to the model like what it is, a
  teleport: surprise (WARN) for up to ``(history + horizon - 1) * frameskip + window - 1`` steps
  (15 with the defaults) until the monitor's context is past it. Jumps are deliberately not taken
  for resets: a jump is what the 1-step surprise detects best.
- ``surprise`` (diagnostic_msgs/DiagnosticArray, one status named ``<node>/surprise``): published
  for every observation that has a value (the first ``horizon * frameskip`` steps of an episode
  have none); level WARN when the surprise is above ``surprise_threshold``, else OK; values ``surprise``,
  ``max`` (running max since the node started), ``threshold``, ``steps`` (values computed so
  far) and ``above_threshold`` (how many of them were above it).
- ``status`` (DiagnosticArray, 1 Hz): model, counts, last and max surprise; WARN while no
  observation came for ``stale_s`` (wall seconds), or after a refused message or an unpaired
  observation since the previous status.

The shipped model was trained on PushBlocks' 10 Hz env steps: one observation must be one env
step (sim_node at ``control_rate_hz`` 10, its default), and one action block is ``frameskip`` = 5
steps.

Where the ``surprise_threshold`` default (0.6) comes from (``bench/world_model.py --only monitor``,
``BENCHMARKS.md``): on 3-block pushes under the stack's D-MPC, 0.6 is about the 98th percentile of
a clean episode's largest 1-step surprise, so 2 of 50 clean 80-step episodes raise an alarm, but
it flags only 6 of 50 red-block teleports (12 cm) within 20 steps; 0.3 flags 26 of 50 teleports
and alarms in 11 of 50 clean episodes. The model's error at fast contacts is as large as a
teleport's spike, so no threshold does both; lower it where missed events cost more than false
alarms. Mass or friction changes are not separated from normal physics at any threshold.
"""

from __future__ import annotations

from forethought.runtime import prepare_node_process

prepare_node_process(__name__)  # first: local defaults before rclpy; a stop signal during start-up exits quietly

import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float32MultiArray  # noqa: E402

from forethought.models.world_model.modeling_world_model import LatentWorldModel  # noqa: E402
from forethought.models.world_model.surprise import SurpriseMonitor  # noqa: E402
from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.runtime import pretrained_dir  # noqa: E402
from forethought.sim import scene  # noqa: E402

QUEUE_DEPTH = 50
"""Depth of both subscriptions: a node stalled for up to 2.5 s at 20 Hz loses nothing."""
MAX_PENDING = 100
"""Commands kept while waiting for their observation (a backlog of 10 s at 10 Hz)."""
DEFAULT_THRESHOLD = 0.6
"""Surprise above which ``surprise`` reports WARN (how it was chosen: the module docstring)."""

PARAMS = {
    "world_model": (str(pretrained_dir() / "wm-pushblocks-state"),
                    "world-model checkpoint directory (state observations of PushBlocks)"),
    "surprise_horizon": (1, "open-loop prediction horizon in action blocks (1: LeWM's 1-step surprise)"),
    "surprise_window": (1, "running mean of the surprise over this many steps (1: none)"),
    "surprise_threshold": (DEFAULT_THRESHOLD, "surprise above which the surprise topic reports WARN"),
    "stale_s": (2.0, "no observation for this long (wall seconds): stale, and the next one starts an episode"),
    "threads": (1, "torch CPU threads"),
}


def read_command(names: Sequence[str], position: Sequence[float],
                 joints: Sequence[str] = scene.PUSHER_JOINTS) -> np.ndarray:
    """A joint_commands message's ``position`` in ``joints`` order; ``ValueError`` if it is unusable."""
    names, position = list(names), np.asarray(position, dtype=np.float64)
    if sorted(names) != sorted(joints) or len(set(names)) != len(names):
        raise ValueError(f"joint_commands names {names} must name each of {list(joints)} exactly once")
    if position.shape != (len(names),):
        raise ValueError(f"joint_commands has {position.size} positions for {len(names)} joints")
    if not np.all(np.isfinite(position)):
        raise ValueError(f"joint_commands has a NaN or infinite position: {position.tolist()}")
    return position[[names.index(j) for j in joints]]


class SurpriseTracker:
    """The node's logic without ROS: pairs observations with commands, restarts episodes, counts.

    Call ``command(position, stamp)`` for each validated joint_commands message and
    ``observe(obs, stamp)`` for each validated observation, where ``stamp`` is the time the message
    was published (seconds; the node passes DDS's source timestamp, so a backlog processed late
    or a command handled ahead of the previous tick's observation still pairs correctly).
    ``observe`` returns the surprise of that observation, or ``None`` when there is none (episode
    start, or the monitor's first ``horizon * frameskip`` steps). Pairing and episode rules: the
    module docstring.
    """

    def __init__(self, monitor: SurpriseMonitor, threshold: float, stale_s: float) -> None:
        self.monitor, self.threshold, self.stale_s = monitor, float(threshold), float(stale_s)
        self.pending: list[tuple[float, np.ndarray]] = []  # (stamp, position) of commands not yet paired
        self.last_command: np.ndarray | None = None
        self.obs_stamp: float | None = None  # publication time of the previous observation
        self.last: float | None = None
        self.max = 0.0
        self.steps = self.above = 0
        self.episodes = 0  # restarts at the first observation or after a gap
        self.unpaired = 0  # restarts at an observation without exactly one command since the previous one

    def command(self, position: np.ndarray, stamp: float) -> None:
        self.last_command = np.asarray(position, dtype=np.float64)
        self.pending.append((float(stamp), self.last_command))
        del self.pending[:-MAX_PENDING]

    def observe(self, obs: np.ndarray, stamp: float) -> float | None:
        prev, stamp = self.obs_stamp, float(stamp)
        self.obs_stamp = stamp
        # the commands published after the previous observation and before this one
        due = [c for s, c in self.pending if s <= stamp and (prev is None or s > prev)]
        self.pending = [(s, c) for s, c in self.pending if s > stamp]
        gap = prev is not None and stamp - prev > self.stale_s
        if prev is None or gap or len(due) != 1:
            self.episodes += prev is None or gap
            self.unpaired += prev is not None and not gap and self.last_command is not None
            self.monitor.reset(obs)
            return None
        value = self.monitor.step(due[0], obs)
        if value is not None:
            self.last, self.steps = value, self.steps + 1
            self.max = max(self.max, value)
            self.above += value > self.threshold
        return value


class WorldModelNode(nc.ReportingNode):
    def __init__(self) -> None:
        super().__init__("world_model_node")
        p = nc.declare_parameters(self, PARAMS)
        nc.check_range("surprise_horizon", p["surprise_horizon"], 1, 100)
        nc.check_range("surprise_window", p["surprise_window"], 1, 10000)
        nc.check_range("surprise_threshold", p["surprise_threshold"], 0, 1e6, lo_open=True)
        nc.check_range("stale_s", p["stale_s"], 0, 3600, lo_open=True)
        nc.check_range("threads", p["threads"], 1, 256)
        torch.set_num_threads(p["threads"])
        try:
            model = LatentWorldModel.from_pretrained(p["world_model"])
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise ValueError(f"world_model {p['world_model']!r}: {e}") from None
        c = model.config
        if c.obs_type != "state" or c.obs_dim != scene.OBS_DIM or c.action_dim != len(scene.PUSHER_JOINTS):
            raise ValueError(f"world_model {p['world_model']!r} observes {c.obs_type} (obs_dim {c.obs_dim}, action_dim "
                             f"{c.action_dim}); this node needs a state model of PushBlocks ({scene.OBS_DIM} floats, "
                             f"{len(scene.PUSHER_JOINTS)} actions)")
        self.p = p
        monitor = SurpriseMonitor(model, p["surprise_horizon"], p["surprise_window"])
        self.tracker = SurpriseTracker(monitor, p["surprise_threshold"], p["stale_s"])
        self.counts = {"refused_observations": 0, "refused_commands": 0}
        self.obs_time: float | None = None  # time.monotonic() of the last valid observation
        self.unpaired_seen = 0  # tracker.unpaired at the previous status
        self.pub_surprise = self.create_publisher(nc.DiagnosticArray, "surprise", 10)
        self.pub_status = self.create_publisher(nc.DiagnosticArray, "status", 10)
        self.create_subscription(JointState, "joint_commands", self._on_command, QUEUE_DEPTH)
        self.create_subscription(Float32MultiArray, "observation", self._on_observation, QUEUE_DEPTH)
        self.create_timer(1.0, self._publish_status)
        self.get_logger().info(f"world model {Path(p['world_model']).name} (frameskip {c.frameskip}, history "
                               f"{c.history}), horizon {p['surprise_horizon']}, window {p['surprise_window']}, "
                               f"threshold {p['surprise_threshold']}")

    def _on_command(self, msg: JointState, info: dict) -> None:
        try:
            position = read_command(msg.name, msg.position)
        except ValueError as e:
            self.counts["refused_commands"] += 1
            self.last_error = f"joint_commands ignored: {e}"
            self.get_logger().warning(self.last_error, throttle_duration_sec=2.0)  # throttled per call site
            return
        self.tracker.command(position, info["source_timestamp"] * 1e-9)

    def _on_observation(self, msg: Float32MultiArray, info: dict) -> None:
        obs = self.observation(msg)
        if obs is None:
            return
        self.obs_time = time.monotonic()
        value = self.tracker.observe(obs, info["source_timestamp"] * 1e-9)
        if value is not None:
            self._publish_surprise(value)

    def _publish_surprise(self, value: float) -> None:
        t = self.tracker
        above = value > t.threshold
        message = "surprise above threshold" if above else "as predicted"
        values = {"surprise": f"{value:.6g}", "max": f"{t.max:.6g}", "threshold": f"{t.threshold:.6g}",
                  "steps": t.steps, "above_threshold": t.above}
        arr = nc.status_msg(self, nc.WARN if above else nc.OK, message, values)
        arr.status[0].name += "/surprise"
        self.pub_surprise.publish(arr)

    def _publish_status(self) -> None:
        t = self.tracker
        stale = self.obs_time is None or time.monotonic() - self.obs_time > self.p["stale_s"]
        if self.obs_time is None:
            message = "waiting for observations"
        elif t.last_command is None:
            message = "waiting for joint_commands"
        else:
            message = "running"
        if stale and self.obs_time is not None:
            message += "; stale observation"
        unpaired = t.unpaired > self.unpaired_seen
        if unpaired:
            message += f"; {t.unpaired - self.unpaired_seen} observations without their command"
        self.unpaired_seen = t.unpaired
        values: dict[str, Any] = {
            "world_model": self.p["world_model"], "horizon": self.p["surprise_horizon"],
            "window": self.p["surprise_window"],
            "threshold": t.threshold, "last_surprise": t.last, "max_surprise": t.max, "steps": t.steps,
            "above_threshold": t.above, "episodes": t.episodes, "unpaired_observations": t.unpaired, **self.counts,
            "last_error": self.last_error}
        level = nc.WARN if stale or unpaired or self.last_error else nc.OK
        self.publish_status(level, message, values)


def main(args: list[str] | None = None) -> int:
    return nc.run_node(WorldModelNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
