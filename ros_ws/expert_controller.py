"""expert_controller: a scripted expert (``forethought.sim.experts``) as a ROS 2 controller.

    python -m forethought.ros_ws.expert_controller --ros-args --params-file sim.yaml

For every ``observation`` (Float32MultiArray, layout in ``node_common``) it calls
``make_expert(env_id).act(obs, step)`` and publishes a ``joint_trajectory`` chunk, so it runs at
the sim node's control rate. The expert is reactive (one target per observation), so a chunk is a
single point: the target pusher position with ``time_from_start`` 0 ("go there now"); the sim
node holds it until the next chunk. For a driver that interpolates from the current state
(ros2_control's joint_trajectory_controller), set ``point_time_s`` to about one control period.

- ``goal`` (std_msgs/String, JSON plan step) replaces the task (initially the ``task``
  parameter; empty: wait for a goal); a repeat of the current step is ignored. A bad goal is
  logged and counted, never fatal.
- An observation of the wrong size, or with NaN/inf, is refused (logged, counted): no command is
  sent, so the sim node holds its last one and its watchdog then holds position.
- ``status`` (DiagnosticArray, 1 Hz): task, commands sent, refused observations and goals.
"""

from __future__ import annotations

if __name__ == "__main__":  # a process of its own: a stop signal during start-up exits quietly
    import signal
    import sys

    for _sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_sig, lambda *_: sys.exit(0))  # run_node installs the real handlers

from forethought.runtime import apply_defaults  # noqa: E402

apply_defaults()  # before rclpy is imported: discovery stays on loopback unless the user says otherwise

import json  # noqa: E402

import numpy as np  # noqa: E402
from builtin_interfaces.msg import Duration  # noqa: E402
from rcl_interfaces.msg import SetParametersResult  # noqa: E402
from rclpy.node import Node  # noqa: E402
from std_msgs.msg import Float32MultiArray, String  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402

from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.ros_ws.graph import DEFAULT_TASK  # noqa: E402
from forethought.sim import scene  # noqa: E402
from forethought.sim.experts import make_expert  # noqa: E402

PARAMS = {
    "env_id": ("forethought/PushBlocks-v0", "gymnasium id whose scripted expert to run"),
    "task": (DEFAULT_TASK, "initial JSON plan step; empty: wait for a goal"),
    "point_time_s": (0.0, "time_from_start of the published point (s), 0 to 10"),
}


class ExpertController(Node):
    def __init__(self) -> None:
        super().__init__("expert_controller")
        p = nc.declare_parameters(self, PARAMS)
        if not 0.0 <= p["point_time_s"] <= 10.0:
            raise ValueError(f"point_time_s={p['point_time_s']} must be in [0, 10]")
        self.task = nc.parse_step(p["task"]) if p["task"].strip() else None
        self.expert = make_expert(p["env_id"])  # ValueError (exit 2) for an env without an expert
        self.point_time = Duration(sec=int(p["point_time_s"]), nanosec=int(round(p["point_time_s"] % 1 * 1e9)))
        self.present = scene.BLOCK_NAMES
        self.counts = {"commands": 0, "refused_observations": 0, "bad_goals": 0}
        self.last_error = ""
        self.add_on_set_parameters_callback(self._on_set)
        self.pub_traj = self.create_publisher(JointTrajectory, "joint_trajectory", 10)
        self.pub_status = self.create_publisher(nc.DiagnosticArray, "status", 10)
        self.create_subscription(Float32MultiArray, "observation", self._on_observation, 10)
        self.create_subscription(String, "goal", self._on_goal, 10)
        self.create_timer(1.0, self._publish_status)
        self.get_logger().info(f"expert for {p['env_id']}, task={json.dumps(self.task)}")

    def _on_set(self, params: list) -> SetParametersResult:
        """Only ``task`` changes at run time (validated, like a ``goal``)."""
        try:
            for prm in params:
                if prm.name != "task":
                    raise ValueError(f"{prm.name} is read-only while running; restart the node to change it")
                step = nc.parse_step(prm.value, self.present) if prm.value.strip() else None
        except ValueError as e:
            return SetParametersResult(successful=False, reason=str(e))
        if params:
            self.task = step
            self.expert.reset()
        return SetParametersResult(successful=True)

    def _on_goal(self, msg: String) -> None:
        try:
            step = nc.parse_step(msg.data, self.present)
        except ValueError as e:
            self.counts["bad_goals"] += 1
            self._refuse(f"goal refused: {e}")
            return
        if step == self.task:  # an executive republishes its active step for late joiners
            return
        self.task = step
        self.expert.reset()
        self.get_logger().info(f"task: {json.dumps(self.task)}")

    def _on_observation(self, msg: Float32MultiArray) -> None:
        try:
            obs = nc.msg_to_obs(msg)
            if not np.all(np.isfinite(obs)):
                raise ValueError("observation has NaN or infinite values; holding")
        except ValueError as e:
            self.counts["refused_observations"] += 1
            self._refuse(f"observation refused: {e}")
            return
        self.present = scene.present_blocks(obs)
        if self.task is None:
            return
        target = np.asarray(self.expert.act(obs, self.task), dtype=np.float64)
        if target.shape != (len(nc.JOINTS),) or not np.all(np.isfinite(target)):
            self._refuse(f"expert returned {target.tolist()}; not sending it")
            return
        target = np.clip(target, -scene.WORKSPACE_HALF, scene.WORKSPACE_HALF)
        traj = JointTrajectory(joint_names=list(nc.JOINTS))
        traj.header.stamp = self.get_clock().now().to_msg()
        traj.points = [JointTrajectoryPoint(positions=target.tolist(), time_from_start=self.point_time)]
        self.pub_traj.publish(traj)
        self.counts["commands"] += 1

    def _refuse(self, text: str) -> None:
        self.last_error = text
        self.get_logger().warning(text, throttle_duration_sec=2.0)

    def _publish_status(self) -> None:
        level = nc.WARN if self.last_error else nc.OK
        message = "waiting for a goal" if self.task is None else "running"
        values = {"task": self.task, **self.counts, "last_error": self.last_error}
        self.pub_status.publish(nc.status_msg(self, level, message, values))
        self.last_error = ""


def main(args: list[str] | None = None) -> int:
    return nc.run_node(ExpertController, args)


if __name__ == "__main__":
    raise SystemExit(main())
