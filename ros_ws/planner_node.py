"""planner_node: natural-language task commands to validated JSON plans (the LLM planner, AR/SD/SSD).

    python -m forethought.ros_ws.planner_node --ros-args --params-file stack.yaml

- ``task_command`` (std_msgs/String): a command in plain words ("push the red block to the left").
  "stop" and "cancel" (any case, trailing "." or "!") never reach the LLM: the queued commands
  are dropped, a plan being generated is not published, and the executive's ``cancel`` service
  is called, so the robot holds.
- ``plan`` (std_msgs/String, JSON ``{"steps": [...]}`` or ``{"steps": [], "refusal": ...}``,
  schema in ``forethought.llm_planner.planning.schema``): one per command, in order. Its QoS keeps the last
  plan for late subscribers (reliable, transient local, depth 1).
- The scene (which blocks the plan may name) is read from the latest ``observation``'s presence
  flags; until one arrives, the ``scene`` parameter.
- The models load on a worker thread at start-up (SmolLM2-135M takes about 20 s on a CPU), and
  planning runs there too, so the node keeps spinning. Commands wait in a bounded queue
  (``queue_size``; the oldest is dropped, with a warning, when it is full). A hostile or
  malformed command gives a refusal or a schema-valid plan, never a crash.
- ``command`` (parameter): plan this command once the models are loaded (for demos and tests).
- ``status`` (DiagnosticArray, 1 Hz): loading/ready, plans published, refusals, dropped commands,
  the last plan's decoding statistics (tok/s, acceptance length, cache hit rate).
"""

from __future__ import annotations

from forethought.runtime import prepare_node_process

prepare_node_process(__name__)  # first: local defaults before rclpy; a stop signal during start-up exits quietly

import json  # noqa: E402
import queue  # noqa: E402
import threading  # noqa: E402
from typing import Any  # noqa: E402

from std_msgs.msg import Float32MultiArray, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from forethought.llm_planner.decoding.engine import MODES, EngineConfig  # noqa: E402
from forethought.llm_planner.planning.planner import DEFAULT_ADAPTER, DEFAULT_DRAFT, DEFAULT_TARGET, Planner  # noqa: E402
from forethought.llm_planner.planning.schema import SCENES  # noqa: E402
from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.sim import scene  # noqa: E402

PARAMS = {
    "target": (DEFAULT_TARGET, "target model: HF directory, .gguf file or 'smollm2' (the embedded default)"),
    "draft": (DEFAULT_DRAFT, "draft model directory (modes sd, ssd)"),
    "adapter": (DEFAULT_ADAPTER, "LoRA adapter merged into the target; empty: the base target, few-shot prompt"),
    "mode": ("ssd", "decoding mode: ar, sd or ssd"),
    "k": (4, "draft tokens per round (sd, ssd)"),
    "scene": ("pushblocks-3", "scene until the first observation: pushblocks-1, -2 or -3"),
    "command": ("", "a command to plan once the models are loaded; empty: none"),
    "queue_size": (8, "commands waiting to be planned; the oldest is dropped beyond this"),
}

STOP_COMMANDS = ("stop", "cancel")


def is_stop(command: str) -> bool:
    """Whether ``command`` is one of ``STOP_COMMANDS`` (case, surrounding space and a final . or ! ignored)."""
    return command.strip().rstrip(".!").strip().lower() in STOP_COMMANDS


def scene_for(present: tuple[str, ...]) -> str | None:
    """The named planner scene holding exactly ``present`` blocks, or ``None``."""
    return next((name for name, blocks in SCENES.items() if set(blocks) == set(present)), None)


