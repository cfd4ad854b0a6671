"""policy_controller: any policy of the evaluation harness (D-MPC, the proposer, the scripted expert) as a ROS 2 controller.

    python -m forethought.ros_ws.policy_controller --ros-args --params-file stack.yaml

The policy is built exactly as ``forethought eval --policy NAME`` builds it
(``forethought.models.evaluation.build_policy``), so what the benchmarks measure is what runs here;
the controller asks it for chunks (``evaluation.plan_chunk``: D-MPC's and the proposer's executed
chunk, one action for a closed-loop policy such as the expert).

- Inputs (``input_topics.InputTopics``, ``INPUT_PARAMS``): ``joint_states`` and
  ``objects/<name>/pose`` in frame ``frame``, stamped; one observation per complete set. Time is the
  node clock (sim time under ``use_sim_time``). A stale, future, wrong-frame or malformed input
  is refused: the controller holds until a newer complete set arrives. An out-of-order one (not
  newer than the last accepted of its source: a DDS duplicate, reordered delivery) is refused and
  counted (``refused_out_of_order``), never acted on, but does not make it hold; while a
  task runs it holds whenever an input is older than ``max_age_s`` (counted as ``refused_stale``
  once per control tick). ``status`` says why (``holding: input refused: ...``, the refusal counts
  and ``last_input_refusal``).
- ``goal`` (std_msgs/String, JSON plan step): a new step resets the policy with it (a repeat of
  the current step is ignored, so an executive may republish it). A bad goal is logged, counted,
  never fatal. Until the first goal (or the ``task`` parameter), nothing is sent. Before acting
  the goal is re-checked against the blocks the observation shows: a goal naming an absent block
  (e.g. accepted before the first observation) is refused (``bad_goals``) and the controller holds.
- ``execution: async`` (default): a control timer at ``control_rate_hz`` on the node clock never
  blocks. When the setpoints ahead run low (``chunk_execution.lead_steps`` of the recent plan
  latencies; checked when an observation arrives and when a plan lands), a worker thread
  (``chunk_execution.PlanWorker``; torch releases the GIL) plans a chunk from the newest
  observation, stamped with that observation's time. When it lands (a guard condition wakes the
  executor) it is aligned to now (``chunk_execution``: the steps whose time has passed are dropped,
  never replayed; of a chunk entirely in the past only the last step goes out, as the next
  setpoint, ``late_chunks``), optionally blended with
  the chunks still in force (``temporal_ensemble_k`` > 0: ACT's exponential temporal ensembling), and
  published at once. A tick publishes nothing new: the robot already executes the whole remainder
  (republishing it unchanged would only add traffic and receipt jitter); a trajectory goes out
  exactly when a new chunk changes the setpoints. Missed ticks: a timer callback more than half
  a period after its slot (``late_ticks``, per skipped slot) or a tick whose setpoints ran out
  more than half a period earlier while a task runs (``starved_ticks``); ``missed_ticks`` is their sum.
- ``execution: sync``: each complete observation is a tick: when the chunk has run out the policy
  plans in the callback (then the steps executed match ``forethought eval``'s ``act``), and the
  remainder of the chunk from the observation's stamp is published in that callback (what
  ``sim_node``'s lockstep needs). The timer only holds on stale inputs.
- Trajectories (both modes): ONE ``joint_trajectory`` that ros2_control's joint_trajectory_controller
  accepts: stamp zero (start on receipt), the setpoints one control period apart from one period
  ahead, then the last one again (it ends at rest), so at least two points and no velocities; joint
  names from ``joint_names``. Each replaces the remainder of the previous one.
- No silent death: an exception in the policy (or any callback) is logged with its traceback and
  reported as ERROR on ``status`` (the executive fails the plan on it); the controller drops its
  goal and holds until the next goal. A chunk with NaN/inf or the wrong width is not sent (``bad_actions``).
- Idle and hold: on a hold goal (``node_common.hold_goal``: plan done, refused or cancelled, a
  stop command), a refused or stale input, or while its step is achieved (``scene.is_success``),
  the controller drops its chunks and publishes one trajectory that brings the setpoint to rest
  (``SafetyGate.stop``), then no motion: the robot holds.
- Safety: the last step before publishing is the safety gate (``safety.SafetyGate``, the
  ``LIMIT_PARAMS`` of the YAML), from the setpoint the robot is at by this node's own model of it
  (a ``TrajectoryFollower`` of what it sent, on the node clock): clipped (``clipped_trajectories``)
  or refused (``gate_rejections``), by ``limit_mode``. While it is not moving (holding, idle) and
  its last trajectory has ended, that model is re-anchored to the measured position at each
  observation (the robot may have been moved by something else, e.g. a sim reset).
- ``status`` (DiagnosticArray, 1 Hz of wall time, so watchers hear it while a paused sim stops the clock): policy, execution, goal, moving or why it
  holds, trajectories sent, holds, gate interventions, input refusals, ``missed_ticks``
  (``late_ticks`` + ``starved_ticks``), achieved ``control_rate_hz`` and ``replan_rate_hz``,
  ``replan_ms_median`` / ``replan_ms_max`` (policy compute, wall ms) over the last second, ``lead_steps``,
  and over the last 10 000 trajectories and plans, the loop overhead ``overhead_ms_p50`` /
  ``_p99`` (per trajectory: wall time from handing its plan to the worker (sync: from the delivery
  of its observation) to its publication, less the policy's compute: thread hand-offs, executor
  wake-ups, the gate; DDS transport not included) and ``obs_wait_ms_p50`` / ``_p99`` (per plan: how
  long its observation had been delivered when the plan started, e.g. while the worker was busy).
- Shutdown: ``close`` stops the planning thread (``node_common.run_node`` calls it).
"""

