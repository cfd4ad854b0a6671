"""Small helpers shared by forethought's rclpy nodes.

- ``run_node``: the one ``main`` body of every node: init, spin, clean shutdown, exit code. (A
  node module opens with ``forethought.runtime.prepare_node_process(__name__)``, which must run
  before rclpy is imported, so it lives in that light module.)
- ``ReportingNode``: the base of the nodes that count refusals and publish a ``status``.
- ``declare_parameters``: declare a node's parameters (with descriptions) in one call.
- ``parse_step``: JSON plan step -> validated dict, with a clear error; ``parse_goal`` also
  accepts the hold goal (``hold_goal``).
- ``check_trajectory`` / ``trajectory_msg``: a JointTrajectory's structure, read and built.
- ``status_msg``: a one-entry diagnostic_msgs/DiagnosticArray for a node's ``status`` topic.
- ``parse_command`` / ``task_event``: the ``task_command`` envelope and the ``task_status``
  lifecycle events (``TASK_STATES``).
"""

from __future__ import annotations

from forethought.runtime import apply_defaults

apply_defaults()  # before rclpy is imported: discovery on loopback unless the user says otherwise

import json  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from typing import Any, Callable, Mapping, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue  # noqa: E402
from rcl_interfaces.msg import ParameterDescriptor  # noqa: E402
from rclpy.clock import Clock, ClockType  # noqa: E402
from rclpy.exceptions import ParameterException  # noqa: E402
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.publisher import Publisher  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.signals import SignalHandlerOptions  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402

from forethought.sim.scene import BLOCK_NAMES, validate_step  # noqa: E402

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR
EXIT_BAD_PARAMETER = 2
"""Exit code of a node whose parameters fail validation (the error is logged, no traceback)."""
STEADY_CLOCK = Clock(clock_type=ClockType.STEADY_TIME)
"""Clock of heartbeat timers (``status``): wall time, ticking while a paused sim stops ``/clock``."""
PLAN_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""QoS of the ``plan`` topic: the last plan stays available to a subscriber that joins late."""


TASK_STATUS_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""QoS of ``task_status``: reliable, deep enough for a burst of commands (one event per transition),
transient-local: a subscriber that matches a publisher late (e.g. one just restarted, whose first
events go out before discovery) still gets its last 1000 events, once per match."""
TASK_COMMAND_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
"""QoS of ``task_command``: reliable, volatile: a restarted planner must not get old commands again,
and a volatile publisher (``ros2 topic pub``) must match."""
TASK_STATES = ("queued", "planning", "planned", "refused", "dropped", "executing", "done", "failed", "cancelled")
"""A command's lifecycle on ``task_status``: ``queued`` -> ``planning`` -> ``planned`` (with the
plan) -> ``executing`` (once per step index) -> one terminal state."""
TERMINAL_STATES = ("refused", "dropped", "done", "failed", "cancelled")
"""Each command ends in exactly one of these."""
MAX_COMMAND_CHARS = 100_000


def parse_command(text: str, default_id: str) -> tuple[str, str]:
    """A ``task_command`` message -> ``(id, command)``.

    Plain words are the command, with ``default_id``; the JSON envelope ``{"id": ..., "command": ...}``
    carries the caller's id (a str or int, <= 200 characters; without ``"id"``, ``default_id``).
    ``ValueError`` (with the id to report it under) for an envelope that is malformed.
    """
    stripped = text.strip()
    if not stripped.startswith("{"):
        return default_id, text
    try:
        envelope = json.loads(stripped[:MAX_COMMAND_CHARS])
    except json.JSONDecodeError:
        return default_id, text  # words that happen to start with "{": the planner refuses or plans them
    if not isinstance(envelope, dict):
        return default_id, text
    cid = envelope.get("id", default_id)
    if isinstance(cid, bool) or not isinstance(cid, (str, int)) or not str(cid) or len(str(cid)) > 200:
        raise CommandError(default_id, f'"id" must be a non-empty str or int of <= 200 characters, got {str(cid)[:80]!r}')
    if set(envelope) - {"id", "command"} or not isinstance(envelope.get("command"), str):
        raise CommandError(str(cid), f'a command envelope is {{"id": ..., "command": "words"}}, got keys '
                                     f'{sorted(envelope)[:8]}')
    return str(cid), envelope["command"]


