"""world_model_node: the latent world model's surprise monitor on the ROS graph.

    python -m forethought.ros_ws.world_model_node --ros-args --params-file stack.yaml

A thin wrapper: the learning code is ``forethought.models.world_model.surprise.SurpriseMonitor``
(how far each observation lands from what the world model predicted from the recent observations
and the commands applied since; about 0 while the world behaves as learned). ``surprise_space``
says where that is measured: ``positions`` (the default: the pusher's and the blocks' positions the
model folder's linear probe reads out of the predicted and the observed embedding, mean squared
difference in m^2) or ``latent`` (LeWM's embedding distance).

- ``joint_commands`` (sensor_msgs/JointState, ``position`` per joint of ``joint_names``,
  stamped): the command the robot (sim_node) applied, stamped with the stamp of the observation
  it led to (sim_node: the same sim-time stamp as that tick's ``joint_states`` and object poses).
  One with the wrong joints or size, a NaN/inf, or a stamp more than ``max_age_s`` from the node
  clock is ignored and counted (``refused_commands``).
- Inputs: ``joint_states`` and ``objects/<name>/pose`` (``input_topics.InputTopics``, the
  ``INPUT_PARAMS``): one observation per complete set of fresh inputs, stamped; stale, replayed,
  out-of-frame or malformed inputs are refused and counted by kind (``refused_<kind>`` on
  ``status``). Each observation stamped ``s`` is paired with the command stamped in
  ``(s_prev, s]`` (``s_prev``: the previous observation's stamp; the pairing is
  ``SurpriseTracker``'s, by stamps, so a command may arrive before or after its observation) and
  fed to the monitor as one env step.
- Episodes: the monitor restarts at an observation (``monitor.reset``) when it is the first, when
  its stamp is more than ``max_age_s`` after the previous one's (``episodes`` counts these), or
  when it cannot be paired: no command yet, or not exactly one command since the previous
  observation (a dropped or refused message; ``unpaired_observations``). A scene reset that is not
  announced on any topic (sim_node's ``reset`` service) looks to the model like what it is, a
  teleport: surprise (WARN) for up to ``(history + horizon - 1) * frameskip + window - 1`` steps
  (15 with the defaults) until the monitor's context is past it. Jumps are deliberately not taken
  for resets: a jump is what the 1-step surprise detects best.
- ``surprise`` (diagnostic_msgs/DiagnosticArray, one status named ``<node>/surprise``): published
  for every observation that has a value (the first ``horizon * frameskip`` steps of an episode
  have none); level WARN when the surprise is above ``surprise_threshold``, else OK; values ``surprise``,
  ``max`` (running max since the node started), ``threshold``, ``steps`` (values computed so
  far) and ``above_threshold`` (how many of them were above it).
- ``status`` (DiagnosticArray, 1 Hz wall clock): model, counts, input refusals, last and max
  surprise; WARN while the latest observation is older than ``max_age_s`` (node clock: "stale
  input"), or after a refused message or an unpaired observation since the previous status.

The shipped model was trained on PushBlocks' 10 Hz env steps: one observation must be one env
step (sim_node at ``control_rate_hz`` 10, its default), and one action block is ``frameskip`` = 5
steps.

Where the ``surprise_threshold`` default comes from (``bench/world_model.py --only monitor``,
``BENCHMARKS.md``, issue #18): on 3-block pushes under the stack's D-MPC, the 98th percentile of a
clean tuning episode's largest 1-step position surprise is 0.0053 m^2 (``DEFAULT_THRESHOLDS``); on
other seeds it raises an alarm in 2 of 50 clean 80-step episodes and flags 42 of 50 red-block
teleports (12 cm) within 20 steps. The latent surprise at its own 98th percentile (0.6 to 0.67)
flags 4 to 6 of 50: the model's latent error at fast contacts is as large as a teleport's spike,
while read as positions a teleported block stands out. With ``surprise_space: latent`` set
``surprise_threshold`` too (0.6 is its calibrated value). Mass or friction changes are not
separated from normal physics in either space.
"""