from __future__ import annotations

from forethought.runtime import prepare_node_process

prepare_node_process(__name__)  # first: local defaults before rclpy; a stop signal during start-up exits quietly

import json  # noqa: E402
import time  # noqa: E402
from collections import deque  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

import forethought.models.control.policy  # noqa: E402,F401  (registers dmpc)
import forethought.models.world_model.eval_policy  # noqa: E402,F401  (registers latent-cem, latent-mppi)
from forethought.models.evaluation import PolicySpec, build_policy, plan_chunk  # noqa: E402
from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.ros_ws.chunk_execution import (ChunkExecutor, PlanResult, PlanWorker, TickMonitor,  # noqa: E402
                                                landed_late, lead_steps, run_job)
from forethought.ros_ws.input_topics import INPUT_PARAMS, InputTopics  # noqa: E402
from forethought.ros_ws.safety import LIMIT_PARAMS, SafetyGate  # noqa: E402
from forethought.ros_ws.trajectory import TrajectoryFollower  # noqa: E402
from forethought.runtime import pretrained_dir  # noqa: E402
from forethought.sim import PUSH_BLOCKS_ID, scene  # noqa: E402

EXECUTIONS = ("async", "sync")
PARAMS = {
    "policy": ("dmpc", "harness policy name: dmpc, proposer, expert, latent-cem, latent-mppi, ..."),
    "task": ("", "initial JSON plan step; empty: wait for a goal"),
    "model": ("", "checkpoint directory of the policy; empty: its default (DEFAULT_MODELS; none for the expert)"),
    "planner": ("ssr", "dmpc only: ssr, mppi or cem (the oracle needs a simulator copy, not available here)"),
    "dynamics": (str(pretrained_dir() / "dynamics-pushblocks"), "dmpc only: dynamics ensemble directory"),
    "policy_options": ("{}", "JSON object of extra policy options (forethought eval --policy-option KEY=VALUE)"),
    "backend": ("onnx", "dmpc and the latent planners: onnx (the networks exported at start-up, about 10 s for "
                        "dmpc, and run on onnxruntime), or torch"),
    "num_inference_steps": (0, "diffusion sampling steps; 0: the model's default"),
    "action_steps": (0, "actions executed per chunk before replanning; 0: the model's default"),
    "seed": (0, "seeds the policy's sampling; the k-th goal uses seed + k"),
    "threads": (2, "torch CPU threads"),
    "execution": ("async", "async: plan on a worker thread, act on a control timer; sync: plan and publish in "
                           "the callback of each complete observation (sim_node's lockstep)"),
    "control_rate_hz": (10.0, "control ticks per second (node clock): the spacing of trajectory points"),
    "temporal_ensemble_k": (0.0, "async: blend overlapping chunks, weights exp(-k i), i = 0 the oldest (ACT); "
                                 "0: off, a new chunk replaces the rest"),
    "command_timeout_s": (1.0, "the robot holds where it is this long after a trajectory's last point"),
    **INPUT_PARAMS,
    **LIMIT_PARAMS,
}
DEFAULT_MODELS = {"dmpc": pretrained_dir() / "proposer-pushblocks-fast", "proposer": pretrained_dir() / "proposer-pushblocks",
                  "latent-cem": pretrained_dir() / "wm-pushblocks-state",
                  "latent-mppi": pretrained_dir() / "wm-pushblocks-state"}