class CommandError(ValueError):
    """A malformed ``task_command`` envelope; ``command_id`` is the id to refuse it under."""

    def __init__(self, command_id: str, reason: str) -> None:
        super().__init__(reason)
        self.command_id = command_id


def task_event(command_id: str, state: str, **fields: Any) -> String:
    """A ``task_status`` message: std_msgs/String holding ``{"id", "state", **fields}`` as JSON."""
    if state not in TASK_STATES:
        raise ValueError(f"task state {state!r}: valid states are {list(TASK_STATES)}")
    return String(data=json.dumps({"id": command_id, "state": state, **fields}))


class StopNode(Exception):
    """Raised by a node (callback or constructor) to end ``run_node`` with ``exit_code``."""

    def __init__(self, exit_code: int, reason: str = "") -> None:
        super().__init__(reason)
        self.exit_code = exit_code


def declare_parameters(node: Node, specs: Mapping[str, tuple[Any, str]]) -> dict[str, Any]:
    """Declare ``{name: (default, description)}`` on ``node``; return ``{name: value}``."""
    for name, (default, description) in specs.items():
        node.declare_parameter(name, default, ParameterDescriptor(description=description))
    return {name: node.get_parameter(name).value for name in specs}


def check_range(name: str, value: float, lo: float, hi: float, lo_open: bool = False) -> float:
    """Return ``value`` if it is finite and in ``[lo, hi]`` (``(lo, hi]`` if ``lo_open``), else raise."""
    ok = np.isfinite(value) and (lo < value if lo_open else lo <= value) and value <= hi
    if not ok:
        raise ValueError(f"{name}={value!r} must be in {'(' if lo_open else '['}{lo}, {hi}]")
    return value


