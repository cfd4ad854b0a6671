"""executive: steps through a plan, handing the controller one plan step at a time.

    python -m forethought.ros_ws.executive --ros-args --params-file stack.yaml

- Inputs: ``joint_states`` and ``objects/<name>/pose`` (``input_topics.InputTopics``, the
  ``INPUT_PARAMS``): one observation per complete set of fresh inputs, stamped. Stale (older than
  ``max_age_s`` on the node clock), replayed or reordered (a stamp not newer than the last one),
  future-stamped, out-of-frame or malformed inputs are refused: they never count toward a step's
  success, and ``status`` turns WARN with the reason (refusal counts by kind in its values); so
  it does while the latest observation is older than ``max_age_s`` ("stale input").
- ``plan`` (std_msgs/String, JSON plan from ``planner_node``): validated against the blocks the
  inputs show (``objects``; a plan arriving before the first observation waits for it). A new
  plan replaces the current one; a refusal or an invalid plan is logged and the robot keeps
  holding (no goal is sent).
- ``goal`` (std_msgs/String, JSON plan step): the active step, published when it changes, again
  every ``goal_period_s`` (wall seconds), and at once to each subscription that matches (a
  controller that starts or restarts gets the last goal without waiting for the period; a goal
  published before its subscription was discovered is not lost). Controllers ignore a repeat of
  their goal. When a plan is refused, done, failed or cancelled, a hold goal
  (``node_common.hold_goal``) goes out once: the controller stops publishing motion and the
  robot holds.
- ``cancel`` (std_srvs/Trigger): drops the plan; the goal becomes a hold.
- ``task_status`` (std_msgs/String, ``node_common.TASK_STATUS_QOS``): for the plan's ``"id"``
  (the command id ``planner_node`` puts in the plan; a plan without one gets ``plan-N``):
  ``executing`` (with ``"step"``, the 0-based step index, each time a step is issued or
  re-issued), then ``done``, ``failed`` (with ``"reason"``: a step broken too often, a step
  retried too often, the controller reported an error or fell silent, sustained surprise),
  ``refused`` (the plan names blocks the scene lacks, or is malformed; a refusal from the planner
  is reported by the planner) or ``cancelled`` (the ``cancel`` service, or a newer plan replaced
  it). The executive also reads ``task_status``: the planner's ``queued`` and ``planning`` events
  tell it which commands wait for a plan.
- Success (``sim.plan_progress.PlanProgress``, the definition ``forethought eval --plan`` uses):
  a step is settled once its condition (``scene.is_success``) has held on fresh observations for
  ``dwell_s`` seconds of their stamps (node clock; two holding observations more than
  ``max_age_s`` apart restart the dwell); then the goal becomes the first step of the plan that
  does not hold. ``dwell_s`` 0.2 at 10 Hz is three observations in a row, what eval counts. A
  step a later step broke (e.g. its block pushed out of its region) is re-issued, at most
  ``max_reissues`` times; one more break fails the plan, with the reason on ``status`` (ERROR),
  and the goal becomes a hold. The plan is done only when every step holds at once. With
  ``exit_on_success`` the node exits 0 when done (``forethought run stack --until-success``), 3
  on a refusal or an invalid plan, 4 on a failed plan.
- Recovery: a step not settled within ``step_timeout_s`` (wall seconds; 0: no limit) is retried
  (the controller gets a hold, then the step again: its policy restarts), at most
  ``max_retries`` times per step (retries the controller's restarts also use), then the plan
  fails with the reason. ``surprise_hold_k`` > 0: that many WARN ``surprise`` reports in a row
  fail the plan (``sustained surprise``) and the robot holds.
- Watching the peers (their ``status``, a 1 Hz heartbeat, ``PeerWatch``; wall clock):
  - ``controller_node``: an ERROR fails the running plan (the controller already holds); so does
    its silence for ``peer_timeout_s`` once it has been heard (dead or frozen). When it comes
    back after ``SILENT_S`` of silence, or shows a restart (a ``RESTART_KEYS`` counter went
    down), the running plan resumes: the active step is re-issued (the controller starts with no
    goal), as one retry of that step.
  - ``planner_node``: the commands it has queued or is planning fail (``task_status``, with the
    reason) when it is silent for ``peer_timeout_s`` (dead or frozen), and when it shows a restart
    (a ``RESTART_KEYS`` counter went down: a restarted planner forgot its queue; the commands
    queued before its new run started are lost, "planner_node restarted (...): the command was
    lost"); a plan it publishes later for one of them is not executed. (A return after a mere
    silence fails nothing: a frozen planner still has its queue.)
  - A peer silent for ``SILENT_S`` makes ``status`` WARN ("<node> silent for N s").
- ``surprise`` (DiagnosticArray from ``world_model_node``): each WARN report (the world did not
  behave as the world model predicted) is counted (``surprise_warnings``) and logged (throttled).
- ``status`` (DiagnosticArray, 1 Hz wall clock): plan, active step index, how long it has held,
  distance to it, counts, input refusals, the last reported surprise.
"""

