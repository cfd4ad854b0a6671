"""policy_controller: any policy of the evaluation harness (D-MPC, the proposer, the scripted expert) as a ROS 2 controller.

    python -m forethought.ros_ws.policy_controller --ros-args --params-file stack.yaml

The policy is built exactly as ``forethought eval --policy NAME`` builds it
(``forethought.models.evaluation.build_policy``), so what the benchmarks measure is what runs here.

- ``goal`` (std_msgs/String, JSON plan step): a new step resets the policy with it (a repeat of
  the current step is ignored, so an executive may republish it). A bad goal is logged, counted,
  never fatal. Until the first goal (or the ``task`` parameter), nothing is sent. Before every
  ``act`` the goal is re-checked against the blocks the observation shows: a goal naming an
  absent block (e.g. accepted before the first observation) is refused (``bad_goals``) and the
  controller holds.
- No silent death: an exception in ``policy.act`` (or any callback) is logged with its
  traceback and reported as ERROR on ``status`` (the executive fails the plan on it); the
  controller drops its goal and holds until the next goal.
- Idle and hold: on a hold goal (``node_common.hold_goal``: plan done, refused or cancelled, a
  stop command) the controller drops its step; while its step is achieved
  (``scene.is_success``) it waits. Either way it publishes one trajectory that brings the
  setpoint to rest (``SafetyGate.stop``), then no motion: the robot holds.
- ``observation`` (Float32MultiArray, layout in ``node_common``): one ``act`` per observation.
  The chunk the policy has committed to (the action ``act`` returns, then what D-MPC or the
  proposer still has queued, ``queued_actions``) goes out as ONE ``joint_trajectory`` that
  ros2_control's joint_trajectory_controller accepts: stamp zero (start on receipt), the chunk's
  positions one control period apart from one period ahead (``control_rate_hz``), then the last
  position again (it ends at rest), so at least two points and no velocities. Each replaces the
  remainder of the previous one.
- Safety: an observation with NaN/inf or the wrong size is refused (no command); an action with
  NaN/inf is not sent. The last step before publishing is the safety gate
  (``safety.SafetyGate``, the ``LIMIT_PARAMS`` of the YAML), from the setpoint the robot is at by
  this node's own model of it (a ``TrajectoryFollower`` of what it sent, one observation per
  control period): clipped (``clipped_trajectories``) or refused (``gate_rejections``), by
  ``limit_mode``.
- ``status`` (DiagnosticArray, 1 Hz): policy, goal, mode, trajectories sent, holds, gate
  interventions, refusals, median and max ``act`` time over the last second.
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
from std_msgs.msg import Float32MultiArray, String  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

import forethought.models.control.policy  # noqa: E402,F401  (registers dmpc)
from forethought.models.evaluation import PolicySpec, build_policy  # noqa: E402
from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.ros_ws.safety import LIMIT_PARAMS, SafetyGate  # noqa: E402
from forethought.ros_ws.trajectory import TrajectoryFollower  # noqa: E402
from forethought.runtime import pretrained_dir  # noqa: E402
from forethought.sim import PUSH_BLOCKS_ID, scene  # noqa: E402

PARAMS = {
    "policy": ("dmpc", "harness policy name: dmpc, proposer, expert, ..."),
    "task": ("", "initial JSON plan step; empty: wait for a goal"),
    "model": (str(pretrained_dir() / "proposer-pushblocks"), "checkpoint directory of the policy; empty: none"),
    "planner": ("ssr", "dmpc only: ssr, mppi or cem (the oracle needs a simulator copy, not available here)"),
    "dynamics": (str(pretrained_dir() / "dynamics-pushblocks"), "dmpc only: dynamics ensemble directory"),
    "policy_options": ("{}", "JSON object of extra policy options (forethought eval --policy-option KEY=VALUE)"),
    "backend": ("torch", "dmpc only: torch, or onnx (proposer denoiser and dynamics rollout on onnxruntime)"),
    "num_inference_steps": (0, "diffusion sampling steps; 0: the model's default"),
    "action_steps": (0, "actions executed per chunk before replanning; 0: the model's default"),
    "seed": (0, "seeds the policy's sampling; the k-th goal uses seed + k"),
    "threads": (2, "torch CPU threads"),
    "control_rate_hz": (10.0, "observations (control ticks) per second: the spacing of trajectory points"),
    "command_timeout_s": (1.0, "the robot holds where it is this long after a trajectory's last point"),
    **LIMIT_PARAMS,
}


def queued_actions(policy: Any) -> list[np.ndarray]:
    """The actions ``[A]`` a harness policy has committed to after the one ``act`` returned: the
    rest of D-MPC's executed chunk (``DMPCPolicy._queue``) or of the proposer's
    (``DiffusionProposer._action_queue``); none for a closed-loop policy such as the expert."""
    queue = getattr(policy, "_queue", None)
    if queue is None:
        queue = getattr(getattr(policy, "proposer", None), "_action_queue", None)
    return [np.asarray(a.cpu().numpy() if isinstance(a, torch.Tensor) else a, dtype=np.float64) for a in queue or ()]


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
        nc.check_range("threads", p["threads"], 1, 256)
        nc.check_range("control_rate_hz", p["control_rate_hz"], 0, 1000, lo_open=True)
        nc.check_range("command_timeout_s", p["command_timeout_s"], 0, 1e6)
        self.period = 1.0 / p["control_rate_hz"]
        self.gate = SafetyGate.from_params(p, self.period)
        torch.set_num_threads(p["threads"])
        spec = PolicySpec(
            model=Path(p["model"]) if p["model"] else None,
            env_id=PUSH_BLOCKS_ID,
            observation_dim=scene.OBS_DIM,
            action_dim=scene.ACTION_DIM,
            num_inference_steps=p["num_inference_steps"] or None,
            action_steps=p["action_steps"] or None,
            options={**parse_options(p["policy_options"]),
                     **({"backend": p["backend"]} if p["policy"] == "dmpc" else {})},
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
        self.task: dict[str, Any] | None = None
        self.present = scene.BLOCK_NAMES
        self.goals = 0
        self.ticks = 0  # valid observations: this node's clock is ticks * period
        self.follower: TrajectoryFollower | None = None  # what the robot executes, as sent
        self.moving = False  # a motion trajectory went out since the last hold
        self.hold_reason = "waiting for a goal"
        self.counts = {"commands": 0, "holds": 0, "clipped_trajectories": 0, "gate_rejections": 0,
                       "refused_observations": 0, "bad_goals": 0, "bad_actions": 0}
        self.act_ms: list[float] = []
        self.pub_traj = self.create_publisher(JointTrajectory, "joint_trajectory", 10)
        self.pub_status = self.create_publisher(nc.DiagnosticArray, "status", 10)
        self.create_subscription(Float32MultiArray, "observation", self.guard(self._on_observation), 1)  # latest only: never act on a backlog
        self.create_subscription(String, "goal", self.guard(self._on_goal), 10)
        self.create_timer(1.0, self.guard(self._publish_status))
        if p["task"].strip():
            self._set_task(nc.parse_step(p["task"]))
        self.get_logger().info(f"policy {p['policy']} ({p['model'] or 'no model'}), task={json.dumps(self.task)}")

    def _on_goal(self, msg: String) -> None:
        try:
            step = nc.parse_goal(msg.data, self.present)
        except ValueError as e:
            self.warn(f"goal refused: {e}", "bad_goals")
            return
        if step["skill"] == nc.HOLD_SKILL:
            if self.task is not None:
                self.task = None
                self._hold(step["reason"] or "hold goal")
            return
        if step != self.task:
            self._set_task(step)

    def _set_task(self, step: dict[str, Any]) -> None:
        self.task = step
        self.policy.reset(step, self.p["seed"] + self.goals)
        self.goals += 1
        self.get_logger().info(f"goal: {json.dumps(step)}")

    @property
    def now(self) -> float:
        return self.ticks * self.period

    def _on_observation(self, msg: Float32MultiArray) -> None:
        obs = self.observation(msg, refusal="observation refused")
        if obs is None:
            return
        self.present = scene.present_blocks(obs)
        self.ticks += 1
        measured = obs[scene.PUSHER_POS].astype(np.float64)
        if self.follower is None:
            self.follower = TrajectoryFollower(measured, self.p["command_timeout_s"])
        self.follower.step(self.now, measured)  # the robot's watchdog, mirrored
        if self.task is None:
            return
        try:
            scene.validate_step(self.task, present=self.present)
        except ValueError as e:
            self.warn(f"goal refused: {e} (blocks present: {list(self.present)})", "bad_goals")
            self.task = None
            self._hold("goal names an absent block")
            return
        if scene.is_success(self.task, obs):
            self._hold("step achieved")
            return
        t0 = time.perf_counter()
        try:
            action = np.asarray(self.policy.act(obs), dtype=np.float64)
        except Exception as e:  # noqa: BLE001  (a policy bug: report it, drop the goal, hold)
            self.report_fault("policy.act", e)
            self.task = None
            self._hold("policy error")
            return
        self.act_ms.append((time.perf_counter() - t0) * 1e3)
        chunk = np.array([action.reshape(-1), *queued_actions(self.policy)]) if action.size == 2 else action
        if chunk.ndim != 2 or chunk.shape[1] != len(scene.PUSHER_JOINTS) or not np.all(np.isfinite(chunk)):
            self.warn(f"policy returned {action.tolist()} (chunk {chunk.shape}); not sending it", "bad_actions")
            return
        positions = np.vstack([chunk, chunk[-1:]])  # ends at rest on the last action
        self._send(positions, self.period * np.arange(1, len(positions) + 1))

    def _send(self, positions: np.ndarray, times: np.ndarray) -> None:
        """Gate ``positions[P, J]`` at ``times[P]`` from the current setpoint, publish, remember."""
        assert self.follower is not None
        try:
            out = self.gate.apply(self.follower.state(self.now)[0], self.follower.recent(self.now, self.period),
                                  positions, times)
        except ValueError as e:
            self.warn(f"trajectory not sent: {e}", "gate_rejections")
            return
        if out.clipped:
            self.warn("trajectory clipped to the joint limits", "clipped_trajectories")
        self.pub_traj.publish(nc.trajectory_msg(out.positions, out.times, scene.PUSHER_JOINTS))
        self.follower.accept(out.positions, out.times, self.now)
        self.counts["commands"] += 1
        self.moving = True

    def _hold(self, reason: str) -> None:
        """Stop publishing motion: one trajectory that brings the setpoint to rest, once."""
        self.hold_reason = reason
        if not self.moving or self.follower is None:
            return
        self.moving = False
        stop = self.gate.stop(self.follower.state(self.now)[0], self.follower.recent(self.now, self.period))
        self.pub_traj.publish(nc.trajectory_msg(stop.positions, stop.times, scene.PUSHER_JOINTS))
        self.follower.accept(stop.positions, stop.times, self.now)
        self.counts["holds"] += 1
        self.get_logger().info(f"holding: {reason}")

    def _publish_status(self) -> None:
        level = nc.WARN if self.last_error else nc.OK
        message = "running" if self.moving else f"holding: {self.hold_reason}"
        timing = {"act_ms_median": float(np.median(self.act_ms)), "act_ms_max": max(self.act_ms)} if self.act_ms else {}
        values = {"policy": self.p["policy"], "task": self.task, "moving": self.moving, **self.counts, **timing,
                  "last_error": self.last_error}
        self.publish_status(level, message, values)
        self.act_ms = []


def main(args: list[str] | None = None) -> int:
    return nc.run_node(PolicyController, args)


if __name__ == "__main__":
    raise SystemExit(main())