def parse_step(text: str, present: Sequence[str] = BLOCK_NAMES) -> dict[str, Any]:
    """Parse a JSON plan step and validate it against the scene; raise ``ValueError`` if bad."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError('empty plan step: expected JSON like {"skill": "push", "object": "red_block", '
                         '"target": "left"}')
    if len(text) > 4096:
        raise ValueError(f"plan step is {len(text)} characters long; a step is a small JSON object")
    try:
        step = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"plan step is not valid JSON ({e.msg} at char {e.pos}): {text[:80]!r}") from None
    return validate_step(step, present=tuple(present))


def check_trajectory(msg: JointTrajectory, joint_names: Sequence[str], max_points: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """Validate a trajectory_msgs/JointTrajectory's structure; return ``positions[P, J]`` (in
    ``joint_names`` order) and ``times[P]`` (s). Raise ``ValueError`` naming what is wrong.

    Rules: the message names each joint of ``joint_names`` exactly once (any order); it has 1 to
    ``max_points`` points; every point has one finite position per joint, and ``velocities`` and
    ``accelerations`` empty or one per joint (they are not used: points are joined linearly);
    ``time_from_start`` is finite, > 0 (a first point at 0 is a jump) and strictly increasing.
    Limits are the safety gate's job (``forethought.ros_ws.safety``).
    """
    names = list(msg.joint_names)
    if sorted(names) != sorted(joint_names) or len(set(names)) != len(names):
        raise ValueError(f"joint_names {names} must name each of {list(joint_names)} exactly once")
    if not 1 <= len(msg.points) <= max_points:
        raise ValueError(f"trajectory has {len(msg.points)} points, expected 1 to {max_points}")
    order = [names.index(j) for j in joint_names]
    positions = np.empty((len(msg.points), len(joint_names)))
    times = np.empty(len(msg.points))
    for i, pt in enumerate(msg.points):
        if len(pt.positions) != len(names):
            raise ValueError(f"point {i} has {len(pt.positions)} positions for {len(names)} joints")
        if len(pt.velocities) not in (0, len(names)) or len(pt.accelerations) not in (0, len(names)):
            raise ValueError(f"point {i} has {len(pt.velocities)} velocities and {len(pt.accelerations)} "
                             f"accelerations: give none or one per joint")
        positions[i] = np.asarray(pt.positions, dtype=np.float64)[order]
        times[i] = pt.time_from_start.sec + 1e-9 * pt.time_from_start.nanosec
    if not np.all(np.isfinite(positions)):
        bad = int(np.argwhere(~np.isfinite(positions))[0, 0])
        raise ValueError(f"point {bad} has a NaN or infinite position: {positions[bad].tolist()}")
    if not np.all(np.isfinite(times)) or times[0] <= 0 or np.any(np.diff(times) <= 0):
        raise ValueError(f"time_from_start must be > 0 and strictly increasing, got {times[:8].round(3).tolist()}")
    return positions, times


def trajectory_msg(positions: np.ndarray, times: np.ndarray, joint_names: Sequence[str]) -> JointTrajectory:
    """trajectory_msgs/JointTrajectory of ``positions[P, J]`` at ``times[P]`` (s), stamp zero ("start on receipt")."""
    msg = JointTrajectory(joint_names=list(joint_names))
    for q, t in zip(np.asarray(positions, float), np.asarray(times, float)):
        ns = int(round(t * 1e9))
        pt = JointTrajectoryPoint(positions=q.tolist())
        pt.time_from_start.sec, pt.time_from_start.nanosec = ns // 10**9, ns % 10**9
        msg.points.append(pt)
    return msg


HOLD_SKILL = "hold"
"""The ``skill`` of a hold goal: ``{"skill": "hold", "reason": "..."}`` on ``goal`` tells the
controller to stop publishing motion (the robot holds); the sim node keeps scoring its task."""


def hold_goal(reason: str) -> str:
    """The JSON of a hold goal (see ``HOLD_SKILL``)."""
    return json.dumps({"skill": HOLD_SKILL, "reason": reason})


def parse_goal(text: str, present: Sequence[str] = BLOCK_NAMES) -> dict[str, Any]:
    """A ``goal`` message: a hold goal (``{"skill": "hold", "reason": str}``) or a plan step
    (``parse_step``); ``ValueError`` if it is neither."""
    try:
        goal = json.loads(text) if isinstance(text, str) and len(text) <= 4096 else None
    except json.JSONDecodeError:
        goal = None
    if isinstance(goal, dict) and goal.get("skill") == HOLD_SKILL:
        if set(goal) - {"skill", "reason"} or not isinstance(goal.get("reason", ""), str):
            raise ValueError(f'a hold goal is {{"skill": "hold", "reason": "..."}}, got {text[:120]!r}')
        return {"skill": HOLD_SKILL, "reason": goal.get("reason", "")}
    return parse_step(text, present)


class VideoRecorder:
    """Keeps RGB frames in memory (up to ``max_bytes``; later frames are dropped) and writes them
    atomically with ``forethought.sim.render.write_video``. Raises ``ValueError`` for a bad path."""

    def __init__(self, path: str, size: int, fps: float, max_bytes: int = 2**30) -> None:
        from forethought.sim.render import VIDEO_EXTENSIONS

        ext = path[path.rfind("."):].lower() if "." in path else ""
        if ext not in VIDEO_EXTENSIONS or (ext == ".mp4" and size % 2):
            raise ValueError(f"video_path {path!r} with video_size {size}: use one of {list(VIDEO_EXTENSIONS)} "
                             "(and an even size for .mp4)")
        self.path, self.fps, self.max_frames = path, fps, max(1, max_bytes // (3 * size * size))
        self.frames: list[np.ndarray] = []

    def add(self, frame: np.ndarray) -> None:
        if len(self.frames) < self.max_frames:
            self.frames.append(frame)

    def write(self) -> tuple[bool, str]:
        """Write the video; return whether it worked and a line for the log (never raises)."""
        if not self.frames:
            return False, f"no frames recorded: {self.path} not written"
        try:
            from forethought.sim.render import write_video

            write_video(self.path, self.frames, fps=self.fps)
        except Exception as e:  # a failed video must not hide the run's own result
            return False, f"could not write video {self.path!r}: {e}"
        return True, f"video: {self.path} ({len(self.frames)} frames)"


class ReportingNode(Node):
    """A node that counts the inputs it refuses and reports on its ``status`` topic.

    A subclass sets ``counts`` (counter name -> count, all shown in its status values) and
    creates ``pub_status``, after validating its parameters. ``warn`` logs a problem (one line
    per 2 s at most, from this one call site) and keeps it as ``last_error`` until the next
    ``publish_status``.
    """

    counts: dict[str, int]
    pub_status: Publisher
    last_error: str = ""
    fault: str = ""
    """An exception caught since the last ``publish_status`` (which then reports ERROR)."""
    faults: int = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started = time.monotonic()

    def report_fault(self, where: str, error: BaseException) -> str:
        """Log ``error`` (with its traceback) as an ERROR from ``where``; keep it as ``fault``; return the text."""
        self.faults += 1
        self.fault = f"{where}: {type(error).__name__}: {error}"[:500]
        self.get_logger().error(f"{self.fault}\n{''.join(traceback.format_exception(error))[-2000:]}")
        return self.fault

    def guard(self, callback: Callable[..., Any], where: str | None = None) -> Callable[..., Any]:
        """Subscription or timer ``callback`` with any exception (except ``StopNode``) caught and
        reported (``report_fault``): a bug in one callback never kills the node."""
        name = where or getattr(callback, "__name__", "callback")

        def guarded(*args: Any) -> Any:
            try:
                return callback(*args)
            except StopNode:
                raise
            except Exception as e:
                self.report_fault(name, e)
                return None
        return guarded

    def warn(self, text: str, counter: str | None = None) -> None:
        """Log ``text`` as a warning, keep it as ``last_error`` and add one to ``counts[counter]``."""
        if counter is not None:
            self.counts[counter] += 1
        self.last_error = text
        self.get_logger().warning(text, throttle_duration_sec=2.0)

    def publish_status(self, level: bytes, message: str, values: Mapping[str, Any]) -> None:
        """Publish ``status`` (``status_msg``; ERROR with the ``fault`` while there is one; ``uptime_s``,
        wall seconds since the node started, tells a watcher it restarted) and forget ``last_error`` and ``fault``."""
        if self.fault:
            level, message = ERROR, f"{message}; error: {self.fault}"
        values = {**values, "faults": self.faults, "fault": self.fault,
                  "uptime_s": round(time.monotonic() - self.started, 3)}
        self.pub_status.publish(status_msg(self, level, message, values))
        self.last_error = self.fault = ""


def status_msg(node: Node, level: bytes, message: str, values: Mapping[str, Any], hardware_id: str = "") -> DiagnosticArray:
    """A DiagnosticArray with one status named after the node; values are str()-ed (floats to 4 d.p.)."""
    def fmt(v: Any) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, float):
            return f"{v:.4f}"
        if isinstance(v, (dict, list)):
            return json.dumps(v)
        return str(v)

    arr = DiagnosticArray()
    arr.header.stamp = node.get_clock().now().to_msg()
    arr.status = [DiagnosticStatus(level=level, name=node.get_fully_qualified_name(), message=message,
                                   hardware_id=hardware_id,
                                   values=[KeyValue(key=k, value=fmt(v)) for k, v in values.items()])]
    return arr


def run_node(factory: Callable[[], Node], args: list[str] | None = None) -> int:
    """Init rclpy, build the node, spin until it stops, shut down cleanly; return the exit code.

    SIGINT and SIGTERM end the spin loop (no traceback) while the context is still valid, so the
    node's ``close(interrupted)`` can log and write its outputs. A node ends itself by raising
    ``StopNode(code)``; ``close`` may return an exit code that replaces the default 0. A
    ``ValueError`` or rclpy ``ParameterException`` (wrong type) from the constructor is logged and
    gives exit code 2.
    (rclpy 7 in Jazzy has no ``rclpy.init`` context manager; this is its try/finally.)
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    node, code, interrupted = None, 0, False
    executor = SingleThreadedExecutor()
    try:
        try:
            node = factory()
        except (ValueError, ParameterException) as e:  # a bad parameter: say which and why, no traceback
            rclpy.logging.get_logger("forethought").error(f"bad parameter: {e}")
            raise StopNode(EXIT_BAD_PARAMETER) from None
        executor.add_node(node)
        while rclpy.ok() and not stop.is_set():
            executor.spin_once(timeout_sec=0.1)
        interrupted = True
    except StopNode as e:
        code = e.exit_code
    except (KeyboardInterrupt, ExternalShutdownException):
        interrupted = True
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close is not None:
                result = close(interrupted)
                code = code if result is None else int(result)
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown()
        for s, h in previous.items():
            signal.signal(s, h)
    return code
