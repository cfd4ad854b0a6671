"""sim_node: the MuJoCo PushBlocks task behind standard ROS 2 topics.

    python -m forethought.ros_ws.sim_node --ros-args --params-file sim.yaml -r __node:=sim_node

Each control tick (``control_rate_hz`` in sim time; the wall-clock timer runs
``real_time_factor`` times faster) it steps the physics (0.005 s steps), sending the pusher's
position setpoint at every step, and publishes, in this order, ``joint_commands``
(sensor_msgs/JointState: ``position`` is the setpoint at the end of this tick), ``joint_states`` (pusher_x, pusher_y: measured position
and velocity after the tick, with the same header stamp), ``objects/<name>/pose``
(geometry_msgs/PoseStamped, frame ``table``, the same stamp: one topic per block present, as a
perception node would publish it; ``stamped.StampedInputs`` builds the observation from these
and ``joint_states``), ``observation`` (Float32MultiArray,
layout in ``node_common``), ``status`` (DiagnosticArray) and ``/clock`` (sim time, if
``publish_clock``). Publishing the command before the observation it led to (the
topic_based_ros2_control convention) lets a subscriber such as ``world_model_node`` pair them.
All durations below are sim seconds; at ``real_time_factor`` 1 they equal wall seconds.

- ``joint_trajectory`` (trajectory_msgs/JointTrajectory), executed the way ros2_control's
  joint_trajectory_controller does (``trajectory.TrajectoryFollower``): a trajectory with a zero
  ``header.stamp`` starts on receipt and replaces the remainder of the current one; points are
  joined linearly in time from the current setpoint and sampled at the physics rate; the whole
  trajectory is followed, then its last point held; ``command_timeout_s`` after the last point
  the pusher holds where it is. One with unknown joints, a NaN/inf, times not > 0 and
  increasing, or a non-zero stamp (stamped start times need sim time: not yet) is rejected
  whole (warning, ``rejected_trajectories`` in status).
- The safety gate (``safety.SafetyGate``, the ``LIMIT_PARAMS`` of the YAML) checks every
  accepted trajectory from the current setpoint: outside the position/velocity/acceleration
  limits it is clipped (``clipped_trajectories``) or rejected, by ``limit_mode``.
- ``goal`` (std_msgs/String, JSON plan step): validated, then ``set_task`` (a repeat of the
  current step is ignored; a hold goal keeps the task); a bad one is logged and counted
  (``bad_goals``), never fatal.
- ``reset`` (std_srvs/Trigger): new episode, seeded ``seed + k`` for the k-th reset.

Exit codes: 0 on SIGINT/SIGTERM, on success with ``exit_on_success``, or when
``max_duration_s`` runs out without ``exit_on_success``; 1 when it runs out with
``exit_on_success`` and no success; 2 for a bad parameter. A ``video_path`` is written on exit.
"""

from __future__ import annotations

from forethought.runtime import prepare_node_process

prepare_node_process(__name__)  # first: local defaults before rclpy; a stop signal during start-up exits quietly

