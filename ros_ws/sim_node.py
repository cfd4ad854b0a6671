"""sim_node: the MuJoCo PushBlocks task behind standard ROS 2 topics, and the graph's clock.

    python -m forethought.ros_ws.sim_node --ros-args --params-file sim.yaml -r __node:=sim_node

Sim time. The node is the clock of its graph: tick k is at sim time ``k / control_rate_hz``
(the clock starts at tick 1: ROS reads time 0 as "no clock yet"), published on ``/clock``
(rosgraph_msgs/Clock, if ``publish_clock``; at every wall-clock timer callback, also while
paused or waiting) for the other nodes, which run with ``use_sim_time``. The wall-clock timer
runs ``real_time_factor`` times faster than sim time; ``status`` shows the target and
``real_time_factor_measured`` (sim seconds per wall second over the last 3 wall seconds). All
durations below are sim seconds.

Each tick either starts an episode (the start state: no physics) or steps the physics one
control period (0.005 s steps), then publishes, every message stamped with the tick's sim time:
``/clock``; ``joint_commands`` (sensor_msgs/JointState, ``joint_names``: the pusher's position
setpoint at the end of the tick; the same stamp as the ``joint_states`` it led to, the
topic_based_ros2_control convention); one ``objects/<name>/pose`` (geometry_msgs/PoseStamped,
frame ``frame``) per block present and ``joint_states`` (position and velocity), as a
perception node and a driver publish them (``input_topics.observation_msgs``; a consumer's
``input_topics.InputTopics`` pairs them by stamp into the observation); and, every 0.5 s of sim
time, every wall second, on success changes and on errors, ``status`` (DiagnosticArray).

- ``joint_trajectory`` (trajectory_msgs/JointTrajectory), executed the way ros2_control's
  joint_trajectory_controller does (``trajectory.TrajectoryFollower``): the start time is
  ``header.stamp`` on this node's clock (sim time), or receipt for a zero stamp; the new
  trajectory replaces the remainder of the current one at its start time; points are joined
  linearly in time from the setpoint there and sampled at the physics rate (a point's position
  exactly at its time); the whole trajectory is followed, then its last point held;
  ``command_timeout_s`` after the last point the pusher holds where it is. A start in the past
  is handled as the controller does: points at or before now are skipped (the setpoint joins
  the first later one at its time, from where it is: no jump), and a trajectory that ends by now
  is rejected. One with unknown joints, a NaN/inf, or times not > 0 and increasing is rejected
  whole too (warning, ``rejected_trajectories`` in status).
- The safety gate (``safety.SafetyGate``, the ``LIMIT_PARAMS`` of the YAML) checks every
  accepted trajectory from the setpoint at its start: outside the position/velocity/acceleration
  limits it is clipped (``clipped_trajectories``) or rejected, by ``limit_mode``.
- ``lockstep`` (default false): the sim advances only when the tick's command has arrived. After
  publishing tick k it waits for the next ``joint_trajectory`` (any, accepted or not) before
  stepping; after ``lockstep_timeout_s`` wall seconds it steps anyway, on the trajectory it has
  (holding once that has run out; ``lockstep_timeouts`` in status). Before the first tick it waits
  until a controller is connected (``joint_states``, every pose and ``/clock`` have a subscriber,
  ``joint_trajectory`` a publisher), then ``LOCKSTEP_SETTLE_S`` more while publishing ``/clock``.
  A lockstep tick applies the setpoint at the tick's end (for a controller's chunk: its first
  point) as one constant target for the whole tick, which is exactly what ``env.step(action)``
  does in ``forethought eval`` (the same ``frame_skip`` PD-servo substeps on one target, bit for
  bit): with a controller that acts once per observation (policy_controller ``execution:=sync``)
  the same ``seed`` and task give the same episode as ``forethought eval`` while the safety gate
  does not intervene (``tests/test_lockstep.py``). Without lockstep the setpoint is interpolated
  at every physics step, as a robot's controller does.
- ``goal`` (std_msgs/String, JSON plan step): validated, then ``set_task`` (a repeat of the
  current step is ignored; a hold goal keeps the task); a bad one is logged and counted
  (``bad_goals``), never fatal.
- Services: ``reset`` (std_srvs/Trigger): a new episode, seeded ``seed + k`` for the k-th
  reset, whose start state is published at once as the next tick. ``pause``
  (std_srvs/SetBool): true pauses the sim (no ticks; ``/clock`` stands still), false resumes.
  ``step`` (std_srvs/Trigger): while paused, advance exactly one tick (in lockstep without
  waiting for a command); refused while running.

Parameters (``PARAMS``): ``env_id``, ``n_blocks``, ``seed``, ``task``, ``control_rate_hz``,
``real_time_factor``, ``command_timeout_s``, ``lockstep``, ``lockstep_timeout_s``,
``video_path``, ``video_size``, ``exit_on_success``, ``max_duration_s``, ``publish_clock``, the
robot's ``joint_names`` and ``frame`` (``input_topics.INPUT_PARAMS``) and the limits
(``safety.LIMIT_PARAMS``). Exit codes: 0 on SIGINT/SIGTERM, on success with
``exit_on_success``, or when ``max_duration_s`` of sim time runs out without
``exit_on_success``; 1 when it runs out with ``exit_on_success`` and no success; 2 for a bad
parameter. A ``video_path`` is written on exit.
"""

