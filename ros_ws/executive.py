"""executive: steps through a plan, handing the controller one plan step at a time.

    python -m forethought.ros_ws.executive --ros-args --params-file stack.yaml

- ``plan`` (std_msgs/String, JSON plan from ``planner_node``): validated against the blocks the
  latest ``observation`` shows. A new plan replaces the current one; a refusal or an invalid plan
  is logged and the robot keeps holding (no goal is sent).
- ``goal`` (std_msgs/String, JSON plan step): the active step, published when it changes and
  again every ``goal_period_s`` for late joiners (controllers ignore a repeat of their goal).
  When a plan is refused, done, failed or cancelled, a hold goal (``node_common.hold_goal``)
  goes out once: the controller stops publishing motion and the robot holds.
- ``cancel`` (std_srvs/Trigger): drops the plan; the goal becomes a hold.
- ``task_status`` (std_msgs/String, ``node_common.TASK_STATUS_QOS``): for the plan's ``"id"``
  (the command id ``planner_node`` puts in the plan; a plan without one gets ``plan-N``):
  ``executing`` (with ``"step"``, the 0-based step index, each time a step is issued or
  re-issued), then ``done``, ``failed`` (with ``"reason"``: a step broken too often, a step timed
  out after its retries, the controller reported an error, sustained surprise), ``refused`` (the
  plan names blocks the scene lacks, or is malformed; a refusal from the planner is reported by
  the planner) or ``cancelled`` (the ``cancel`` service, or a newer plan replaced it).
- Recovery: a step not settled within ``step_timeout_s`` (wall seconds; 0: no limit) is
  re-issued (the controller gets a hold, then the step again: its policy restarts), at most
  ``max_retries`` times, then the plan fails with the reason. An ERROR on the controller's
  ``status`` fails the running plan (the controller already holds); so does its silence (no
  ``status``, its 1 Hz heartbeat, for ``peer_timeout_s`` once it has been heard: dead or frozen),
  reported as WARN on ``status`` after 2.5 s of silence; a controller back in time (restarted by
  ``forethought run``) gets the active goal again. ``surprise_hold_k`` > 0:
  that many WARN surprise reports in a row fail the plan (``sustained surprise``) and the robot
  holds.
- The whole plan is kept and judged by ``sim.plan_progress.PlanProgress`` (the definition
  ``forethought eval --plan`` uses): a step is settled when the observation satisfies it
  (``scene.is_success``) for ``settle_steps`` observations in a row; then the goal becomes the
  first step of the plan that does not hold. A step a later step broke (e.g. its block pushed out
  of its region) is re-issued, at most ``max_reissues`` times; one more break fails the plan,
  with the reason on ``status`` (ERROR), and the goal becomes a hold. The plan is done only when every
  step holds at once. With ``exit_on_success`` the node exits 0 when done
  (``forethought run stack --until-success``), 3 on a refusal or an invalid plan, 4 on a failed plan.
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
from std_srvs.srv import Trigger  # noqa: E402

from forethought.llm_planner.planning.schema import validate_plan  # noqa: E402
from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.sim import scene  # noqa: E402
from forethought.sim.plan_progress import DONE, FAILED, RUNNING, PlanProgress  # noqa: E402

EXIT_REFUSED = 3
"""Exit code with ``exit_on_success`` when the plan is a refusal or invalid: the task cannot be done."""
EXIT_FAILED = 4
"""Exit code with ``exit_on_success`` when a plan failed (a step broken more than ``max_reissues`` times)."""

PARAMS = {
    "exit_on_success": (False, "exit 0 when the last step is done (3 on a refused or invalid plan)"),
    "settle_steps": (3, "consecutive observations satisfying a step before it counts as done"),
    "max_reissues": (2, "re-issue a step broken by a later step at most this often, then fail the plan"),
    "goal_period_s": (1.0, "republish the active goal this often (wall seconds)"),
    "stale_s": (2.0, "observations older than this (wall seconds) are stale"),
    "step_timeout_s": (120.0, "a step not settled within this (wall seconds) is retried; 0: no limit"),
    "max_retries": (1, "re-issue a timed-out step at most this often, then fail the plan"),
    "surprise_hold_k": (0, "fail the plan and hold after this many WARN surprise reports in a row; 0: never"),
    "controller": ("policy_controller", "name of the controller node whose ERROR status or silence fails the plan"),
    "peer_timeout_s": (15.0, "fail the running plan when the controller's status is silent this long (wall s)"),
}


class Executive(nc.ReportingNode):
    def __init__(self) -> None:
        super().__init__("executive")
        p = nc.declare_parameters(self, PARAMS)
        nc.check_range("settle_steps", p["settle_steps"], 1, 1000)
        nc.check_range("max_reissues", p["max_reissues"], 0, 1000)
        nc.check_range("goal_period_s", p["goal_period_s"], 0, 3600, lo_open=True)
        nc.check_range("stale_s", p["stale_s"], 0, 3600, lo_open=True)
        nc.check_range("step_timeout_s", p["step_timeout_s"], 0, 1e6)
        nc.check_range("max_retries", p["max_retries"], 0, 1000)
        nc.check_range("surprise_hold_k", p["surprise_hold_k"], 0, 1_000_000)
        nc.check_range("peer_timeout_s", p["peer_timeout_s"], 2.5, 1e6)
        self.p = p
        self.plan_id = ""
        self.plans_seen = 0
        self.step_started = time.monotonic()
        self.surprise_run = 0  # WARN surprise reports in a row
        self.controller_heard: float | None = None  # monotonic time of its last status
        self.progress: PlanProgress | None = None
        self.obs: np.ndarray | None = None
        self.obs_time = 0.0
        self.pending_plan: str | None = None
        self.counts = {"plans": 0, "refused_plans": 0, "failed_plans": 0, "steps_done": 0, "reissues": 0,
                       "refused_observations": 0, "surprise_warnings": 0, "retries": 0,
                       "cancelled_plans": 0}
        self.surprise: float | None = None
        self.pub_goal = self.create_publisher(String, "goal", 10)
        self.pub_status = self.create_publisher(nc.DiagnosticArray, "status", 10)
        self.pub_task = self.create_publisher(String, "task_status", nc.TASK_STATUS_QOS)
        self.create_subscription(String, "plan", self.guard(self._on_plan), nc.PLAN_QOS)
        self.create_subscription(Float32MultiArray, "observation", self.guard(self._on_observation), 10)
        self.create_subscription(nc.DiagnosticArray, "surprise", self.guard(self._on_surprise), 10)
        self.create_subscription(nc.DiagnosticArray, "status", self.guard(self._on_peer_status), 10)
        self.create_service(Trigger, "cancel", self._on_cancel)
        self.create_timer(p["goal_period_s"], self.guard(self._tick))
        self.create_timer(1.0, self.guard(self._publish_status))

    @property
    def active(self) -> dict[str, Any] | None:
        return None if self.progress is None else self.progress.active

    def event(self, state: str, **fields: Any) -> None:
        """Publish a ``task_status`` transition of the current plan's command."""
        self.pub_task.publish(nc.task_event(self.plan_id, state, **fields))

    def _end_plan(self, state: str, reason: str) -> None:
        """A running plan ends (``cancelled`` or ``failed``): report it for its id, hold."""
        if self.progress is None or self.progress.status != RUNNING:
            return
        if state == FAILED:
            self.progress.fail(reason)
            self.counts["failed_plans"] += 1
            self.get_logger().error(f"plan {self.plan_id} failed: {reason}")
        else:
            self.progress = None
            self.counts["cancelled_plans"] += 1
        self.event(state, reason=reason)
        self._publish_hold(f"plan {state}")

    def _on_plan(self, msg: String) -> None:
        if self.obs is None:  # the plan names blocks: check them against what the scene shows
            if self.pending_plan is not None:
                self._refuse_unread(self.pending_plan, "cancelled", "replaced by a newer plan before any observation")
            self.pending_plan = msg.data
            return
        self.counts["plans"] += 1
        self.plans_seen += 1
        plan_id, from_planner = f"plan-{self.plans_seen}", False
        try:
            plan = json.loads(msg.data)
            if not isinstance(plan, dict):
                raise ValueError("a plan is a JSON object")
            from_planner = "id" in plan
            plan_id = str(plan.pop("id", plan_id))
            self._end_plan("cancelled", f"replaced by plan {plan_id}")
            self.plan_id = plan_id
            planner_refused = bool(plan.get("refusal"))
            plan = validate_plan(plan, scene.present_blocks(self.obs))
            if planner_refused:
                raise ValueError(f"the planner refused: {plan['refusal']}")
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            self._end_plan("cancelled", f"replaced by plan {plan_id}")
            self.progress, self.plan_id = None, plan_id
            self.warn(f"plan not executed: {e}", "refused_plans")
            if not (from_planner and str(e).startswith("the planner refused")):  # the planner reports its own
                self.event("refused", reason=f"plan not executed: {e}")
            self._publish_hold("plan refused")
            if self.p["exit_on_success"]:
                raise nc.StopNode(EXIT_REFUSED) from None
            return
        self.progress = PlanProgress(plan["steps"], self.p["max_reissues"], self.p["settle_steps"],
                                     self.p["max_retries"])
        self.get_logger().info(f"plan {plan_id} with {len(plan['steps'])} steps: {json.dumps(plan['steps'])}")
        self._issue()

    def _refuse_unread(self, text: str, state: str, reason: str) -> None:
        """Report ``state`` for a plan message that was never executed (if it has an id and is not a
        refusal, which the planner reported already)."""
        try:
            plan = json.loads(text)
            plan_id = str(plan.get("id", "")) if not plan.get("refusal") else ""
        except (ValueError, AttributeError):
            plan_id = ""
        if plan_id:
            self.pub_task.publish(nc.task_event(plan_id, state, reason=reason))

    def _issue(self) -> None:
        """Publish the active step as the goal and report ``executing`` with its index."""
        assert self.progress is not None
        self.step_started = time.monotonic()
        self.event("executing", step=self.progress.index)
        self._publish_goal()

    def _on_observation(self, msg: Float32MultiArray) -> None:
        obs = self.observation(msg)
        if obs is None:
            return
        self.obs, self.obs_time = obs, time.monotonic()
        if self.pending_plan is not None:
            text, self.pending_plan = self.pending_plan, None
            self._on_plan(String(data=text))
        if self.progress is not None and self.progress.status == RUNNING:
            self._track(self.progress, obs)

    def _track(self, progress: PlanProgress, obs: np.ndarray) -> None:
        """Advance the plan by one observation: publish the next or re-issued goal, or finish."""
        step, index = progress.active, progress.index
        event = progress.update(obs)
        if event is None:
            return
        self.counts["steps_done"] += 1
        self.get_logger().info(f"step {index + 1}/{len(progress.steps)} settled: {json.dumps(step)}")
        if event == "reissue":
            self.counts["reissues"] += 1
            self.get_logger().warning(f"step {progress.index + 1} no longer holds: re-issuing "
                                      f"{json.dumps(progress.active)} "
                                      f"({progress.reissues[progress.index]}/{progress.max_reissues})")
        if progress.active is not None:
            self._issue()
            return
        self._publish_hold(f"plan {progress.status}")
        if event == FAILED:
            self.counts["failed_plans"] += 1
            self.get_logger().error(f"plan failed: {progress.reason}")
            self.event("failed", reason=progress.reason)
        else:
            self.get_logger().info("plan done: every step holds")
            self.event("done")
        self._publish_status()
        if self.p["exit_on_success"]:
            raise nc.StopNode(0 if event == DONE else EXIT_FAILED)

    def _on_surprise(self, msg: nc.DiagnosticArray) -> None:
        for st in msg.status:
            values = {kv.key: kv.value for kv in st.values}
            try:
                self.surprise = float(values["surprise"])
            except (KeyError, ValueError):
                pass
            if st.level == nc.WARN:
                self.counts["surprise_warnings"] += 1
                self.surprise_run += 1
                self.get_logger().warning(f"world model surprise above threshold: {values.get('surprise')} > "
                                          f"{values.get('threshold')}", throttle_duration_sec=2.0)
            else:
                self.surprise_run = 0
            k = self.p["surprise_hold_k"]
            if k and self.surprise_run >= k:
                self._end_plan(FAILED, f"sustained surprise: {self.surprise_run} reports in a row above the "
                                       f"threshold ({values.get('surprise')} > {values.get('threshold')}; "
                                       f"surprise_hold_k={k})")
                self._exit_if_finished()

    def _on_peer_status(self, msg: nc.DiagnosticArray) -> None:
        """An ERROR from the controller fails the running plan (the controller holds on its own)."""
        for st in msg.status:
            if st.name.rsplit("/", 1)[-1] != self.p["controller"]:
                continue
            self.controller_heard = time.monotonic()
            if st.level == nc.ERROR:
                self._end_plan(FAILED, f"{self.p['controller']} reported an error: {st.message}"[:500])
                self._exit_if_finished()

    def _tick(self) -> None:
        """Every ``goal_period_s``: time out (retry or fail) the active step, republish the goal."""
        progress, limit = self.progress, self.p["step_timeout_s"]
        silent = self.controller_silence()
        if progress is not None and progress.status == RUNNING and silent > self.p["peer_timeout_s"]:
            self._end_plan(FAILED, f"{self.p['controller']} silent for {silent:.1f} s (dead or frozen; "
                                   f"peer_timeout_s={self.p['peer_timeout_s']:g})")
            self._exit_if_finished()
            return
        if progress is not None and progress.status == RUNNING and limit and \
                time.monotonic() - self.step_started > limit:
            event = progress.time_out(f"{limit:g} s")
            if event == FAILED:
                self._end_failed(progress.reason)
                return
            self.counts["retries"] += 1
            self.get_logger().warning(f"step {progress.index + 1} timed out after {limit:g} s: retry "
                                      f"{progress.retries[progress.index]}/{progress.max_retries}")
            self._publish_hold("step timed out: retrying")
            self._issue()
            return
        self._publish_goal()

    def controller_silence(self) -> float:
        """Seconds since the controller's last ``status`` (0 before it was first heard)."""
        return 0.0 if self.controller_heard is None else time.monotonic() - self.controller_heard

    def _end_failed(self, reason: str) -> None:
        """The plan failed in ``PlanProgress`` already: count, report, hold."""
        self.counts["failed_plans"] += 1
        self.get_logger().error(f"plan {self.plan_id} failed: {reason}")
        self.event("failed", reason=reason)
        self._publish_hold("plan failed")
        self._exit_if_finished()

    def _exit_if_finished(self) -> None:
        if self.p["exit_on_success"] and self.progress is not None and self.progress.status == FAILED:
            raise nc.StopNode(EXIT_FAILED)

    def _on_cancel(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """``cancel`` service: drop the plan (and one waiting for an observation); the robot holds."""
        had = self.progress is not None and self.active is not None
        self._end_plan("cancelled", "the cancel service was called")
        if self.pending_plan is not None:
            self._refuse_unread(self.pending_plan, "cancelled", "the cancel service was called")
        self.progress, self.pending_plan = None, None
        self._publish_hold("plan cancelled")
        self.get_logger().info("plan cancelled" if had else "cancel: no plan was running")
        response.success, response.message = True, "cancelled the plan" if had else "no plan was running"
        return response

    def _publish_goal(self) -> None:
        if self.active is not None:
            self.pub_goal.publish(String(data=json.dumps(self.active)))

    def _publish_hold(self, reason: str) -> None:
        """A hold goal (``node_common.hold_goal``): the controller stops publishing motion."""
        self.pub_goal.publish(String(data=nc.hold_goal(reason)))

    def _publish_status(self) -> None:
        stale = self.obs is None or time.monotonic() - self.obs_time > self.p["stale_s"]
        progress, step = self.progress, self.active
        if progress is None:
            message = "waiting for a plan"
        elif progress.status == RUNNING:
            message = f"step {progress.index + 1}/{len(progress.steps)}"
        else:
            message = "plan done" if progress.status == DONE else f"plan failed: {progress.reason}"
        if stale:
            message += "; stale observation"
        silent = self.controller_silence()
        if silent > 2.5:
            message += f"; {self.p['controller']} silent for {silent:.0f} s"
        distance = scene.step_distance(step, self.obs) if step is not None and self.obs is not None else None
        values = {"steps": [] if progress is None else progress.steps,
                  "index": 0 if progress is None else progress.index, "distance": distance,
                  "plan_status": "none" if progress is None else progress.status,
                  "failure": "" if progress is None else progress.reason, "plan_id": self.plan_id, **self.counts,
                  "surprise": self.surprise, "last_error": self.last_error}
        failed = progress is not None and progress.status == FAILED
        level = nc.ERROR if failed else nc.WARN if stale or silent > 2.5 or self.last_error else nc.OK
        self.publish_status(level, message, values)


def main(args: list[str] | None = None) -> int:
    return nc.run_node(Executive, args)


if __name__ == "__main__":
    raise SystemExit(main())