import json  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
from rcl_interfaces.msg import SetParametersResult  # noqa: E402
from rclpy.node import Node  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float32MultiArray, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.ros_ws.graph import DEFAULT_TASK  # noqa: E402
from forethought.ros_ws.safety import LIMIT_PARAMS, SafetyGate  # noqa: E402
from forethought.ros_ws.stamped import TABLE_FRAME, pose_topic, quaternion_from_yaw  # noqa: E402
from forethought.ros_ws.trajectory import TrajectoryFollower  # noqa: E402
from forethought.sim import PUSH_BLOCKS_ID, scene  # noqa: E402
from forethought.sim.scene import PUSHER_JOINTS  # noqa: E402

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
    "real_time_factor": (1.0, "sim seconds per wall second"),
    "command_timeout_s": (1.0, "hold where the pusher is this long after a trajectory's last point; 0 disables"),
    "video_path": ("", "MP4/GIF written on exit; empty: no video"),
    "video_size": (256, "video width and height in pixels"),
    "exit_on_success": (False, "exit (code 0) as soon as the task succeeds"),
    "max_duration_s": (0.0, "exit after this much sim time; 0: run until stopped"),
    "publish_clock": (True, "publish sim time on /clock (needs rosgraph_msgs)"),
    **LIMIT_PARAMS,
}
BLOCK_CENTRE_Z = 0.02
"""Height (m) of a block's centre above the table (``sim/assets/pushblocks.xml``)."""
RUNTIME = {"task", "command_timeout_s", "exit_on_success", "max_duration_s"}


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
        nc.check_range("max_duration_s", p["max_duration_s"], 0, 1e9)
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
        self.tick, self.episode, self.success = 0, 0, False
        self.counts = {"accepted_trajectories": 0, "clipped_trajectories": 0, "rejected_trajectories": 0,
                       "bad_goals": 0}
        self.last_error, self.error_tick = "", -(10**9)
        self._reset_episode()
        self.add_on_set_parameters_callback(self._on_set)
        self.pub_commands = self.create_publisher(JointState, "joint_commands", 10)
        self.pub_joints = self.create_publisher(JointState, "joint_states", 10)
        self.pub_poses = {b: self.create_publisher(PoseStamped, pose_topic(b), 10) for b in self.present}
        self.pub_obs = self.create_publisher(Float32MultiArray, "observation", 10)
        self.pub_status = self.create_publisher(nc.DiagnosticArray, "status", 10)
        self.pub_clock = self.create_publisher(Clock, "/clock", 10) if Clock and p["publish_clock"] else None
        self.create_subscription(JointTrajectory, "joint_trajectory", self._on_trajectory, 10)
        self.create_subscription(String, "goal", self._on_goal, 10)
        self.create_service(Trigger, "reset", self._on_reset)
        self.create_timer(self.dt / p["real_time_factor"], self._on_tick)
        self.get_logger().info(f"{p['env_id']} n_blocks={p['n_blocks']} task={json.dumps(self.task)} "
                               f"at {p['control_rate_hz']} Hz x{p['real_time_factor']}")

    @property
    def sim_time(self) -> float:
        return self.tick * self.dt

    def _reset_episode(self) -> None:
        self.obs, _ = self.env.reset(seed=self.p["seed"] + self.episode, options={"task": self.task})
        self.present = scene.present_blocks(self.obs)
        self.follower = TrajectoryFollower(self.obs[scene.PUSHER_POS], self.p["command_timeout_s"])
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
        now = self.sim_time
        try:
            if msg.header.stamp.sec or msg.header.stamp.nanosec:
                raise ValueError("non-zero header.stamp: sim_node starts trajectories on receipt (stamp 0)")
            positions, times = nc.check_trajectory(msg, PUSHER_JOINTS)
            out = self.gate.apply(self.follower.state(now)[0], self.follower.recent(now, self.dt), positions, times)
        except ValueError as e:
            self.counts["rejected_trajectories"] += 1
            self._error(f"joint_trajectory rejected: {e}", warn=True)
            return
        self.counts["accepted_trajectories"] += 1
        if out.clipped:
            self.counts["clipped_trajectories"] += 1
            self._error("joint_trajectory clipped to the joint limits", warn=True)
        self.follower.accept(out.positions, out.times, now)

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.episode += 1
        self._reset_episode()
        response.success, response.message = True, f"episode {self.episode} seed {self.p['seed'] + self.episode}"
        return response

    def _error(self, text: str, warn: bool = False) -> None:
        self.last_error, self.error_tick = text, self.tick
        if warn:
            self.get_logger().warning(text, throttle_duration_sec=1.0)
        else:
            self.get_logger().error(text)
        self._publish_status()

    def _on_tick(self) -> None:
        was_stale, h = self.follower.stale, self.dt / self.substeps
        for k in range(1, self.substeps + 1):  # the setpoint at the end of each physics step
            action = np.clip(self.follower.step(self.sim_time + k * h, self.obs[scene.PUSHER_POS]), self.low, self.high)
            self.obs, _, _, _, info = self.env.step(action.astype(np.float32))
        if self.follower.stale and not was_stale:
            self.get_logger().warning(f"no joint_trajectory {self.follower.timeout_s} s after the last point: "
                                      "holding position")
        self.tick += 1
        was_success, self.success = self.success, bool(info.get("is_success", scene.is_success(self.task, self.obs)))
        self._publish(action, status=self.success != was_success or self.tick % max(1, round(0.5 / self.dt)) == 0)
        if self.video:
            self.video.add(self.env.render())
        if self.p["exit_on_success"] and self.success:
            self.get_logger().info(f"success: {json.dumps(self.task)} after {self.sim_time:.1f} s sim time")
            raise nc.StopNode(0)
        if 0 < self.p["max_duration_s"] <= self.sim_time + 1e-9:
            self.get_logger().info(f"max_duration_s={self.p['max_duration_s']} reached, success={self.success}")
            raise nc.StopNode(1 if self.p["exit_on_success"] and not self.success else 0)

    def _publish(self, action: np.ndarray, status: bool) -> None:
        stamp = self.get_clock().now().to_msg()
        cmd = JointState(name=list(PUSHER_JOINTS), position=[float(v) for v in action])
        cmd.header.stamp = stamp
        self.pub_commands.publish(cmd)  # before the observation it led to
        js = JointState(name=list(PUSHER_JOINTS))
        js.header.stamp = stamp
        js.position = [float(self.env.unwrapped.data.joint(j).qpos[0]) for j in PUSHER_JOINTS]
        js.velocity = [float(self.env.unwrapped.data.joint(j).qvel[0]) for j in PUSHER_JOINTS]
        self.pub_joints.publish(js)
        for name, pub in self.pub_poses.items():  # what a camera sees: a square's yaw modulo a quarter turn
            pose = PoseStamped()
            pose.header.stamp, pose.header.frame_id = stamp, TABLE_FRAME
            i, pos, rot = scene.block_slice(name).start, pose.pose.position, pose.pose.orientation
            pos.x, pos.y, pos.z = float(self.obs[i + 1]), float(self.obs[i + 2]), BLOCK_CENTRE_Z
            rot.x, rot.y, rot.z, rot.w = quaternion_from_yaw(float(self.obs[i + 3]))
            pub.publish(pose)
        self.pub_obs.publish(nc.obs_to_msg(self.obs))
        if self.pub_clock is not None:
            self.pub_clock.publish(Clock(clock=nc.sim_stamp(self.sim_time)))
        if status:  # every 0.5 s of sim time, on success changes and on errors
            self._publish_status()

    def _publish_status(self) -> None:
        recent_error = (self.tick - self.error_tick) * self.dt < 2.0
        level = nc.WARN if recent_error or self.follower.stale else nc.OK
        message = "success" if self.success else ("holding: stale command" if self.follower.stale else "running")
        values = {"task": self.task, "distance": scene.step_distance(self.task, self.obs), "is_success": self.success,
                  "step": self.tick - self.episode_start, "sim_time": self.sim_time, "episode": self.episode,
                  **self.counts, "stale_command": self.follower.stale, "last_error": self.last_error}
        self.pub_status.publish(nc.status_msg(self, level, message, values, hardware_id="mujoco"))

    def close(self, interrupted: bool) -> None:
        if self.video:
            ok, text = self.video.write()
            (self.get_logger().info if ok else self.get_logger().error)(text)
        self.env.close()


def main(args: list[str] | None = None) -> int:
    return nc.run_node(SimNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