from __future__ import annotations

from forethought.runtime import prepare_node_process

prepare_node_process(__name__)  # first: local defaults before rclpy; a stop signal during start-up exits quietly

import json  # noqa: E402
import time  # noqa: E402
from collections import deque  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rcl_interfaces.msg import SetParametersResult  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.ros_ws.graph import DEFAULT_TASK  # noqa: E402
from forethought.ros_ws.input_topics import INPUT_PARAMS, observation_msgs, seconds_to_time  # noqa: E402
from forethought.ros_ws.safety import LIMIT_PARAMS, SafetyGate  # noqa: E402
from forethought.ros_ws.stamped import pose_topic, stamp_seconds  # noqa: E402
from forethought.ros_ws.trajectory import TrajectoryFollower  # noqa: E402
from forethought.sim import PUSH_BLOCKS_ID, scene  # noqa: E402

try:
    from rosgraph_msgs.msg import Clock
except ImportError:  # optional: no /clock without it
    Clock = None

PARAMS = {
    "env_id": (PUSH_BLOCKS_ID, "gymnasium id; only PushBlocks has this node's joints"),
    "n_blocks": (1, "blocks on the table, 1 to 3"),
    "seed": (0, "seed of the first episode; the k-th reset uses seed + k"),
    "task": (DEFAULT_TASK, "initial JSON plan step (runtime-settable)"),
    "control_rate_hz": (10.0, "control ticks per sim second"),
    "real_time_factor": (1.0, "target sim seconds per wall second (in lockstep: at most)"),
    "command_timeout_s": (1.0, "hold where the pusher is this long after a trajectory's last point; 0 disables"),
    "lockstep": (False, "advance only when the tick's joint_trajectory has arrived (forethought eval's episode)"),
    "lockstep_timeout_s": (2.0, "lockstep: wall seconds to wait for a tick's command before stepping holding"),
    "video_path": ("", "MP4/GIF written on exit; empty: no video"),
    "video_size": (256, "video width and height in pixels"),
    "exit_on_success": (False, "exit (code 0) as soon as the task succeeds"),
    "max_duration_s": (0.0, "exit after this much sim time; 0: run until stopped"),
    "publish_clock": (True, "publish sim time on /clock (needs rosgraph_msgs)"),
    **{k: INPUT_PARAMS[k] for k in ("joint_names", "frame")},
    **LIMIT_PARAMS,
}
RUNTIME = {"task", "command_timeout_s", "exit_on_success", "max_duration_s"}
RTF_WINDOW_S = 3.0
"""``real_time_factor_measured`` is sim seconds per wall second over this many wall seconds."""
LOCKSTEP_SETTLE_S = 0.5
"""Lockstep: wall seconds between a controller connecting and the first state (``/clock`` meanwhile)."""
KNOT_TOL_S = 1e-6
"""A setpoint sampled this close to a trajectory point's time is that point's position, exactly."""