from __future__ import annotations

from forethought.runtime import prepare_node_process

prepare_node_process(__name__)  # first: local defaults before rclpy; a stop signal during start-up exits quietly

import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from typing import Any, Mapping  # noqa: E402

import numpy as np  # noqa: E402
from rclpy.event_handler import PublisherEventCallbacks  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from forethought.llm_planner.planning.schema import validate_plan  # noqa: E402
from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.ros_ws.input_topics import INPUT_PARAMS, InputTopics  # noqa: E402
from forethought.sim import scene  # noqa: E402
from forethought.sim.plan_progress import DONE, DWELL_S, FAILED, RUNNING, PlanProgress  # noqa: E402

EXIT_REFUSED = 3
"""Exit code with ``exit_on_success`` when the plan is a refusal or invalid: the task cannot be done."""
EXIT_FAILED = 4
"""Exit code with ``exit_on_success`` when a plan failed (a step broken more than ``max_reissues`` times)."""
SILENT_S = 2.5
"""A peer whose ``status`` (1 Hz) was missing this long (wall s) is reported silent; a controller
heard again after such a gap resumes the plan."""
RESTART_KEYS = ("uptime_s", "commands")
"""Counters on a peer's ``status`` that only grow while it runs: one going down means it restarted."""
WATCH_PERIOD_S = 0.2
"""Period (wall s) of the timeout and peer checks."""
WAITING_STATES = ("queued", "planning")
"""A command in one of these ``task_status`` states waits for the planner."""
MAX_ABANDONED = 1000
"""Ids of commands failed for a silent or restarted planner that are remembered (their late plans are not run)."""

PARAMS = {
    **INPUT_PARAMS,
    "exit_on_success": (False, "exit 0 when the last step is done (3 on a refused or invalid plan)"),
    "dwell_s": (DWELL_S, "a step is settled once its condition held this long on fresh inputs (s, node clock, "
                         "from stamps; 0.2 at 10 Hz: three observations)"),
    "max_reissues": (2, "re-issue a step broken by a later step at most this often, then fail the plan"),
    "goal_period_s": (1.0, "republish the active goal this often (wall seconds)"),
    "step_timeout_s": (120.0, "a step not settled within this (wall seconds) is retried; 0: no limit"),
    "max_retries": (1, "retry a step (timed out, or lost by a restarted controller) at most this often, then fail "
                       "the plan"),
    "surprise_hold_k": (0, "fail the plan and hold after this many WARN surprise reports in a row; 0: never"),
    "controller_node": ("policy_controller", "name of the controller node whose ERROR status or silence fails the "
                                             "plan, and whose restart resumes it"),
    "planner_node": ("planner_node", "name of the planner node whose silence fails the commands it is planning"),
    "peer_timeout_s": (15.0, "a peer whose status is silent this long (wall s) is dead or frozen: the running "
                             "plan (controller) or the waiting commands (planner) fail"),
}