from __future__ import annotations

from forethought.runtime import prepare_node_process

prepare_node_process(__name__)  # first: local defaults before rclpy; a stop signal during start-up exits quietly

from pathlib import Path  # noqa: E402
from typing import Any, Sequence  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from forethought.models.world_model.modeling_world_model import LatentWorldModel  # noqa: E402
from forethought.models.world_model.probe import LinearProbe  # noqa: E402
from forethought.models.world_model.surprise import SURPRISE_SPACES, SurpriseMonitor  # noqa: E402
from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.ros_ws.input_topics import INPUT_PARAMS, InputTopics  # noqa: E402
from forethought.ros_ws.stamped import stamp_seconds  # noqa: E402
from forethought.runtime import pretrained_dir  # noqa: E402
from forethought.sim import scene  # noqa: E402

QUEUE_DEPTH = 50
"""Depth of the joint_commands subscription: a node stalled for up to 2.5 s at 20 Hz loses nothing."""
MAX_PENDING = 100
"""Commands (and observations) kept while waiting for their pair (a backlog of 10 s at 10 Hz)."""
DEFAULT_SPACE = "positions"
DEFAULT_THRESHOLDS = {"positions": 0.0053, "latent": 0.6}
"""Surprise above which ``surprise`` reports WARN, per space (how they were chosen: the module docstring)."""

PARAMS = {
    **INPUT_PARAMS,
    "world_model": (str(pretrained_dir() / "wm-pushblocks-state"),
                    "world-model checkpoint directory (state observations of PushBlocks)"),
    "surprise_horizon": (1, "open-loop prediction horizon in action blocks (1: LeWM's 1-step surprise)"),
    "surprise_window": (1, "running mean of the surprise over this many steps (1: none)"),
    "surprise_space": (DEFAULT_SPACE, "where the surprise is measured: positions (probed, m^2) or latent"),
    "surprise_threshold": (DEFAULT_THRESHOLDS[DEFAULT_SPACE], "surprise above which the surprise topic reports WARN "
                           f"(calibrated: {', '.join(f'{k} {v:g}' for k, v in DEFAULT_THRESHOLDS.items())})"),
    "threads": (1, "torch CPU threads"),
}


def read_command(names: Sequence[str], position: Sequence[float],
                 joints: Sequence[str] = scene.PUSHER_JOINTS) -> np.ndarray:
    """A joint_commands message's ``position`` in ``joints`` order; ``ValueError`` if it is unusable."""
    names, position = list(names), np.asarray(position, dtype=np.float64)
    if sorted(names) != sorted(joints) or len(set(names)) != len(names):
        raise ValueError(f"joint_commands names {names} must name each of {list(joints)} exactly once")
    if position.shape != (len(names),):
        raise ValueError(f"joint_commands has {position.size} positions for {len(names)} joints")
    if not np.all(np.isfinite(position)):
        raise ValueError(f"joint_commands has a NaN or infinite position: {position.tolist()}")
    return position[[names.index(j) for j in joints]]


