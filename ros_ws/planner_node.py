"""planner_node: natural-language task commands to validated JSON plans (the LLM planner, AR/SD/SSD).

    python -m forethought.ros_ws.planner_node --ros-args --params-file stack.yaml

- ``task_command`` (std_msgs/String, ``node_common.TASK_COMMAND_QOS``: volatile, so a restarted
  planner gets no old command again): a command in plain words ("push the red block to the left"),
  or the envelope ``{"id": "...", "command": "words"}`` to choose its id; plain commands get
  ``cmd-N`` (N counts from 1 per process). "stop" and "cancel" (any case, trailing "." or "!")
  never reach the LLM: the queued commands are cancelled, a plan being generated is not
  published (cancelled), and the executive's ``cancel`` service is called, so the robot holds.
- ``task_status`` (std_msgs/String, ``node_common.TASK_STATUS_QOS``): one JSON event per
  transition of each command, ``{"id", "state", ...}``; this node publishes ``queued``,
  ``planning``, ``planned`` (with ``"plan"``), ``refused`` (with ``"reason"``: the plan's refusal,
  or a malformed envelope), ``dropped`` (queue full), ``failed`` (with ``"reason"``: the planner
  raised, or its models did not load) and ``cancelled`` (a stop); the executive publishes the rest.
  A stop command itself ends ``done``.
- ``plan`` (std_msgs/String, JSON ``{"id": ..., "steps": [...]}`` or ``{"id": ..., "steps": [],
  "refusal": ...}``: the command's id, then a plan of ``forethought.llm_planner.planning.schema``):
  one per command, in order. Its QoS keeps the last plan for late subscribers (reliable,
  transient local, depth 1).
- The scene (which blocks the plan may name) comes from the object poses
  (``input_topics.InputTopics``: ``objects/<name>/pose``, PoseStamped in ``frame``, checked as
  every node checks them): when a command is planned (and on ``status``), the ``objects`` whose
  latest pose is at most ``max_age_s`` old on the node clock form the scene; when no planner
  scene holds exactly those blocks, or none is fresh, the last scene stays (WARN). Until the
  first pose, the ``scene`` parameter. Refused inputs are counted on ``status``.
- The models load on a worker thread at start-up (SmolLM2-135M takes about 20 s on a CPU), and
  planning runs there too, so the node keeps spinning. Commands wait in a bounded queue
  (``queue_size``). Full-queue policy: the newest command wins; the OLDEST waiting command is
  dropped and acknowledged ``dropped``. A hostile or malformed command gives a refusal or a
  schema-valid plan, never a crash; an exception in the planner fails that command (ERROR on
  ``status``) and the worker goes on with the next one.
- ``command`` (parameter): plan this command once the models are loaded (for demos and tests).
- ``status`` (DiagnosticArray, 1 Hz): loading/ready, plans published, refusals, dropped commands,
  the last plan's decoding statistics (tok/s, acceptance length, cache hit rate).
"""

from __future__ import annotations

from forethought.runtime import prepare_node_process

prepare_node_process(__name__)  # first: local defaults before rclpy; a stop signal during start-up exits quietly

import itertools  # noqa: E402
import json  # noqa: E402
import queue  # noqa: E402
import threading  # noqa: E402
from typing import Any  # noqa: E402

from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from forethought.llm_planner.decoding.engine import MODES, EngineConfig  # noqa: E402
from forethought.llm_planner.planning.planner import DEFAULT_ADAPTER, DEFAULT_DRAFT, DEFAULT_TARGET, Planner  # noqa: E402
from forethought.llm_planner.planning.schema import SCENES  # noqa: E402
from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.ros_ws.input_topics import INPUT_PARAMS, InputTopics  # noqa: E402

