"""policy_controller: any policy of the evaluation harness (D-MPC, the proposer, the scripted expert) as a ROS 2 controller.

    python -m forethought.ros_ws.policy_controller --ros-args --params-file stack.yaml

The policy is built exactly as ``forethought eval --policy NAME`` builds it
(``forethought.models.evaluation.build_policy``), so what the benchmarks measure is what runs here.

- ``goal`` (std_msgs/String, JSON plan step): a new step resets the policy with it (a repeat of
  the current step is ignored, so an executive may republish it). A bad goal is logged, counted,
  never fatal. Until the first goal (or the ``task`` parameter), nothing is sent (the sim node
  holds position).
- ``observation`` (Float32MultiArray, layout in ``node_common``): one ``act`` per observation,
  published as a one-point ``joint_trajectory`` (the target pusher position, ``time_from_start``
  ``point_time_s``). Replanning happens inside ``act`` when the policy's chunk runs out.
- Safety: an observation with NaN/inf or the wrong size is refused (no command: the sim node's
  watchdog holds position); an action with NaN/inf is not sent; every action is clipped to the
  workspace limits before it leaves the node.
- ``status`` (DiagnosticArray, 1 Hz): policy, goal, commands sent, refusals, median and max
  ``act`` time over the last second.
"""

from __future__ import annotations

from forethought.runtime import prepare_node_process

prepare_node_process(__name__)  # first: local defaults before rclpy; a stop signal during start-up exits quietly

import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from builtin_interfaces.msg import Duration  # noqa: E402
from std_msgs.msg import Float32MultiArray, String  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402

import forethought.models.control.policy  # noqa: E402,F401  (registers dmpc)
from forethought.models.evaluation import PolicySpec, build_policy  # noqa: E402
from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.runtime import pretrained_dir  # noqa: E402
from forethought.sim import PUSH_BLOCKS_ID, scene  # noqa: E402

PARAMS = {
    "policy": ("dmpc", "harness policy name: dmpc, proposer, expert, ..."),
    "task": ("", "initial JSON plan step; empty: wait for a goal"),
    "model": (str(pretrained_dir() / "proposer-pushblocks"), "checkpoint directory of the policy; empty: none"),
    "planner": ("ssr", "dmpc only: ssr, mppi or cem (the oracle needs a simulator copy, not available here)"),
    "dynamics": (str(pretrained_dir() / "dynamics-pushblocks"), "dmpc only: dynamics ensemble directory"),
    "policy_options": ("{}", "JSON object of extra policy options (forethought eval --policy-option KEY=VALUE)"),
    "num_inference_steps": (0, "diffusion sampling steps; 0: the model's default"),
    "action_steps": (0, "actions executed per chunk before replanning; 0: the model's default"),
    "seed": (0, "seeds the policy's sampling; the k-th goal uses seed + k"),
    "threads": (2, "torch CPU threads"),
    "point_time_s": (0.0, "time_from_start of the published point (s), 0 to 10"),
}


def parse_options(text: str) -> dict[str, str]:
    """``policy_options`` JSON -> ``{str: str}`` (what ``--policy-option KEY=VALUE`` gives)."""
    try:
        options = json.loads(text or "{}")
    except json.JSONDecodeError as e:
        raise ValueError(f"policy_options is not valid JSON ({e.msg}): {text!r}") from None
    if not isinstance(options, dict):
        raise ValueError(f"policy_options must be a JSON object, got {text!r}")
    return {str(k): str(v) for k, v in options.items()}