class SurpriseTracker:
    """The node's logic without ROS: pairs observations with commands by stamps, restarts episodes, counts.

    Call ``command(position, stamp)`` for each validated joint_commands message and
    ``observe(obs, stamp)`` for each observation, ``stamp`` being the message's stamp (s, one
    clock). The command of an observation stamped ``s`` is the one stamped in ``(s_prev, s]``. An
    observation is evaluated once no more commands can be due to it: when a command stamped ``>= s``
    or a newer observation has arrived, so a command may arrive before or after its observation.
    Both calls return the surprise values that became available, oldest first (none at an episode
    start and for the monitor's first ``horizon * frameskip`` steps). Pairing and episode rules:
    the module docstring.
    """

    def __init__(self, monitor: SurpriseMonitor, threshold: float, max_gap_s: float) -> None:
        self.monitor, self.threshold, self.max_gap_s = monitor, float(threshold), float(max_gap_s)
        self.commands: list[tuple[float, np.ndarray]] = []  # (stamp, position) not yet paired
        self.observations: list[tuple[float, np.ndarray]] = []  # (stamp, obs) waiting for their command
        self.last_command: np.ndarray | None = None
        self.obs_stamp: float | None = None  # stamp of the last evaluated observation
        self.last: float | None = None
        self.max = 0.0
        self.steps = self.above = 0
        self.episodes = 0  # restarts at the first observation or after a gap
        self.unpaired = 0  # restarts at an observation without exactly one command since the previous one

    def command(self, position: np.ndarray, stamp: float) -> list[float]:
        self.last_command = np.asarray(position, dtype=np.float64)
        self.commands.append((float(stamp), self.last_command))
        del self.commands[:-MAX_PENDING]
        return self._evaluate()

    def observe(self, obs: np.ndarray, stamp: float) -> list[float]:
        newest = self.observations[-1][0] if self.observations else self.obs_stamp
        if newest is not None and stamp <= newest:
            return []  # not newer than one already taken (the node's inputs never give one)
        self.observations.append((float(stamp), np.asarray(obs)))
        del self.observations[:-MAX_PENDING]
        return self._evaluate()

    def _evaluate(self) -> list[float]:
        """Step the monitor through every observation no further command can be due to."""
        values = []
        while self.observations:
            stamp, obs = self.observations[0]
            if len(self.observations) == 1 and not any(s >= stamp for s, _ in self.commands):
                break
            del self.observations[0]
            value = self._step(obs, stamp)
            if value is not None:
                values.append(value)
        return values

    def _step(self, obs: np.ndarray, stamp: float) -> float | None:
        prev, self.obs_stamp = self.obs_stamp, stamp
        due = [c for s, c in self.commands if s <= stamp and (prev is None or s > prev)]
        self.commands = [(s, c) for s, c in self.commands if s > stamp]
        gap = prev is not None and stamp - prev > self.max_gap_s
        if prev is None or gap or len(due) != 1:
            self.episodes += prev is None or gap
            self.unpaired += prev is not None and not gap and self.last_command is not None
            self.monitor.reset(obs)
            return None
        value = self.monitor.step(due[0], obs)
        if value is not None:
            self.last, self.steps = value, self.steps + 1
            self.max = max(self.max, value)
            self.above += value > self.threshold
        return value