PARAMS = {
    "target": (DEFAULT_TARGET, "target model: HF directory, .gguf file or 'smollm2' (the embedded default)"),
    "draft": (DEFAULT_DRAFT, "draft model directory (modes sd, ssd)"),
    "adapter": (DEFAULT_ADAPTER, "LoRA adapter merged into the target; empty: the base target, few-shot prompt"),
    "mode": ("auto", "decoding mode: ar, sd, ssd or auto (the fastest here, from a start-up calibration)"),
    "k": (4, "draft tokens per round (sd, ssd)"),
    "scene": ("pushblocks-3", "scene until the first object pose: pushblocks-1, -2 or -3"),
    "command": ("", "a command to plan once the models are loaded; empty: none"),
    "queue_size": (8, "commands waiting to be planned; beyond this the oldest is dropped (and acknowledged)"),
    **INPUT_PARAMS,
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
        self.commands: queue.Queue[tuple[str, str] | None] = queue.Queue(maxsize=p["queue_size"])
        self.counts = {"plans": 0, "refusals": 0, "dropped_commands": 0, "stops": 0, "cancelled_commands": 0,
                       "failed_commands": 0}
        self.ids = (f"cmd-{n}" for n in itertools.count(1))
        self.epoch = 0  # bumped by a stop: a plan started before it is not published
        self.state, self.last_stats = "loading models", {}
        self.pub_plan = self.create_publisher(String, "plan", nc.PLAN_QOS)
        self.pub_status = self.create_publisher(nc.DiagnosticArray, "status", 10)
        self.pub_task = self.create_publisher(String, "task_status", nc.TASK_STATUS_QOS)
        self.cancel = self.create_client(Trigger, "cancel")
        self.create_subscription(String, "task_command", self.guard(self._on_command), nc.TASK_COMMAND_QOS)
        self.inputs = InputTopics(self, p, on_refusal=self._on_input_refusal, wrap=self.guard)
        self.scene_note = ""  # why the scene is not the fresh objects' (WARN on status)
        self.create_timer(1.0, self.guard(self._publish_status), clock=nc.STEADY_CLOCK)  # heard while sim time stands still
        if p["command"].strip():
            self._enqueue((next(self.ids), p["command"]))
        self.worker = threading.Thread(target=self._work, name="planner", daemon=True)
        self.worker.start()

    def event(self, command_id: str, state: str, **fields: Any) -> None:
        """Publish one ``task_status`` transition of command ``command_id``."""
        self.pub_task.publish(nc.task_event(command_id, state, **fields))

    def _on_command(self, msg: String) -> None:
        try:
            cid, command = nc.parse_command(msg.data, next(self.ids))
        except nc.CommandError as e:
            self.warn(f"command refused: {e}")
            self.event(e.command_id, "refused", reason=str(e))
            return
        if is_stop(command):
            self._stop(command)
            self.event(cid, "done", command=command.strip())
        else:
            self._enqueue((cid, command))

    def _stop(self, command: str) -> None:
        self.epoch += 1
        self.counts["stops"] += 1
        while True:
            try:
                item = self.commands.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.counts["cancelled_commands"] += 1
                self.event(item[0], "cancelled", reason=f"{command.strip()!r} before it was planned")
        if self.cancel.service_is_ready():
            self.cancel.call_async(Trigger.Request())
            self.get_logger().info(f"{command.strip()!r}: plan cancelled, queued commands dropped")
        else:
            self.warn(f"{command.strip()!r}: no executive 'cancel' service to call; queued commands dropped")

    def _enqueue(self, item: tuple[str, str] | None) -> None:
        """Queue ``(id, command)`` (``None`` ends the worker); when full, drop the oldest, acknowledged."""
        if item is not None:
            self.event(item[0], "queued")  # before the worker can take it
        while True:
            try:
                self.commands.put_nowait(item)
                return
            except queue.Full:
                try:
                    dropped = self.commands.get_nowait()
                except queue.Empty:
                    continue
                if dropped is not None:
                    self.warn(f"command queue full: dropped {dropped[0]} {dropped[1][:80]!r}", "dropped_commands")
                    self.event(dropped[0], "dropped", reason=f"queue full (queue_size={self.p['queue_size']})")

    def _on_input_refusal(self, reason: str) -> None:
        self.get_logger().warning(f"input refused: {reason}", throttle_duration_sec=10.0)  # counted on status

    def fresh_objects(self) -> tuple[str, ...] | None:
        """``StampedInputs.fresh_objects`` at the node clock; ``None`` before the first pose (or,
        under ``use_sim_time``, ``/clock``)."""
        now = self.inputs.now()
        return None if now is None else self.inputs.inputs.fresh_objects(now)

    def _update_scene(self) -> str:
        """Set the scene from the fresh object poses (see the module docstring); return it."""
        fresh = self.fresh_objects()
        if fresh is None:
            return self.scene
        name = scene_for(fresh)
        if name is None:
            self.scene_note = (f"no planner scene holds exactly {list(fresh)}" if fresh else
                               "no fresh object pose") + f"; keeping {self.scene}"
        else:
            self.scene, self.scene_note = name, ""
        return self.scene

    def _work(self) -> None:
        """Load the models, then plan queued commands one at a time until ``None`` arrives."""
        p = self.p
        config = EngineConfig(mode=p["mode"], lookahead=p["k"])
        try:
            planner = Planner.load(p["target"], p["draft"], config, adapter=p["adapter"] or None)
        except Exception as e:  # noqa: BLE001  (any load failure: fail every command, never hang)
            self.state = f"failed to load models: {e}"
            self.get_logger().error(self.state)
            while (item := self.commands.get()) is not None:
                self.counts["failed_commands"] += 1
                self.event(item[0], "failed", reason=self.state[:500])
            return
        self.state = "ready"
        self.get_logger().info(f"planner ready: target={p['target']} mode={p['mode']}")
        with planner:
            while (item := self.commands.get()) is not None:
                try:
                    self._plan(planner, *item)
                except Exception as e:  # noqa: BLE001  (a planner bug fails this command, not the node)
                    self.counts["failed_commands"] += 1
                    self.event(item[0], "failed", reason=self.report_fault("planner", e))

    def _plan(self, planner: Planner, cid: str, command: str) -> None:
        epoch = self.epoch
        scene_name = self._update_scene()
        if self.scene_note:
            self.get_logger().warning(f"{cid}: {self.scene_note}")
        self.event(cid, "planning", scene=scene_name)
        result = planner.plan(command, scene_name)
        if epoch != self.epoch:
            self.get_logger().info(f"{cid} {command[:120]!r}: planned after a stop; not published")
            self.event(cid, "cancelled", reason="a stop arrived while it was being planned")
            return
        plan: dict[str, Any] = result.plan
        self.counts["plans"] += 1
        self.last_stats = {k: result.stats.get(k) for k in ("mode", "new_tokens", "tok_per_s", "acceptance_length",
                                                             "hit_rate")}
        if plan.get("refusal"):
            self.counts["refusals"] += 1
            self.event(cid, "refused", reason=plan["refusal"], **({"detail": plan["detail"]} if "detail" in plan else {}))
        else:
            self.event(cid, "planned", plan=plan)
        self.pub_plan.publish(String(data=json.dumps({"id": cid, **plan})))
        self.get_logger().info(f"{cid} {command[:120]!r} in {scene_name} -> {json.dumps(plan)} ({self.last_stats})")

    def _publish_status(self) -> None:
        self._update_scene()
        ok = self.state == "ready" and not self.last_error and not self.scene_note
        level = nc.OK if ok else nc.WARN  # a fault: ERROR
        if self.state.startswith("failed"):
            level = nc.ERROR
        message = f"{self.state}; {self.scene_note}" if self.scene_note else self.state
        values = {"scene": self.scene, "queued": self.commands.qsize(), **self.counts, **self.last_stats,
                  **self.inputs.status_values(), "last_error": self.last_error}
        self.publish_status(level, message, values)

    def close(self, interrupted: bool) -> None:
        """Stop the worker after the command it is planning (the draft process ends with it)."""
        self._enqueue(None)
        self.worker.join(timeout=10.0)


def main(args: list[str] | None = None) -> int:
    return nc.run_node(PlannerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