class SimNode(Node):
    def __init__(self) -> None:
        super().__init__("sim_node")
        p = nc.declare_parameters(self, PARAMS)
        if p["env_id"] != PUSH_BLOCKS_ID:
            raise ValueError(f"env_id {p['env_id']!r}: sim_node drives {PUSH_BLOCKS_ID} only")
        nc.check_range("n_blocks", p["n_blocks"], 1, 3)
        nc.check_range("video_size", p["video_size"], 16, 2048)
        nc.check_range("control_rate_hz", p["control_rate_hz"], 0, 1000, lo_open=True)
        nc.check_range("real_time_factor", p["real_time_factor"], 0, 1000, lo_open=True)
        nc.check_range("command_timeout_s", p["command_timeout_s"], 0, 1e6)
        nc.check_range("lockstep_timeout_s", p["lockstep_timeout_s"], 0, 1e6, lo_open=True)
        nc.check_range("max_duration_s", p["max_duration_s"], 0, 1e9)
        self.joint_names = tuple(p["joint_names"])
        if len(set(self.joint_names)) != len(scene.PUSHER_JOINTS) or not all(self.joint_names):
            raise ValueError(f"joint_names={list(self.joint_names)}: name the pusher's {len(scene.PUSHER_JOINTS)} "
                             "joints, x then y, each once")
        if not p["frame"]:
            raise ValueError("frame must name the frame of the object poses, e.g. 'table'")
        self.task = nc.parse_step(p["task"])
        self.p, self.dt = p, 1.0 / p["control_rate_hz"]
        self.gate = SafetyGate.from_params(p, self.dt)
        size = p["video_size"]
        self.video = nc.VideoRecorder(p["video_path"], size, p["control_rate_hz"]) if p["video_path"] else None
        kw = dict(render_mode="rgb_array", width=size, height=size) if self.video else {}
        try:
            import forethought.sim.envs  # noqa: F401  (registers the envs)
            self.env = gym.make(p["env_id"], n_blocks=p["n_blocks"], frame_skip=1, **kw)  # setpoints at the physics rate
        except Exception as e:  # gymnasium and MuJoCo errors: report them as a bad configuration
            raise ValueError(f"env_id {p['env_id']!r} with n_blocks={p['n_blocks']}: cannot create it ({e})") from None
        self.low, self.high = self.env.action_space.low.astype(float), self.env.action_space.high.astype(float)
        self.substeps = max(1, round(self.dt / self.env.unwrapped.dt))
        self.tick, self.episode, self.success = 1, 0, False  # tick 1: the clock starts one period in
        self.published = False  # whether the current tick's state is out
        self.connected_since: float | None = None  # lockstep start: wall time since a controller is connected
        self.paused, self.command_seen, self.published_wall = False, False, 0.0
        self.rtf_samples: deque[tuple[float, float]] = deque()  # (wall s, sim s) of recent ticks
        self.status_wall = 0.0
        self.counts = {"accepted_trajectories": 0, "clipped_trajectories": 0, "rejected_trajectories": 0,
                       "bad_goals": 0, "lockstep_timeouts": 0}
        self.last_error, self.error_tick = "", -(10**9)
        self._reset_episode()
        self.add_on_set_parameters_callback(self._on_set)
        self.pub_commands = self.create_publisher(JointState, "joint_commands", 10)
        self.pub_joints = self.create_publisher(JointState, "joint_states", 10)
        self.pub_poses = {b: self.create_publisher(PoseStamped, pose_topic(b), 10) for b in self.present}
        self.pub_status = self.create_publisher(nc.DiagnosticArray, "status", 10)
        self.pub_clock = self.create_publisher(Clock, "/clock", 10) if Clock and p["publish_clock"] else None
        self.sub_trajectory = self.create_subscription(JointTrajectory, "joint_trajectory", self._on_trajectory, 10)
        self.create_subscription(String, "goal", self._on_goal, 10)
        self.create_service(Trigger, "reset", self._on_reset)
        self.create_service(SetBool, "pause", self._on_pause)
        self.create_service(Trigger, "step", self._on_step)
        self.create_timer(self.dt / p["real_time_factor"], self._on_timer)
        self.get_logger().info(f"{p['env_id']} n_blocks={p['n_blocks']} task={json.dumps(self.task)} "
                               f"at {p['control_rate_hz']} Hz x{p['real_time_factor']}"
                               f"{' lockstep' if p['lockstep'] else ''}")

    @property
    def sim_time(self) -> float:
        return self.tick * self.dt

    def _reset_episode(self) -> None:
        self.obs, _ = self.env.reset(seed=self.p["seed"] + self.episode, options={"task": self.task})
        self.present = scene.present_blocks(self.obs)
        self.follower = TrajectoryFollower(self.obs[scene.PUSHER_POS], self.p["command_timeout_s"])
        self.setpoint = self.follower.state(self.sim_time)[0]  # [J] the setpoint of the last tick
        self.episode_start, self.success = self.tick, False
        if self.video:
            self.video.add(self.env.render())

    def _on_set(self, params: list) -> SetParametersResult:
        for prm in params:
            try:
                if prm.name not in RUNTIME:
                    raise ValueError(f"{prm.name} is read-only while running; restart the node to change it")
                if prm.name == "task":
                    nc.parse_step(prm.value, self.present)
                elif prm.name in ("command_timeout_s", "max_duration_s"):
                    nc.check_range(prm.name, prm.value, 0, 1e9)
            except ValueError as e:
                return SetParametersResult(successful=False, reason=str(e))
        for prm in params:
            self.p[prm.name] = prm.value
            if prm.name == "task":
                self._set_task(nc.parse_step(prm.value, self.present))
            elif prm.name == "command_timeout_s":
                self.follower.timeout_s = prm.value
        return SetParametersResult(successful=True)

    def _set_task(self, step: dict) -> None:
        self.env.unwrapped.set_task(step)
        self.task, self.success = step, False
        self.get_logger().info(f"task: {json.dumps(step)}")

    def _on_goal(self, msg: String) -> None:
        try:
            step = nc.parse_goal(msg.data, self.present)
        except ValueError as e:
            self.counts["bad_goals"] += 1
            self._error(f"goal refused: {e}")
            return
        if step["skill"] != nc.HOLD_SKILL and step != self.task:  # an executive republishes its active step for late joiners
            self._set_task(step)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        self.command_seen = True  # lockstep: this tick's command arrived, whatever becomes of it
        now = self.sim_time
        try:
            positions, times = nc.check_trajectory(msg, self.joint_names)
            start = stamp_seconds(msg.header.stamp) or now  # zero: start on receipt
            if start < now:  # joint_trajectory_controller: points before now are skipped
                later = start + times > now + KNOT_TOL_S
                if not later.any():
                    raise ValueError(f"header.stamp {start:.4f} s + last point {times[-1]:.4f} s ends in the past "
                                     f"(sim time {now:.4f} s)")
                positions, times, start = positions[later], start + times[later] - now, now
            out = self.gate.apply(self.follower.state(start)[0], self.follower.recent(start, self.dt), positions, times)
        except ValueError as e:
            self.counts["rejected_trajectories"] += 1
            self._error(f"joint_trajectory rejected: {e}", warn=True)
            return
        self.counts["accepted_trajectories"] += 1
        if out.clipped:
            self.counts["clipped_trajectories"] += 1
            self._error("joint_trajectory clipped to the joint limits", warn=True)
        if start > now + self.p["command_timeout_s"] + 1.0:
            self.get_logger().warning(f"joint_trajectory starts {start - now:.1f} s from now (sim time {now:.3f} s): "
                                      "the current one runs until then", throttle_duration_sec=1.0)
        self.follower.accept(out.positions, out.times, start)

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.episode += 1
        self.tick += 1  # the start state is the next tick: stamps only grow
        self._reset_episode()
        self._publish(status=True)
        response.success, response.message = True, f"episode {self.episode} seed {self.p['seed'] + self.episode}"
        return response

    def _on_pause(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.paused = bool(request.data)
        self.published_wall = time.monotonic()  # a lockstep wait restarts on resume
        state = "paused" if self.paused else "running"
        response.success, response.message = True, f"{state} at sim time {self.sim_time:.3f} s"
        self.get_logger().info(response.message)
        self._publish_status()
        return response

    def _on_step(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if not self.paused or not self.published:
            response.success, response.message = False, ("step works while paused, after the first tick: "
                                                          "call pause (data: true) first")
            return response
        self._advance()
        response.success, response.message = True, f"tick {self.tick} at sim time {self.sim_time:.3f} s"
        return response

    def _error(self, text: str, warn: bool = False) -> None:
        self.last_error, self.error_tick = text, self.tick
        if warn:
            self.get_logger().warning(text, throttle_duration_sec=1.0)
        else:
            self.get_logger().error(text)
        self._publish_status()

    def _controller_ready(self, wall: float) -> bool:
        """Lockstep start: for ``LOCKSTEP_SETTLE_S``, something has read every output and published
        ``joint_trajectory`` (``/clock`` is best effort to rclpy: it needs the time to get through)."""
        outputs = [self.pub_joints, *self.pub_poses.values(), *([self.pub_clock] if self.pub_clock else [])]
        read = all(pub.get_subscription_count() > 0 for pub in outputs)
        if not (read and self.sub_trajectory.get_publisher_count() > 0):
            self.connected_since = None
            return False
        self.connected_since = wall if self.connected_since is None else self.connected_since
        return wall - self.connected_since >= LOCKSTEP_SETTLE_S

    def _on_timer(self) -> None:
        wall = time.monotonic()
        if not self.published:  # the first episode's start state
            if self.p["lockstep"] and not self._controller_ready(wall):
                self._publish_clock()  # its clock runs before the first state reaches it
            else:
                self._publish(status=True)
        elif self.paused or not self._may_step(wall):
            self._publish_clock()
        else:
            self._advance()
        if wall - self.status_wall > 1.0:
            self._publish_status()

    def _may_step(self, wall: float) -> bool:
        """Not lockstep, or the tick's command arrived, or the wait timed out (counted)."""
        if not self.p["lockstep"] or self.command_seen:
            return True
        if wall - self.published_wall < self.p["lockstep_timeout_s"]:
            return False
        self.counts["lockstep_timeouts"] += 1
        self._error(f"lockstep: no joint_trajectory within {self.p['lockstep_timeout_s']} s of tick {self.tick}: "
                    "stepping holding", warn=True)
        return True

    def _setpoint(self, s: float) -> np.ndarray:
        """The setpoint ``[J]`` at sim time ``s`` (watchdog included); a point's own position at its time."""
        q = self.follower.step(s, self.obs[scene.PUSHER_POS])
        at = np.flatnonzero(np.abs(self.follower.knot_t - s) < KNOT_TOL_S)
        return np.clip(self.follower.knot_q[at[-1]] if at.size else q, self.low, self.high)

    def _advance(self) -> None:
        """One control period of physics, then publish the next tick."""
        was_stale, h, t0 = self.follower.stale, self.dt / self.substeps, self.sim_time
        held = self._setpoint(t0 + self.dt) if self.p["lockstep"] else None  # env.step(action): one target per tick
        for k in range(1, self.substeps + 1):
            self.setpoint = held if held is not None else self._setpoint(t0 + k * h)
            self.obs, _, _, _, info = self.env.step(self.setpoint)
        if self.follower.stale and not was_stale:
            self.get_logger().warning(f"no joint_trajectory {self.follower.timeout_s} s after the last point: "
                                      "holding position")
        self.tick += 1
        was_success, self.success = self.success, bool(info.get("is_success", scene.is_success(self.task, self.obs)))
        self._publish(status=self.success != was_success or self.tick % max(1, round(0.5 / self.dt)) == 0)
        if self.video:
            self.video.add(self.env.render())
        if self.p["exit_on_success"] and self.success:
            self.get_logger().info(f"success: {json.dumps(self.task)} at {self.sim_time:.1f} s sim time")
            raise nc.StopNode(0)
        if 0 < self.p["max_duration_s"] <= self.sim_time - self.dt + 1e-9:
            self.get_logger().info(f"max_duration_s={self.p['max_duration_s']} reached, success={self.success}")
            raise nc.StopNode(1 if self.p["exit_on_success"] and not self.success else 0)

    def _publish_clock(self) -> None:
        if self.pub_clock is not None:
            self.pub_clock.publish(Clock(clock=seconds_to_time(self.sim_time)))

    def _publish(self, status: bool) -> None:
        """The current tick, all stamped with its sim time: clock, command, poses, joint states."""
        stamp = seconds_to_time(self.sim_time)
        self._publish_clock()
        cmd = JointState(name=list(self.joint_names), position=[float(v) for v in self.setpoint])
        cmd.header.stamp = stamp
        self.pub_commands.publish(cmd)  # before the state it led to
        joints, poses = observation_msgs(self.obs, stamp, self.joint_names, self.p["frame"])
        for name, pose in poses.items():  # what a camera sees: a square's yaw modulo a quarter turn
            self.pub_poses[name].publish(pose)
        self.pub_joints.publish(joints)  # last: the set is complete when it lands
        self.published, self.command_seen, self.published_wall = True, False, time.monotonic()
        self.rtf_samples.append((self.published_wall, self.sim_time))
        if status:  # every 0.5 s of sim time, on success changes and on errors
            self._publish_status()

    def _measured_rtf(self, wall: float) -> float:
        """Sim seconds per wall second since the oldest tick of the last ``RTF_WINDOW_S`` (0 before two)."""
        samples = self.rtf_samples
        while len(samples) > 1 and samples[1][0] <= wall - RTF_WINDOW_S:
            samples.popleft()
        if not samples or wall <= samples[0][0]:
            return 0.0
        return (self.sim_time - samples[0][1]) / (wall - samples[0][0])

    def _publish_status(self) -> None:
        wall = time.monotonic()
        self.status_wall = wall
        recent_error = (self.tick - self.error_tick) * self.dt < 2.0
        level = nc.WARN if recent_error or self.follower.stale else nc.OK
        if not self.published:
            message = "lockstep: waiting for a controller (joint_states readers, a joint_trajectory writer)"
        elif self.paused:
            message = "paused"
        else:
            message = "success" if self.success else ("holding: stale command" if self.follower.stale else "running")
        values = {"task": self.task, "distance": scene.step_distance(self.task, self.obs), "is_success": self.success,
                  "step": self.tick - self.episode_start, "sim_time": self.sim_time, "episode": self.episode,
                  "paused": self.paused, "lockstep": self.p["lockstep"],
                  "real_time_factor": self.p["real_time_factor"], "real_time_factor_measured": self._measured_rtf(wall),
                  **self.counts, "stale_command": self.follower.stale, "last_error": self.last_error}
        msg = nc.status_msg(self, level, message, values, hardware_id="mujoco")
        msg.header.stamp = seconds_to_time(self.sim_time)
        self.pub_status.publish(msg)

    def close(self, interrupted: bool) -> None:
        if self.video:
            ok, text = self.video.write()
            (self.get_logger().info if ok else self.get_logger().error)(text)
        self.env.close()


def main(args: list[str] | None = None) -> int:
    return nc.run_node(SimNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
