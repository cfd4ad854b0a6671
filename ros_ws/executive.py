"""executive: steps through a plan, handing the controller one plan step at a time.

    python -m forethought.ros_ws.executive --ros-args --params-file stack.yaml

- ``plan`` (std_msgs/String, JSON plan from ``planner_node``): validated against the blocks the
  latest ``observation`` shows. A new plan replaces the current one; a refusal or an invalid plan
  is logged and the robot keeps holding (no goal is sent).
- ``goal`` (std_msgs/String, JSON plan step): the active step, published when it changes and
  again every ``goal_period_s`` for late joiners (controllers ignore a repeat of their goal).
- A step is done when the observation satisfies it (``scene.is_success``) for ``settle_steps``
  observations in a row; then the next step becomes the goal. After the last step the plan is
  done; with ``exit_on_success`` the node exits 0 (``forethought run stack --until-success``).
  With ``exit_on_success``, a refusal or an invalid plan exits 3.
- Observations older than ``stale_s`` (wall time) make the status WARN ("stale observation");
  one with NaN/inf or the wrong size is ignored.
- ``surprise`` (DiagnosticArray from ``world_model_node``): each WARN report (the world did not
  behave as the world model predicted) is counted (``surprise_warnings``) and logged (throttled);
  it does not change the plan or the goal.
- ``status`` (DiagnosticArray, 1 Hz): plan, active step index, distance to it, counts, the last
  reported surprise.
"""

from __future__ import annotations

from forethought.runtime import prepare_node_process

prepare_node_process(__name__)  # first: local defaults before rclpy; a stop signal during start-up exits quietly

import json  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from std_msgs.msg import Float32MultiArray, String  # noqa: E402

from forethought.llm_planner.planning.schema import validate_plan  # noqa: E402
from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.sim import scene  # noqa: E402

EXIT_REFUSED = 3
"""Exit code with ``exit_on_success`` when the plan is a refusal or invalid: the task cannot be done."""

PARAMS = {
    "exit_on_success": (False, "exit 0 when the last step is done (3 on a refused or invalid plan)"),
    "settle_steps": (3, "consecutive observations satisfying a step before it counts as done"),
    "goal_period_s": (1.0, "republish the active goal this often (wall seconds)"),
    "stale_s": (2.0, "observations older than this (wall seconds) are stale"),
}


class Executive(nc.ReportingNode):
    def __init__(self) -> None:
        super().__init__("executive")
        p = nc.declare_parameters(self, PARAMS)
        nc.check_range("settle_steps", p["settle_steps"], 1, 1000)
        nc.check_range("goal_period_s", p["goal_period_s"], 0, 3600, lo_open=True)
        nc.check_range("stale_s", p["stale_s"], 0, 3600, lo_open=True)
        self.p = p
        self.steps: list[dict[str, Any]] = []
        self.index, self.settled = 0, 0
        self.obs: np.ndarray | None = None
        self.obs_time = 0.0
        self.pending_plan: str | None = None
        self.counts = {"plans": 0, "refused_plans": 0, "steps_done": 0, "refused_observations": 0,
                       "surprise_warnings": 0}
        self.surprise: float | None = None
        self.pub_goal = self.create_publisher(String, "goal", 10)
        self.pub_status = self.create_publisher(nc.DiagnosticArray, "status", 10)
        self.create_subscription(String, "plan", self._on_plan, nc.PLAN_QOS)
        self.create_subscription(Float32MultiArray, "observation", self._on_observation, 10)
        self.create_subscription(nc.DiagnosticArray, "surprise", self._on_surprise, 10)
        self.create_timer(p["goal_period_s"], self._publish_goal)
        self.create_timer(1.0, self._publish_status)

    @property
    def active(self) -> dict[str, Any] | None:
        return self.steps[self.index] if self.index < len(self.steps) else None

    def _on_plan(self, msg: String) -> None:
        if self.obs is None:  # the plan names blocks: check them against what the scene shows
            self.pending_plan = msg.data
            return
        self.counts["plans"] += 1
        try:
            plan = json.loads(msg.data)
            if not isinstance(plan, dict):
                raise ValueError("a plan is a JSON object")
            plan = validate_plan(plan, scene.present_blocks(self.obs))
            if plan.get("refusal"):
                raise ValueError(f"the planner refused: {plan['refusal']}")
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            self.steps, self.index = [], 0
            self.warn(f"plan not executed: {e}", "refused_plans")
            if self.p["exit_on_success"]:
                raise nc.StopNode(EXIT_REFUSED) from None
            return
        self.steps, self.index, self.settled = list(plan["steps"]), 0, 0
        self.get_logger().info(f"plan with {len(self.steps)} steps: {json.dumps(self.steps)}")
        self._publish_goal()

    def _on_observation(self, msg: Float32MultiArray) -> None:
        obs = self.observation(msg)
        if obs is None:
            return
        self.obs, self.obs_time = obs, time.monotonic()
        if self.pending_plan is not None:
            text, self.pending_plan = self.pending_plan, None
            self._on_plan(String(data=text))
        step = self.active
        if step is None:
            return
        self.settled = self.settled + 1 if scene.is_success(step, obs) else 0
        if self.settled < self.p["settle_steps"]:
            return
        self.counts["steps_done"] += 1
        self.index, self.settled = self.index + 1, 0
        self.get_logger().info(f"step {self.index}/{len(self.steps)} done: {json.dumps(step)}")
        if self.active is not None:
            self._publish_goal()
        elif self.p["exit_on_success"]:
            self.get_logger().info("plan done")
            raise nc.StopNode(0)

    def _on_surprise(self, msg: nc.DiagnosticArray) -> None:
        for st in msg.status:
            values = {kv.key: kv.value for kv in st.values}
            try:
                self.surprise = float(values["surprise"])
            except (KeyError, ValueError):
                pass
            if st.level == nc.WARN:
                self.counts["surprise_warnings"] += 1
                self.get_logger().warning(f"world model surprise above threshold: {values.get('surprise')} > "
                                          f"{values.get('threshold')}", throttle_duration_sec=2.0)

    def _publish_goal(self) -> None:
        if self.active is not None:
            self.pub_goal.publish(String(data=json.dumps(self.active)))

    def _publish_status(self) -> None:
        stale = self.obs is None or time.monotonic() - self.obs_time > self.p["stale_s"]
        step = self.active
        if step is not None:
            message = f"step {self.index + 1}/{len(self.steps)}"
        else:
            message = "plan done" if self.steps else "waiting for a plan"
        if stale:
            message += "; stale observation"
        distance = scene.step_distance(step, self.obs) if step is not None and self.obs is not None else None
        values = {"steps": self.steps, "index": self.index, "distance": distance, **self.counts,
                  "surprise": self.surprise, "last_error": self.last_error}
        level = nc.WARN if stale or self.last_error else nc.OK
        self.publish_status(level, message, values)


def main(args: list[str] | None = None) -> int:
    return nc.run_node(Executive, args)


if __name__ == "__main__":
    raise SystemExit(main())