class WorldModelNode(nc.ReportingNode):
    def __init__(self) -> None:
        super().__init__("world_model_node")
        p = nc.declare_parameters(self, PARAMS)
        nc.check_range("surprise_horizon", p["surprise_horizon"], 1, 100)
        nc.check_range("surprise_window", p["surprise_window"], 1, 10000)
        nc.check_range("surprise_threshold", p["surprise_threshold"], 0, 1e6, lo_open=True)
        nc.check_range("threads", p["threads"], 1, 256)
        if p["surprise_space"] not in SURPRISE_SPACES:
            raise ValueError(f"surprise_space {p['surprise_space']!r} must be one of {list(SURPRISE_SPACES)}")
        torch.set_num_threads(p["threads"])
        try:
            model = LatentWorldModel.from_pretrained(p["world_model"])
            probe = (LinearProbe.load(p["world_model"], model.config.embed_dim, model.config.obs_dim)
                     if p["surprise_space"] == "positions" else None)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise ValueError(f"world_model {p['world_model']!r}: {e}") from None
        c = model.config
        if c.obs_type != "state" or c.obs_dim != scene.OBS_DIM or c.action_dim != len(scene.PUSHER_JOINTS):
            raise ValueError(f"world_model {p['world_model']!r} observes {c.obs_type} (obs_dim {c.obs_dim}, action_dim "
                             f"{c.action_dim}); this node needs a state model of PushBlocks ({scene.OBS_DIM} floats, "
                             f"{len(scene.PUSHER_JOINTS)} actions)")
        self.p = p
        monitor = SurpriseMonitor(model, p["surprise_horizon"], p["surprise_window"], probe)
        self.tracker = SurpriseTracker(monitor, p["surprise_threshold"], p["max_age_s"])
        self.counts = {"refused_commands": 0}
        self.unpaired_seen = 0  # tracker.unpaired at the previous status
        self.pub_surprise = self.create_publisher(nc.DiagnosticArray, "surprise", 10)
        self.pub_status = self.create_publisher(nc.DiagnosticArray, "status", 10)
        self.create_subscription(JointState, "joint_commands", self.guard(self._on_command), QUEUE_DEPTH)
        self.inputs = InputTopics(self, p, self._on_observation, self._on_refusal, wrap=self.guard, depth=QUEUE_DEPTH)
        self.create_timer(1.0, self.guard(self._publish_status), clock=nc.STEADY_CLOCK)
        self.get_logger().info(f"world model {Path(p['world_model']).name} (frameskip {c.frameskip}, history "
                               f"{c.history}), {p['surprise_space']} surprise, horizon {p['surprise_horizon']}, "
                               f"window {p['surprise_window']}, threshold {p['surprise_threshold']}")

    def _on_command(self, msg: JointState) -> None:
        now = self.inputs.now()
        if now is None:
            return  # before /clock: nothing can be paired yet
        try:
            position = read_command(msg.name, msg.position, self.p["joint_names"])
            stamp = stamp_seconds(msg.header.stamp)
            if not abs(stamp - now) <= self.p["max_age_s"]:
                raise ValueError(f"stamp {stamp:.3f} s is {now - stamp:.3f} s from the clock "
                                 f"(max_age_s={self.p['max_age_s']:g})")
        except ValueError as e:
            self.warn(f"joint_commands ignored: {e}", "refused_commands")
            return
        for value in self.tracker.command(position, stamp):
            self._publish_surprise(value)

    def _on_observation(self, obs: np.ndarray, stamp: float) -> None:
        for value in self.tracker.observe(obs, stamp):
            self._publish_surprise(value)

    def _on_refusal(self, reason: str) -> None:
        self.last_error = f"input refused: {reason}"
        self.get_logger().warning(self.last_error, throttle_duration_sec=2.0)  # throttled apart from warn's

    def _publish_surprise(self, value: float) -> None:
        t = self.tracker
        above = value > t.threshold
        message = "surprise above threshold" if above else "as predicted"
        values = {"surprise": f"{value:.6g}", "max": f"{t.max:.6g}", "threshold": f"{t.threshold:.6g}",
                  "steps": t.steps, "above_threshold": t.above}
        arr = nc.status_msg(self, nc.WARN if above else nc.OK, message, values)
        arr.status[0].name += "/surprise"
        self.pub_surprise.publish(arr)

    def _publish_status(self) -> None:
        t, now = self.tracker, self.inputs.now()
        latest = t.observations[-1][0] if t.observations else t.obs_stamp
        if latest is None:
            message = "waiting for observations" if now is not None else "waiting for /clock"
        elif t.last_command is None:
            message = "waiting for joint_commands"
        else:
            message = "running"
        stale = latest is None or now is None or now - latest > self.p["max_age_s"]
        if stale and latest is not None:
            message += f"; stale input (max_age_s={self.p['max_age_s']:g})"
        unpaired = t.unpaired > self.unpaired_seen
        if unpaired:
            message += f"; {t.unpaired - self.unpaired_seen} observations without their command"
        if self.last_error:
            message += f"; {self.last_error}"
        self.unpaired_seen = t.unpaired
        values: dict[str, Any] = {
            "world_model": self.p["world_model"], "space": self.p["surprise_space"],
            "horizon": self.p["surprise_horizon"],
            "window": self.p["surprise_window"],
            "threshold": t.threshold, "last_surprise": t.last, "max_surprise": t.max, "steps": t.steps,
            "above_threshold": t.above, "episodes": t.episodes, "unpaired_observations": t.unpaired, **self.counts,
            **self.inputs.status_values(), "last_error": self.last_error}
        level = nc.WARN if stale or unpaired or self.last_error else nc.OK
        self.publish_status(level, message, values)


def main(args: list[str] | None = None) -> int:
    return nc.run_node(WorldModelNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