"""The checkpoint a policy runs when ``model`` is empty; a policy not listed (the expert) takes none. D-MPC
samples its proposals from the one-step student (issue #17: about 13 ms per replan on onnxruntime, 2 threads);
the proposer alone runs the DDIM teacher; the latent planners plan in the SIGReg state model."""
BACKEND_POLICIES = ("dmpc", "latent-cem", "latent-mppi")
"""Policies that take the ``backend`` parameter."""
MAX_UNPLANNED = 16
"""Observations kept for the next plan (the policy keeps its own, shorter, history of them)."""
OVERHEAD_SAMPLES = 10_000
"""Trajectories over which ``status`` gives the loop overhead's percentiles."""


def percentiles(name: str, samples: deque[float]) -> dict[str, float]:
    """``{name_p50, name_p99}`` of ``samples`` (none while empty)."""
    if not samples:
        return {}
    p50, p99 = np.percentile(samples, [50, 99])
    return {f"{name}_p50": float(p50), f"{name}_p99": float(p99)}


def parse_options(text: str) -> dict[str, str]:
    """``policy_options`` JSON -> ``{str: str}`` (what ``--policy-option KEY=VALUE`` gives)."""
    try:
        options = json.loads(text or "{}")
    except json.JSONDecodeError as e:
        raise ValueError(f"policy_options is not valid JSON ({e.msg}): {text!r}") from None
    if not isinstance(options, dict):
        raise ValueError(f"policy_options must be a JSON object, got {text!r}")
    return {str(k): str(v) for k, v in options.items()}


@dataclass(frozen=True)
class PlanJob:
    """One call of the policy: reset it first (a new goal: ``(step, seed)``), then ``plan_chunk``
    on ``observations[T, S]`` (the last one stamped ``stamp``), asked for at ``requested`` (node
    clock). Wall times (``time.perf_counter``): the last observation delivered at ``received``,
    the job handed over at ``submitted``."""

    generation: int
    reset: tuple[dict[str, Any], int] | None
    observations: np.ndarray
    stamp: float
    requested: float
    received: float
    submitted: float