class PolicyController(nc.ReportingNode):
    def __init__(self) -> None:
        super().__init__("policy_controller")
        p = nc.declare_parameters(self, PARAMS)
        nc.check_range("point_time_s", p["point_time_s"], 0.0, 10.0)
        nc.check_range("threads", p["threads"], 1, 256)
        torch.set_num_threads(p["threads"])
        spec = PolicySpec(
            model=Path(p["model"]) if p["model"] else None,
            env_id=PUSH_BLOCKS_ID,
            observation_dim=scene.OBS_DIM,
            action_dim=scene.ACTION_DIM,
            num_inference_steps=p["num_inference_steps"] or None,
            action_steps=p["action_steps"] or None,
            options=parse_options(p["policy_options"]),
            planner=p["planner"] if p["policy"] == "dmpc" else None,
            dynamics=p["dynamics"] if p["policy"] == "dmpc" else None,
        )
        if spec.planner == "oracle" or spec.dynamics == "oracle":
            raise ValueError("the oracle planner rolls out in a copy of the simulator; a ROS controller has none")
        try:
            self.policy = build_policy(p["policy"], spec)
        except (OSError, FileNotFoundError) as e:
            raise ValueError(f"policy {p['policy']!r} with model {p['model']!r}: {e}") from None
        self.p = p
        self.point_time = Duration(sec=int(p["point_time_s"]), nanosec=int(round(p["point_time_s"] % 1 * 1e9)))
        self.task: dict[str, Any] | None = None
        self.present = scene.BLOCK_NAMES
        self.goals = 0
        self.counts = {"commands": 0, "refused_observations": 0, "bad_goals": 0, "bad_actions": 0}
        self.act_ms: list[float] = []
        self.pub_traj = self.create_publisher(JointTrajectory, "joint_trajectory", 10)
        self.pub_status = self.create_publisher(nc.DiagnosticArray, "status", 10)
        self.create_subscription(Float32MultiArray, "observation", self._on_observation, 10)
        self.create_subscription(String, "goal", self._on_goal, 10)
        self.create_timer(1.0, self._publish_status)
        if p["task"].strip():
            self._set_task(nc.parse_step(p["task"]))
        self.get_logger().info(f"policy {p['policy']} ({p['model'] or 'no model'}), task={json.dumps(self.task)}")

    def _on_goal(self, msg: String) -> None:
        try:
            step = nc.parse_step(msg.data, self.present)
        except ValueError as e:
            self.warn(f"goal refused: {e}", "bad_goals")
            return
        if step != self.task:
            self._set_task(step)

    def _set_task(self, step: dict[str, Any]) -> None:
        self.task = step
        self.policy.reset(step, self.p["seed"] + self.goals)
        self.goals += 1
        self.get_logger().info(f"goal: {json.dumps(step)}")

    def _on_observation(self, msg: Float32MultiArray) -> None:
        obs = self.observation(msg, refusal="observation refused")
        if obs is None:
            return
        self.present = scene.present_blocks(obs)
        if self.task is None:
            return
        t0 = time.perf_counter()
        action = np.asarray(self.policy.act(obs), dtype=np.float64)
        self.act_ms.append((time.perf_counter() - t0) * 1e3)
        if action.shape != (len(scene.PUSHER_JOINTS),) or not np.all(np.isfinite(action)):
            self.warn(f"policy returned {action.tolist()}; not sending it", "bad_actions")
            return
        action = np.clip(action, -scene.WORKSPACE_HALF, scene.WORKSPACE_HALF)
        traj = JointTrajectory(joint_names=list(scene.PUSHER_JOINTS))
        traj.header.stamp = self.get_clock().now().to_msg()
        traj.points = [JointTrajectoryPoint(positions=action.tolist(), time_from_start=self.point_time)]
        self.pub_traj.publish(traj)
        self.counts["commands"] += 1

    def _publish_status(self) -> None:
        level = nc.WARN if self.last_error else nc.OK
        message = "waiting for a goal" if self.task is None else "running"
        timing = {"act_ms_median": float(np.median(self.act_ms)), "act_ms_max": max(self.act_ms)} if self.act_ms else {}
        values = {"policy": self.p["policy"], "task": self.task, **self.counts, **timing, "last_error": self.last_error}
        self.publish_status(level, message, values)
        self.act_ms = []


def main(args: list[str] | None = None) -> int:
    return nc.run_node(PolicyController, args)


if __name__ == "__main__":
    raise SystemExit(main())