class PlannerNode(nc.ReportingNode):
    def __init__(self) -> None:
        super().__init__("planner_node")
        p = nc.declare_parameters(self, PARAMS)
        if p["mode"] not in MODES:
            raise ValueError(f"mode {p['mode']!r}: valid modes are {list(MODES)}")
        if p["scene"] not in SCENES:
            raise ValueError(f"scene {p['scene']!r}: valid scenes are {list(SCENES)}")
        nc.check_range("queue_size", p["queue_size"], 1, 1000)
        nc.check_range("k", p["k"], 1, 16)
        self.p, self.scene = p, p["scene"]
        self.commands: queue.Queue[str | None] = queue.Queue(maxsize=p["queue_size"])
        self.counts = {"plans": 0, "refusals": 0, "dropped_commands": 0, "stops": 0, "cancelled_commands": 0,
                       "refused_observations": 0}
        self.epoch = 0  # bumped by a stop: a plan started before it is not published
        self.state, self.last_stats = "loading models", {}
        self.pub_plan = self.create_publisher(String, "plan", nc.PLAN_QOS)
        self.pub_status = self.create_publisher(nc.DiagnosticArray, "status", 10)
        self.cancel = self.create_client(Trigger, "cancel")
        self.create_subscription(String, "task_command", self._on_command, 10)
        self.create_subscription(Float32MultiArray, "observation", self._on_observation, 10)
        self.create_timer(1.0, self._publish_status)
        if p["command"].strip():
            self._enqueue(p["command"])
        self.worker = threading.Thread(target=self._work, name="planner", daemon=True)
        self.worker.start()

    def _on_command(self, msg: String) -> None:
        if is_stop(msg.data):
            self._stop(msg.data)
        else:
            self._enqueue(msg.data)

    def _stop(self, command: str) -> None:
        self.epoch += 1
        self.counts["stops"] += 1
        while True:
            try:
                self.commands.get_nowait()
                self.counts["cancelled_commands"] += 1
            except queue.Empty:
                break
        if self.cancel.service_is_ready():
            self.cancel.call_async(Trigger.Request())
            self.get_logger().info(f"{command.strip()!r}: plan cancelled, queued commands dropped")
        else:
            self.warn(f"{command.strip()!r}: no executive 'cancel' service to call; queued commands dropped")

    def _enqueue(self, command: str | None) -> None:
        while True:
            try:
                self.commands.put_nowait(command)
                return
            except queue.Full:
                try:
                    dropped = self.commands.get_nowait()
                except queue.Empty:
                    continue
                self.warn(f"command queue full: dropped {str(dropped)[:80]!r}", "dropped_commands")

    def _on_observation(self, msg: Float32MultiArray) -> None:
        obs = self.observation(msg)
        if obs is None:
            return
        name = scene_for(scene.present_blocks(obs))
        if name is None:
            self.warn(f"no planner scene holds exactly {scene.present_blocks(obs)}; keeping {self.scene}")
        else:
            self.scene = name

    def _work(self) -> None:
        """Load the models, then plan queued commands one at a time until ``None`` arrives."""
        p = self.p
        config = EngineConfig(mode=p["mode"], lookahead=p["k"])
        try:
            planner = Planner.load(p["target"], p["draft"], config, adapter=p["adapter"] or None)
        except (ValueError, OSError) as e:
            self.state = f"failed to load models: {e}"
            self.get_logger().error(self.state)
            return
        self.state = "ready"
        self.get_logger().info(f"planner ready: target={p['target']} mode={p['mode']}")
        with planner:
            while (command := self.commands.get()) is not None:
                self._plan(planner, command)

    def _plan(self, planner: Planner, command: str) -> None:
        epoch = self.epoch
        result = planner.plan(command, self.scene)
        if epoch != self.epoch:
            self.get_logger().info(f"{command[:120]!r}: planned after a stop; not published")
            return
        plan: dict[str, Any] = result.plan
        self.counts["plans"] += 1
        if plan.get("refusal"):
            self.counts["refusals"] += 1
        self.last_stats = {k: result.stats.get(k) for k in ("mode", "new_tokens", "tok_per_s", "acceptance_length",
                                                             "hit_rate")}
        self.pub_plan.publish(String(data=json.dumps(plan)))
        self.get_logger().info(f"{command[:120]!r} in {self.scene} -> {json.dumps(plan)} ({self.last_stats})")

    def _publish_status(self) -> None:
        level = nc.OK if self.state == "ready" and not self.last_error else nc.WARN
        if self.state.startswith("failed"):
            level = nc.ERROR
        values = {"scene": self.scene, "queued": self.commands.qsize(), **self.counts, **self.last_stats,
                  "last_error": self.last_error}
        self.publish_status(level, self.state, values)

    def close(self, interrupted: bool) -> None:
        """Stop the worker after the command it is planning (the draft process ends with it)."""
        self._enqueue(None)
        self.worker.join(timeout=10.0)


def main(args: list[str] | None = None) -> int:
    return nc.run_node(PlannerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