class PolicyController(nc.ReportingNode):
    def __init__(self) -> None:
        super().__init__("policy_controller")
        p = nc.declare_parameters(self, PARAMS)
        nc.check_range("threads", p["threads"], 1, 256)
        nc.check_range("control_rate_hz", p["control_rate_hz"], 0, 1000, lo_open=True)
        nc.check_range("command_timeout_s", p["command_timeout_s"], 0, 1e6)
        if p["execution"] not in EXECUTIONS:
            raise ValueError(f"execution={p['execution']!r}: use one of {list(EXECUTIONS)}")
        self.period = 1.0 / p["control_rate_hz"]
        self.gate = SafetyGate.from_params(p, self.period)
        self.chunks = ChunkExecutor(self.period, p["temporal_ensemble_k"])
        self.monitor = TickMonitor(self.period)
        torch.set_num_threads(p["threads"])
        spec = PolicySpec(
            model=Path(p["model"]) if p["model"] else DEFAULT_MODELS.get(p["policy"]),
            env_id=PUSH_BLOCKS_ID,
            observation_dim=scene.OBS_DIM,
            action_dim=scene.ACTION_DIM,
            num_inference_steps=p["num_inference_steps"] or None,
            action_steps=p["action_steps"] or None,
            options={**parse_options(p["policy_options"]),
                     **({"backend": p["backend"]} if p["policy"] in BACKEND_POLICIES else {})},
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
        self.joint_names = list(p["joint_names"])
        self.task: dict[str, Any] | None = None
        self.present = scene.BLOCK_NAMES
        self.goals = 0
        self.generation = 0  # bumped by every goal change and hold: older plans are dropped on landing
        self.pending_reset: tuple[dict[str, Any], int] | None = None  # for the next PlanJob
        self.latest: tuple[np.ndarray, float] | None = None  # the newest complete observation and its stamp
        self.refused = ""  # the last input refusal since the newest complete observation
        self.received = 0.0  # time.perf_counter() when the newest complete observation was delivered
        self.overhead_ms: deque[float] = deque(maxlen=OVERHEAD_SAMPLES)  # per trajectory sent, see _send
        self.obs_wait_ms: deque[float] = deque(maxlen=OVERHEAD_SAMPLES)  # per plan: its observation's age at the start
        self.unplanned: list[np.ndarray] = []  # complete observations since the last PlanJob, oldest first
        self.latency_s: deque[float] = deque(maxlen=10)  # node-clock request-to-landing time of recent plans
        self.follower: TrajectoryFollower | None = None  # what the robot executes, as sent
        self.moving = False  # a motion trajectory went out since the last hold
        self.hold_reason = "waiting for a goal"
        self.counts = {"commands": 0, "holds": 0, "clipped_trajectories": 0, "gate_rejections": 0,
                       "bad_goals": 0, "bad_actions": 0, "late_chunks": 0}
        self.pub_traj = self.create_publisher(JointTrajectory, "joint_trajectory", 10)
        self.pub_status = self.create_publisher(nc.DiagnosticArray, "status", 10)
        self.inputs = InputTopics(self, p, self._on_observation, self._on_refusal, wrap=self.guard)
        self.create_subscription(String, "goal", self.guard(self._on_goal), 10)
        self.worker: PlanWorker | None = None
        if p["execution"] == "async":
            landed = self.create_guard_condition(self.guard(self._on_landed))
            self.worker = PlanWorker(self._plan, landed.trigger)
        self.create_timer(self.period, self.guard(self._on_tick))
        self.create_timer(1.0, self.guard(self._publish_status), clock=nc.STEADY_CLOCK)  # heard while sim time stands still
        if p["task"].strip():
            self._set_task(nc.parse_step(p["task"]))
        self.get_logger().info(f"policy {p['policy']} ({p['model'] or 'no model'}), {p['execution']} execution, "
                               f"task={json.dumps(self.task)}")

    # ------------------------------------------------------------------ goals
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
        self.pending_reset = (step, self.p["seed"] + self.goals)
        self.goals += 1
        self.chunks.clear()
        self.generation += 1
        self.get_logger().info(f"goal: {json.dumps(step)}")

    # ------------------------------------------------------------------ inputs
    def _on_observation(self, obs: np.ndarray, stamp: float) -> None:
        """A complete, fresh observation ``obs[OBS_DIM]`` stamped ``stamp`` (``InputTopics``)."""
        now = self.inputs.now()
        assert now is not None  # InputTopics skips every message until the clock runs
        self.present = scene.present_blocks(obs)
        self.latest, self.refused, self.received = (obs, stamp), "", time.perf_counter()
        self.unplanned = [*self.unplanned[1 - MAX_UNPLANNED:], obs]
        measured = obs[scene.PUSHER_POS].astype(np.float64)
        if self.follower is None:
            self.follower = TrajectoryFollower(measured, self.p["command_timeout_s"])
        self.follower.step(now, measured)  # the robot's watchdog, mirrored
        if not self.moving and not self.follower.knot_t[0] <= now < self.follower.end_time:  # at rest (or /clock restarted):
            self.follower.hold(measured, now)  # the robot may have been moved (a sim reset): plan from where it is
        if self.worker is None:
            self.monitor.tick(now)  # sync: each observation is a control tick
            self._act_sync(now, stamp)
        else:
            self._maybe_replan(now)

    def _on_refusal(self, reason: str) -> None:
        """An input was refused (stale, future, wrong frame, malformed): hold until a complete set
        newer than it arrives. An out-of-order copy (a DDS duplicate, reordered delivery) is only
        counted: the newer inputs still stand, and the tick's staleness check holds if they stop."""
        if self.inputs.inputs.last_refusal_kind == "out_of_order":
            return
        self.refused = reason
        self._hold(f"input refused: {reason}")

    def _checked(self, now: float) -> np.ndarray | None:
        """The newest observation if the controller may act on it now: a task, every input fresh, the
        goal valid for the blocks present and not yet achieved. Otherwise hold (saying why), ``None``."""
        if self.task is None:
            return None
        if self.refused:
            self._hold(f"input refused: {self.refused}")
            return None
        try:
            self.inputs.observation()  # every source fresh at the node clock (a stale one is counted)
        except ValueError as e:
            self._hold(f"inputs: {e}")
            return None
        if self.latest is None:
            self._hold("waiting for a complete observation")
            return None
        obs = self.latest[0]
        try:
            scene.validate_step(self.task, present=self.present)
        except ValueError as e:
            self.warn(f"goal refused: {e} (blocks present: {list(self.present)})", "bad_goals")
            self.task = None
            self._hold("goal names an absent block")
            return None
        if scene.is_success(self.task, obs):
            self._hold("step achieved")
            return None
        return obs

    # ------------------------------------------------------------------ planning
    def _plan(self, job: PlanJob) -> np.ndarray:
        """Run the policy on ``job`` (the worker thread, or the callback in sync execution)."""
        if job.reset is not None:
            self.policy.reset(*job.reset)
        return plan_chunk(self.policy, job.observations)

    def _job(self, now: float) -> PlanJob:
        """A plan of the observations received since the last one (``self.latest`` the newest)."""
        assert self.latest is not None and self.unplanned
        job = PlanJob(self.generation, self.pending_reset, np.array(self.unplanned), self.latest[1], now,
                      self.received, time.perf_counter())
        self.obs_wait_ms.append((job.submitted - job.received) * 1e3)
        self.pending_reset, self.unplanned = None, []
        return job

    def _land(self, result: PlanResult, now: float) -> bool:
        """Merge a finished plan at ``now`` (alignment time); ``True`` if its setpoints are in force."""
        job: PlanJob = result.job
        if job.generation != self.generation:
            return False  # planned for a goal or a state since dropped
        self.monitor.replanned(result.compute_ms)
        self.latency_s.append(max(0.0, now - job.requested))
        if result.error is not None:
            self.report_fault("policy.plan_chunk", result.error)
            self.task = None
            self._hold("policy error")
            return False
        chunk = np.asarray(result.chunk)
        if chunk.ndim != 2 or not len(chunk) or chunk.shape[1] != len(self.joint_names) or not np.all(np.isfinite(chunk)):
            self.warn(f"policy returned a chunk of shape {chunk.shape} with non-finite or missing actions; not "
                      f"sending it", "bad_actions")
            return False
        if landed_late(chunk, job.stamp, now, self.period):
            self.warn(f"a chunk planned from {job.stamp:.3f} s landed at {now:.3f} s, after its last step: "
                      f"its last step is the next setpoint", "late_chunks")
        self.chunks.add(chunk, job.stamp, now)
        return True

    def _act_sync(self, now: float, stamp: float) -> None:
        """Sync execution: plan when the chunk has run out (as ``forethought eval``'s ``act`` would),
        publish what remains of it from this observation's stamp."""
        if self._checked(now) is None:
            return
        compute_ms = 0.0
        if self.chunks.remaining(stamp) == 0:
            result = run_job(self._plan, self._job(now))
            if not self._land(result, stamp):
                return
            compute_ms = result.compute_ms
        self._send(self.chunks.ahead(stamp), now, self.received, compute_ms)  # the plan ran in this callback

    def _maybe_replan(self, now: float) -> None:
        """Async execution: start a plan on the newest observation when the setpoints ahead run low
        (``lead_steps`` of the recent plan latencies) and the worker is free. Called when an
        observation arrives and when a plan lands: a plan always starts from an observation just
        delivered (or delivered while the worker was busy), never from one a control tick found."""
        assert self.worker is not None
        if self.worker.busy or not self.unplanned or self._checked(now) is None:
            return
        if self.chunks.remaining(now) <= self.lead_steps:
            self.worker.submit(self._job(now))

    @property
    def lead_steps(self) -> int:
        return lead_steps(max(self.latency_s, default=0.0), self.period)

    def _on_landed(self) -> None:
        """Async: a plan finished (the worker's guard condition, or polled by the tick): merge it
        aligned to now and publish the setpoints ahead."""
        assert self.worker is not None
        result = self.worker.take()
        now = self.inputs.now()
        if result is None or now is None:
            return
        if self._land(result, now) and self._checked(now) is not None:
            self._send(self.chunks.ahead(now), now, result.job.submitted, result.compute_ms)
        self._maybe_replan(now)  # an observation that arrived during the plan

    def _on_tick(self) -> None:
        """The control timer (node clock): tick accounting, a landed plan not yet merged, input and goal
        checks (hold)."""
        now = self.inputs.now()
        if now is None:
            return
        if self.worker is None:  # sync: the observations drive; the timer holds on stale inputs
            self._checked(now)
            return
        self.monitor.tick(now)
        self._on_landed()
        if self._checked(now) is None:
            return
        if self.chunks.starved(now):
            self.monitor.starved()

    # ------------------------------------------------------------------ output
    def _send(self, setpoints: np.ndarray, now: float, started: float, compute_ms: float) -> None:
        """Gate ``setpoints[R, J]`` (one period apart from one period ahead, then at rest) from the
        current setpoint, publish, remember. The loop overhead of this trajectory: the wall time
        since its plan was handed over (sync: since its observation was delivered), ``started``
        (``time.perf_counter``), less the policy's ``compute_ms``."""
        if not len(setpoints):
            return
        assert self.follower is not None
        positions = np.vstack([setpoints, setpoints[-1:]])  # ends at rest on the last setpoint
        times = self.period * np.arange(1, len(positions) + 1)
        try:
            out = self.gate.apply(self.follower.state(now)[0], self.follower.recent(now, self.period), positions, times)
        except ValueError as e:
            self.warn(f"trajectory not sent: {e}", "gate_rejections")
            return
        if out.clipped:
            self.warn("trajectory clipped to the joint limits", "clipped_trajectories")
        self.pub_traj.publish(nc.trajectory_msg(out.positions, out.times, self.joint_names))
        self.overhead_ms.append((time.perf_counter() - started) * 1e3 - compute_ms)
        self.follower.accept(out.positions, out.times, now)
        self.counts["commands"] += 1
        self.moving = True

    def _hold(self, reason: str) -> None:
        """Drop every chunk and stop publishing motion: one trajectory that brings the setpoint to rest, once."""
        self.hold_reason = reason
        self.chunks.clear()
        self.generation += 1
        now = self.inputs.now()
        if not self.moving or self.follower is None or now is None:
            return
        self.moving = False
        stop = self.gate.stop(self.follower.state(now)[0], self.follower.recent(now, self.period))
        self.pub_traj.publish(nc.trajectory_msg(stop.positions, stop.times, self.joint_names))
        self.follower.accept(stop.positions, stop.times, now)
        self.counts["holds"] += 1
        self.get_logger().info(f"holding: {reason}")

    def _publish_status(self) -> None:
        now = self.inputs.now()
        level = nc.WARN if self.last_error else nc.OK
        message = "running" if self.moving else f"holding: {self.hold_reason}"
        values = {"policy": self.p["policy"], "execution": self.p["execution"], "task": self.task,
                  "moving": self.moving, **self.counts, **self.inputs.status_values(),
                  **(self.monitor.window(now) if now is not None else {}), "lead_steps": self.lead_steps,
                  **percentiles("overhead_ms", self.overhead_ms), **percentiles("obs_wait_ms", self.obs_wait_ms),
                  "last_error": self.last_error}
        self.publish_status(level, message, values)

    def close(self, interrupted: bool) -> None:
        """Stop the planning thread (``run_node`` calls this before the node is destroyed)."""
        if self.worker is not None and not self.worker.stop(timeout=10.0):
            self.get_logger().warning("the planning thread did not stop within 10 s (a plan still running)")


def main(args: list[str] | None = None) -> int:
    return nc.run_node(PolicyController, args)


if __name__ == "__main__":
    raise SystemExit(main())