class PeerWatch:
    """A peer node's ``status`` heartbeat: how long it has been silent, and whether it came back.

    ``hear(now, values)`` for each of its statuses (``now``: monotonic seconds)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.heard: float | None = None  # monotonic time of its last status
        self.counters: dict[str, float] = {}  # its last RESTART_KEYS values
        self.restarted = False  # whether its last status showed a restart
        self.started: float | None = None  # monotonic time its current run started (from ``uptime_s``)

    def silence(self, now: float) -> float:
        """Seconds since its last ``status`` (0 before it was first heard)."""
        return 0.0 if self.heard is None else now - self.heard

    def hear(self, now: float, values: Mapping[str, str]) -> str | None:
        """Take one of its statuses; return why it is back (``"restarted (...)"`` when a counter of
        ``RESTART_KEYS`` went down, also telling ``restarted``; ``"back after N s of silence"`` after
        ``SILENT_S``), else ``None`` (and for the first status)."""
        gap, first = self.silence(now), self.heard is None
        counters = {}
        for key in RESTART_KEYS:
            try:
                counters[key] = float(values[key])
            except (KeyError, ValueError):
                continue
        dropped = [k for k, v in counters.items() if v < self.counters.get(k, -math.inf)]
        previous, self.heard, self.counters = self.counters, now, counters
        self.started = now - counters["uptime_s"] if "uptime_s" in counters else None
        self.restarted = bool(dropped) and not first
        if first:
            return None
        if dropped:
            key = dropped[0]
            return f"restarted ({key} went from {previous[key]:g} to {counters[key]:g})"
        if gap > SILENT_S:
            return f"back after {gap:.1f} s of silence"
        return None


class Executive(nc.ReportingNode):
    def __init__(self) -> None:
        super().__init__("executive")
        p = nc.declare_parameters(self, PARAMS)
        nc.check_range("dwell_s", p["dwell_s"], 0, 3600)
        nc.check_range("max_reissues", p["max_reissues"], 0, 1000)
        nc.check_range("goal_period_s", p["goal_period_s"], 0, 3600, lo_open=True)
        nc.check_range("step_timeout_s", p["step_timeout_s"], 0, 1e6)
        nc.check_range("max_retries", p["max_retries"], 0, 1000)
        nc.check_range("surprise_hold_k", p["surprise_hold_k"], 0, 1_000_000)
        nc.check_range("peer_timeout_s", p["peer_timeout_s"], SILENT_S, 1e6)
        if not p["controller_node"] or not p["planner_node"]:
            raise ValueError("controller_node and planner_node must name the nodes to watch")
        self.p = p
        self.plan_id = ""
        self.plans_seen = 0
        self.step_started = time.monotonic()
        self.surprise_run = 0  # WARN surprise reports in a row
        self.controller, self.planner = PeerWatch(p["controller_node"]), PeerWatch(p["planner_node"])
        self.waiting: dict[str, float] = {}  # command id -> monotonic time of its last queued/planning event
        self.abandoned: dict[str, None] = {}  # ids failed for a silent planner (ordered, bounded)
        self.progress: PlanProgress | None = None
        self.obs: np.ndarray | None = None
        self.obs_stamp = 0.0  # node-clock stamp (s) of the latest observation
        self.refusal = ""  # the last input refusal since the previous status
        self.pending_plan: str | None = None
        self.counts = {"plans": 0, "refused_plans": 0, "failed_plans": 0, "steps_done": 0, "reissues": 0,
                       "surprise_warnings": 0, "retries": 0, "controller_resumes": 0, "cancelled_plans": 0,
                       "failed_commands": 0, "goals_on_match": 0}
        self.surprise: float | None = None
        self.last_goal: str | None = None  # the last goal message sent (a step or a hold)
        self.pub_goal = self.create_publisher(String, "goal", 10, event_callbacks=PublisherEventCallbacks(
            matched=self.guard(self._on_goal_matched)))
        self.pub_status = self.create_publisher(nc.DiagnosticArray, "status", 10)
        self.pub_task = self.create_publisher(String, "task_status", nc.TASK_STATUS_QOS)
        self.inputs = InputTopics(self, p, self._on_observation, self._on_refusal, wrap=self.guard)
        self.clock_resets = 0  # InputTopics.clock_resets already applied to the plan's time base
        self.create_subscription(String, "plan", self.guard(self._on_plan), nc.PLAN_QOS)
        self.create_subscription(nc.DiagnosticArray, "surprise", self.guard(self._on_surprise), 10)
        self.create_subscription(nc.DiagnosticArray, "status", self.guard(self._on_peer_status), 10)
        self.create_subscription(String, "task_status", self.guard(self._on_task_status), nc.TASK_STATUS_QOS)
        self.create_service(Trigger, "cancel", self._on_cancel)
        wall = nc.STEADY_CLOCK  # watching peers must not stop with a paused /clock
        self.create_timer(p["goal_period_s"], self.guard(self._publish_goal), clock=wall)
        self.create_timer(WATCH_PERIOD_S, self.guard(self._watch), clock=wall)
        self.create_timer(1.0, self.guard(self._publish_status), clock=wall)

    @property
    def active(self) -> dict[str, Any] | None:
        return None if self.progress is None else self.progress.active

    @property
    def running(self) -> bool:
        return self.progress is not None and self.progress.status == RUNNING

    def event(self, state: str, **fields: Any) -> None:
        """Publish a ``task_status`` transition of the current plan's command."""
        self.pub_task.publish(nc.task_event(self.plan_id, state, **fields))

    def _end_plan(self, state: str, reason: str) -> None:
        """A running plan ends (``cancelled`` or ``failed``): report it for its id, hold."""
        if not self.running:
            return
        assert self.progress is not None
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
        self.plans_seen += 1
        plan_id, from_planner = f"plan-{self.plans_seen}", False
        try:
            plan = json.loads(msg.data)
            if not isinstance(plan, dict):
                raise ValueError("a plan is a JSON object")
            from_planner = "id" in plan
            plan_id = str(plan.pop("id", plan_id))
            if plan_id in self.abandoned:
                self.warn(f"plan for {plan_id} not executed: that command already failed ({self.p['planner_node']} "
                          "was silent)")
                return
            self.counts["plans"] += 1
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
        self.progress = PlanProgress(plan["steps"], self.p["max_reissues"], self.p["dwell_s"], self.p["max_retries"],
                                     max_gap_s=self.p["max_age_s"])
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

    def _on_observation(self, obs: np.ndarray, stamp: float) -> None:
        """A complete set of fresh inputs, stamped ``stamp`` (s, node clock)."""
        self.obs, self.obs_stamp = obs, stamp
        if self.pending_plan is not None:
            text, self.pending_plan = self.pending_plan, None
            self._on_plan(String(data=text))
        if self.running:
            assert self.progress is not None
            self._track(self.progress, obs, stamp)

    def _on_refusal(self, reason: str) -> None:
        self.refusal = reason
        self.get_logger().warning(f"input refused: {reason}", throttle_duration_sec=2.0)

    def _track(self, progress: PlanProgress, obs: np.ndarray, stamp: float) -> None:
        """Advance the plan by one observation: publish the next or re-issued goal, or finish."""
        step, index = progress.active, progress.index
        if self.inputs.clock_resets != self.clock_resets:  # a restarted sim_node: its stamps start again
            self.clock_resets = self.inputs.clock_resets
            progress.restart_clock()
        event = progress.update(obs, stamp)
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
        """The planner's and the controller's heartbeats; an ERROR from the controller fails the
        running plan (it holds on its own), its return or restart resumes it."""
        now = time.monotonic()
        for st in msg.status:
            name = st.name.rsplit("/", 1)[-1]
            values = {kv.key: kv.value for kv in st.values}
            if name == self.planner.name:
                back = self.planner.hear(now, values)
                if self.planner.restarted:
                    self._planner_restarted(f"{self.planner.name} {back}: the command was lost")
            elif name == self.controller.name:
                back = self.controller.hear(now, values)
                if st.level == nc.ERROR:
                    self._end_plan(FAILED, f"{self.controller.name} reported an error: {st.message}"[:500])
                    self._exit_if_finished()
                elif back is not None:
                    self._resume(back)

    def _planner_restarted(self, reason: str) -> None:
        """The planner restarted with an empty queue: fail the commands that waited for it before its
        new run started (those it queued since are its own)."""
        started = self.planner.started
        self._fail_waiting([cid for cid, t in self.waiting.items() if started is None or t < started], reason)

    def _resume(self, why: str) -> None:
        """The controller is back (``why``): re-issue the running plan's active step, as one retry."""
        if not self.running:
            self.get_logger().info(f"{self.controller.name} {why}; no plan is running")
            return
        assert self.progress is not None
        self.counts["controller_resumes"] += 1
        if self.progress.retry(f"was interrupted: {self.controller.name} {why}") == FAILED:
            self._end_failed(self.progress.reason)
            return
        self.counts["retries"] += 1
        self.get_logger().warning(f"{self.controller.name} {why}: re-issuing step {self.progress.index + 1} "
                                  f"(retry {self.progress.retries[self.progress.index]}/{self.progress.max_retries})")
        self._issue()

    def _on_task_status(self, msg: String) -> None:
        """Which commands wait for the planner (its ``queued`` and ``planning`` events)."""
        try:
            event = json.loads(msg.data)
            cid, state = str(event["id"]), event["state"]
        except (ValueError, KeyError, TypeError):
            return  # not ours to judge: the planner refuses malformed commands itself
        if state in WAITING_STATES:
            self.waiting[cid] = time.monotonic()
            if state == "queued":
                self.abandoned.pop(cid, None)  # a new command with that id
        else:
            self.waiting.pop(cid, None)

    def _watch(self) -> None:
        """Every ``WATCH_PERIOD_S``: the planner's and the controller's silence, the step timeout."""
        now = time.monotonic()
        self._watch_planner(now)
        if not self.running:
            return
        assert self.progress is not None
        progress, limit, silent = self.progress, self.p["step_timeout_s"], self.controller.silence(now)
        if silent > self.p["peer_timeout_s"]:
            self._end_plan(FAILED, f"{self.controller.name} silent for {silent:.1f} s (dead or frozen; "
                                   f"peer_timeout_s={self.p['peer_timeout_s']:g})")
            self._exit_if_finished()
            return
        if limit and now - self.step_started > limit:
            if progress.retry(f"was not achieved within {limit:g} s") == FAILED:
                self._end_failed(progress.reason)
                return
            self.counts["retries"] += 1
            self.get_logger().warning(f"step {progress.index + 1} timed out after {limit:g} s: retry "
                                      f"{progress.retries[progress.index]}/{progress.max_retries}")
            self._publish_hold("step timed out: retrying")
            self._issue()

    def _watch_planner(self, now: float) -> None:
        """Fail the commands waiting for the planner when it is silent for ``peer_timeout_s``."""
        if not self.waiting:
            return
        alive = max(self.waiting.values())  # it published their events then
        if self.planner.heard is not None:
            alive = max(alive, self.planner.heard)
        silent = now - alive
        if silent <= self.p["peer_timeout_s"]:
            return
        self._fail_waiting(list(self.waiting), f"{self.planner.name} silent for {silent:.1f} s while the command "
                                               f"waited for its plan (dead or frozen; "
                                               f"peer_timeout_s={self.p['peer_timeout_s']:g})")

    def _fail_waiting(self, cids: list[str], reason: str) -> None:
        """Fail commands that wait for the planner (``task_status``, with ``reason``); their late plans
        are not executed."""
        if not cids:
            return
        for cid in cids:
            self.pub_task.publish(nc.task_event(cid, FAILED, reason=reason))
            self.abandoned[cid] = None
            self.counts["failed_commands"] += 1
            del self.waiting[cid]
        self.get_logger().error(f"commands {cids[:10]} failed: {reason}")
        for cid in list(self.abandoned)[:-MAX_ABANDONED]:
            del self.abandoned[cid]

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
            self._send_goal(json.dumps(self.active))

    def _publish_hold(self, reason: str) -> None:
        """A hold goal (``node_common.hold_goal``): the controller stops publishing motion."""
        self._send_goal(nc.hold_goal(reason))

    def _send_goal(self, text: str) -> None:
        self.last_goal = text
        self.pub_goal.publish(String(data=text))

    def _on_goal_matched(self, status: Any) -> None:
        """A subscription to ``goal`` matched (``current_count_change`` > 0): send it the last goal."""
        if status.current_count_change > 0 and self.last_goal is not None:
            self.counts["goals_on_match"] += 1
            self.pub_goal.publish(String(data=self.last_goal))

    def _input_problem(self) -> str:
        """Why the inputs cannot count toward success now ("" when they can)."""
        now = self.inputs.now()
        if now is None:
            return "waiting for /clock"
        if self.obs is None:
            return "no complete input yet"
        age = now - self.obs_stamp
        if age > self.p["max_age_s"]:
            return f"stale input: the latest observation is {age:.1f} s old (max_age_s={self.p['max_age_s']:g})"
        return ""

    def _publish_status(self) -> None:
        progress, step, now = self.progress, self.active, time.monotonic()
        if progress is None:
            message = "waiting for a plan"
        elif progress.status == RUNNING:
            message = f"step {progress.index + 1}/{len(progress.steps)}"
        else:
            message = "plan done" if progress.status == DONE else f"plan failed: {progress.reason}"
        problems = [self._input_problem()]
        if self.refusal:
            problems.append(f"input refused: {self.refusal}")
        for peer in (self.controller, self.planner):
            if peer.silence(now) > SILENT_S:
                problems.append(f"{peer.name} silent for {peer.silence(now):.0f} s")
        problems = [text for text in problems if text]
        message = "; ".join([message, *problems])
        distance = scene.step_distance(step, self.obs) if step is not None and self.obs is not None else None
        values = {"steps": [] if progress is None else progress.steps,
                  "index": 0 if progress is None else progress.index, "distance": distance,
                  "held_s": 0.0 if progress is None else progress.held(self.obs_stamp), "dwell_s": self.p["dwell_s"],
                  "plan_status": "none" if progress is None else progress.status,
                  "failure": "" if progress is None else progress.reason, "plan_id": self.plan_id, **self.counts,
                  "waiting_commands": len(self.waiting), "controller_silent_s": self.controller.silence(now),
                  "planner_silent_s": self.planner.silence(now), **self.inputs.status_values(),
                  "surprise": self.surprise, "last_error": self.last_error}
        failed = progress is not None and progress.status == FAILED
        level = nc.ERROR if failed else nc.WARN if problems or self.last_error else nc.OK
        self.publish_status(level, message, values)
        self.refusal = ""


def main(args: list[str] | None = None) -> int:
    return nc.run_node(Executive, args)


if __name__ == "__main__":
    raise SystemExit(main())
