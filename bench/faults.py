"""Fault benchmark of the ROS stack (issue 14): faults injected mid-task into ``forethought run stack``.

    .venv/bin/python bench/faults.py [--runs 3 | --quick] [--faults kill:planner_node,drop,...]
        [--policy expert] [--out outputs/faults]

The graph is ``forethought run stack`` itself (sim_node, world_model_node, policy_controller,
executive, planner_node; restarts by the runner's supervision, ``--max-restarts`` above the
number of kills), with loopback discovery and a random ``ROS_DOMAIN_ID`` (120-200). The
controller runs ``--policy expert`` by default: the scripted expert is fast and deterministic, so
the faults test the graph (supervision, holds, staleness, the command lifecycle), not the learned
policy. ``<out>/params.yaml`` (``--params``) sets planner_node's ``mode: ssd`` (its draft in a
process of its own, the one ``kill:draft`` kills) and ``command: ''`` (no start-up command: it
would be planned again at every restart of the planner and replace the running plan), and, for
the expert, the controller's ``model: ''`` (the expert takes none; the YAML's default is the
proposer's). Two graphs are started, one after the other:

- ``plain``: the unmodified graph, for the node faults and the command burst (each run of
  ``kill:sim_node`` after the first on a fresh one: a restarted sim_node restarts the clock at 0,
  and the other nodes refuse its inputs as out of order until it passes the old stamps);
- ``relayed``: the same graph with sim_node's ``joint_states`` and ``objects/<name>/pose`` remapped
  to ``raw/...`` (the runner's ``graph.GRAPHS`` patched with ``NodeSpec.remaps`` before it starts:
  the runner itself has no remap option), republished by the bench's relay
  (``fault_relay.BenchNode``) with the message faults.

Each run: the executive's ``cancel`` if a command of an earlier run is still running (it outlived
``--run-timeout``), sim_node's ``reset`` (a new episode), one command with its id
(``{"id": "<fault>-<k>", "command": "push the red block to the left zone"}``, or to the right zone
if that is farther from the block: a longer task) on ``task_command``, then the fault, mid-task:

| fault | when | what |
|---|---|---|
| ``kill:<node>`` | 0.5 s after the first trajectory of the command (planner_node: while it plans the command) | ``kill -9`` of the node's process |
| ``sigstop:policy_controller`` | same | SIGSTOP, 2 s, SIGCONT |
| ``kill:draft`` | while planner_node plans the command | ``kill -9`` of the ssd draft process |
| ``drop``, ``delay``, ``duplicate``, ``reorder`` | 0.5 s after the first trajectory, until the command ends | 30 % of the ticks dropped (all topics of a tick together), 100 ms added delay, every message twice, consecutive messages swapped |
| ``burst`` | 0.5 s after the first trajectory | 100 more commands (the same words) in 1 s; then one more command, timed |

After ``kill:planner_node`` a client whose command failed, or got no terminal ``task_status`` by 15 s
after the planner is back, sends it again once (id ``<id>-retry``): "completed" counts the retry;
"acked" does not.

Measured per run, from the bench's recorder (``fault_relay.BenchNode``, arrival times on the
wall clock) and the runner's output (the runner's and nodes' logs, timestamped on arrival):

- motion during the fault (from the fault to recovery; the message faults: until the command
  ends): peak pusher speed (measured ``joint_states`` velocity), the pusher's and the largest block
  displacement from where they were at the fault;
- ``moved_s``: how long anything moved (pusher speed or block speed above ``MOVING_M_S``) after the
  fault started; for the faults that stop the controller (``HOLD_FAULTS``) the goal is at most one
  control period plus sim_node's watchdog (``command_timeout_s``); ``kill:sim_node``: trajectories
  the controller sent while the robot was gone (goal: none after one control period), and the
  motion in the 3 s after the restarted sim_node's first tick (``after_restart``: the stack should
  hold, or resume the task, on the new episode's inputs);
- limits: measured joint positions and speeds, and the commanded trajectories' point-to-point
  speeds, against ``launch/stack.yaml``'s ``position_min/max`` and ``max_velocity`` (from the
  command to the end of the run);
- time to detect: the first report on ROS (a ``status`` at WARN or above from another node, a
  rising ``refused_*`` count, or a ``task_status`` event, whose text names the fault) and the first
  log line naming it (the runner's "crashed" line included);
- time to recover: the faulted node's first ``status`` after its restart (planner_node: "ready");
  the controller and sim_node: motion resumed (``resumed``: 0.5 s of pusher motion) after they are
  back, or the command's end; SIGSTOP: the same after SIGCONT; the draft: the command's plan; the
  burst: the last of the 100 terminal events;
- completed: the command ended ``done`` within ``--run-timeout`` of the fault; acked: every
  command the bench sent got exactly one terminal event by the time the bench stopped its graph
  (5 s after the graph's last run);
- the start of each command's motion (no fault yet): the distance from its first trajectory point
  to the measured pusher (``first_cmd_offset_mm``) and the peak speed in the next 0.5 s
  (``start_peak_speed``): after sim_node's ``reset`` moves the pusher, a controller that plans
  from its own stale setpoint sends it back towards the old one.

Per fault: medians over runs, the worst ``moved_s``, completion with its Wilson 95 % interval
(``forethought.models.evaluation.wilson_interval``). Output: a markdown table on stdout and in
``<out>/faults.md``, every run in ``<out>/faults.json``, the graphs' logs in ``<out>/<graph>.log``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import json
import math
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import rclpy
import yaml

from fault_relay import BenchNode
from forethought.models.evaluation import wilson_interval
from forethought.ros_ws.node_common import TERMINAL_STATES as TERMINAL
from forethought.runtime import apply_defaults
from forethought.sim import scene

NODES = ("sim_node", "world_model_node", "policy_controller", "executive", "planner_node")
MESSAGE_FAULTS = ("drop", "delay", "duplicate", "reorder")
NODE_FAULTS = ("burst", "kill:draft", "kill:planner_node", "kill:executive", "kill:world_model_node",
               "sigstop:policy_controller", "kill:policy_controller", "kill:sim_node")
"""In the order run: the ones that leave the most behind (a restarted clock) last."""
FAULTS = NODE_FAULTS + MESSAGE_FAULTS
HOLD_FAULTS = ("kill:policy_controller", "sigstop:policy_controller")
"""Faults during which the robot must hold (no controller): judged against the hold goal."""
KEYWORDS: dict[str, tuple[str, ...]] = {
    "burst": ("dropped", "queue full"),
    "kill:draft": ("draft",),
    "kill:planner_node": ("planner",),
    "kill:executive": ("executive",),
    "kill:world_model_node": ("world_model",),
    "sigstop:policy_controller": ("policy_controller", "silent", "stale", "holding"),
    "kill:policy_controller": ("policy_controller", "silent", "stale", "holding"),
    "kill:sim_node": ("sim_node", "stale", "silent", "clock", "not newer"),
    **{f: ("refus", "stale", "out_of_order", "not newer", "old on arrival", "future") for f in MESSAGE_FAULTS},
}
"""Words (lower case) whose presence in a report or log line means it is about the fault."""
MOVING_M_S = 0.01
"""Pusher or block speed (m/s) above which something counts as moving."""
COMMAND = "push the red block to the {} zone"
BURST = 100
STOP_S = 2.0
INJECT_AFTER_S = 0.5
RELAYED_LAUNCHER = """
import dataclasses, sys
from forethought.ros_ws import graph
from forethought.ros_ws.stamped import JOINT_STATES_TOPIC, pose_topic
from forethought.sim.scene import BLOCK_NAMES
raw = tuple((t, "raw/" + t) for t in [JOINT_STATES_TOPIC] + [pose_topic(b) for b in BLOCK_NAMES])
graph.GRAPHS["stack"] = tuple(dataclasses.replace(s, remaps=s.remaps + raw) if s.name == "sim_node" else s
                              for s in graph.GRAPHS["stack"])
from forethought.cli import main
raise SystemExit(main(sys.argv[1:]))
"""
"""``python -c`` body: ``forethought run`` with sim_node's robot outputs remapped to ``raw/``."""


def stack_limits() -> dict[str, Any]:
    """The packaged ``launch/stack.yaml``'s shared parameters (limits, rates, watchdog)."""
    text = (importlib.resources.files("forethought.launch") / "stack.yaml").read_text()
    return yaml.safe_load(text)["/**"]["ros__parameters"]


# ---------------------------------------------------------------------------------------- graph
class Graph:
    """``forethought run stack`` as a subprocess; its output (runner and nodes) timestamped per line."""

    def __init__(self, name: str, relayed: bool, args: argparse.Namespace, env: dict[str, str], params: Path) -> None:
        base = ["run", "stack", "--policy", args.policy, "--params", str(params),
                "--max-restarts", str(args.runs + 2), "--restart-backoff", "1"]
        cmd = [sys.executable, "-c", RELAYED_LAUNCHER, *base] if relayed else \
            [sys.executable, "-m", "forethought.cli", *base]
        self.name = name
        self.lines: list[tuple[float, str]] = []
        self.started: list[tuple[float, str, int]] = []  # (time, node, pid) from the runner's "started" lines
        self.log = open(Path(args.out) / f"{name}.log", "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        t0 = time.monotonic()
        for raw in self.proc.stdout:
            t = time.monotonic()
            line = raw.decode(errors="replace").rstrip()
            self.lines.append((t, line))
            self.log.write(f"{t - t0:9.3f} {line}\n")
            m = re.search(r"started (\w+) \(pid (\d+)\)", line)
            if m and line.startswith("[forethought run]"):
                self.started.append((t, m.group(1), int(m.group(2))))
        self.log.flush()

    def pid(self, node: str) -> int:
        """The pid of ``node``'s latest process."""
        return [pid for _, name, pid in self.started if name == node][-1]

    def started_after(self, node: str, t: float) -> float | None:
        """When ``node`` was (re)started after ``t``, if it was."""
        return next((ts for ts, name, _ in self.started if name == node and ts > t), None)

    def stop(self) -> int | None:
        """SIGINT the runner (it stops every node), then SIGKILL it after 45 s; return its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(45)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.reader.join(timeout=5)
        self.log.close()
        return self.proc.returncode


def draft_pid(planner_pid: int) -> int | None:
    """The ssd draft process: planner_node's child started by multiprocessing's spawn."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == planner_pid and b"spawn_main" in (entry / "cmdline").read_bytes():
                return int(entry.name)
    return None


# ------------------------------------------------------------------------------------ waiting
def wait_until(cond: Callable[[], Any], timeout_s: float, step_s: float = 0.05) -> Any:
    """Poll ``cond`` until it returns something truthy (returned) or ``timeout_s`` passes (``None``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(step_s)
    return None


def not_ready(rec: Any, graph: Graph) -> list[str]:
    """What keeps the graph from taking a command: nodes without a status since their latest
    start (or in the last 3 s), a planner that is not "ready", no joint_states in the last 1 s."""
    now, missing = time.monotonic(), []
    last: dict[str, tuple[float, str]] = {}
    for t, name, _, message, _ in rec.status[-200:]:
        last[name] = (t, message)
    for node in NODES:
        starts = [t for t, name, _ in graph.started if name == node]
        t, message = last.get(node, (-math.inf, ""))
        if not starts or t < starts[-1] or now - t > 3.0:
            missing.append(f"{node} silent")
        elif node == "planner_node" and not message.startswith("ready"):
            missing.append(f"planner_node {message!r}")
    if not rec.joint_states or now - rec.joint_states[-1][0] > 1.0:
        missing.append("no joint_states")
    return missing


def events(rec: Any, cid: str, since: float = -math.inf) -> list[tuple[float, dict[str, Any]]]:
    return [(t, e) for t, e in list(rec.task_status) if e.get("id") == cid and t >= since]


def terminal(rec: Any, cid: str, since: float = -math.inf) -> float | None:
    """Arrival time of ``cid``'s first terminal ``task_status`` event after ``since``."""
    return next((t for t, e in events(rec, cid, since) if e.get("state") in TERMINAL), None)


def first_state(rec: Any, cid: str, states: tuple[str, ...], since: float = -math.inf) -> float | None:
    return next((t for t, e in events(rec, cid, since) if e.get("state") in states), None)


def first_trajectory(rec: Any, since: float) -> float | None:
    return next((t for t, _, _ in list(rec.trajectories) if t > since), None)


# ----------------------------------------------------------------------------------- analysis
def motion(rec: Any, t0: float, t1: float) -> dict[str, float]:
    """Motion in the messages that arrived in ``(t0, t1)``: peak pusher speed (m/s), pusher and
    largest block displacement (mm) from their positions at ``t0``, and ``moved_s``: how long
    anything kept moving after ``t0``, on the robot's clock (the stamps: delivery jitter does not
    count), from the stamp of the last ``joint_states`` that arrived by ``t0``."""
    js = list(rec.joint_states)
    before = [j for j in js if j[0] <= t0]
    window = [j for j in js if t0 < j[0] < t1]
    out = {"peak_speed": 0.0, "pusher_disp_mm": 0.0, "block_disp_mm": 0.0, "moved_s": 0.0}
    if not window:
        return out
    stamp0, p0 = (before[-1] if before else window[0])[1:3]
    out["peak_speed"] = max(float(np.linalg.norm(v)) for _, _, _, v in window)
    out["pusher_disp_mm"] = 1e3 * max(float(np.linalg.norm(p - p0)) for _, _, p, _ in window)
    moving = [stamp for _, stamp, _, v in window if np.linalg.norm(v) > MOVING_M_S]
    poses = list(rec.poses)
    for name in {p[1] for p in poses}:
        series = [p for p in poses if p[1] == name]
        start = [p for p in series if p[0] <= t0]
        inside = [p for p in series if t0 < p[0] < t1]
        if not inside:
            continue
        x0, y0 = (start[-1] if start else inside[0])[3:5]
        out["block_disp_mm"] = max(out["block_disp_mm"],
                                   1e3 * max(math.hypot(x - x0, y - y0) for _, _, _, x, y in inside))
        prev = start[-1] if start else None
        for p in inside:
            speed = math.hypot(p[3] - prev[3], p[4] - prev[4]) / (p[2] - prev[2]) if prev and p[2] > prev[2] else 0.0
            if speed > MOVING_M_S:
                moving.append(p[2])
            prev = p
    out["moved_s"] = float(max(0.0, max(moving, default=stamp0) - stamp0))
    return out


def limit_check(rec: Any, t0: float, t1: float, limits: dict[str, Any]) -> dict[str, Any]:
    """Measured joint positions and speeds, and commanded point-to-point speeds, in ``[t0, t1]``
    against the YAML's limits (``exceeded``: any of them beyond, with a 1e-6 tolerance)."""
    lo, hi = np.array(limits["position_min"]), np.array(limits["position_max"])
    vmax = np.array(limits["max_velocity"])
    js = [j for j in list(rec.joint_states) if t0 <= j[0] <= t1]
    cmd_speed = np.zeros(2)
    for t, pos, times in list(rec.trajectories):
        if t0 <= t <= t1 and len(times) > 1:
            cmd_speed = np.maximum(cmd_speed, (np.abs(np.diff(pos, axis=0)) / np.diff(times)[:, None]).max(axis=0))
    out: dict[str, Any] = {"max_joint_speed": 0.0, "max_cmd_speed": float(cmd_speed.max()), "position_ok": True}
    if js:
        pos = np.array([j[2] for j in js])
        vel = np.abs(np.array([j[3] for j in js]))
        out["max_joint_speed"] = float(vel.max())
        out["position_ok"] = bool(np.all(pos >= lo - 1e-6) and np.all(pos <= hi + 1e-6))
        out["speed_ok"] = bool(np.all(vel <= vmax + 1e-6))
    out["cmd_ok"] = bool(np.all(cmd_speed <= vmax + 1e-6))
    out["exceeded"] = not (out["position_ok"] and out.get("speed_ok", True) and out["cmd_ok"])
    return out


def mentions(text: str, fault: str) -> bool:
    text = text.lower()
    return any(k in text for k in KEYWORDS[fault])


def detection(rec: Any, graph: Graph, fault: str, t0: float) -> dict[str, Any]:
    """First report of the fault on ROS (status of another node at WARN+ or a rising ``refused_*``
    count, or a task_status event, naming it) and in the logs, as seconds after ``t0``."""
    faulted = fault.split(":")[1] if ":" in fault else ""
    ros: list[tuple[float, str]] = []
    previous: dict[str, dict[str, str]] = {}
    for t, name, level, message, values in list(rec.status):
        if t >= t0 and name != faulted:
            text = " ".join([message, values.get("last_error", ""), values.get("fault", ""),
                             values.get("last_input_refusal", ""), values.get("failure", "")])
            if level >= 1 and mentions(text, fault):
                ros.append((t, f"{name} status: {message[:120]}"))
            old = previous.get(name, {})
            rising = [k for k, v in values.items() if k.startswith("refused_") and k in old
                      and v.isdigit() and old[k].isdigit() and int(v) > int(old[k])]
            if rising and fault in MESSAGE_FAULTS:
                ros.append((t, f"{name} status: {', '.join(f'{k}={values[k]}' for k in rising)}"))
        previous[name] = values
    for t, e in list(rec.task_status):
        if t >= t0 and e.get("state") in ("failed", "cancelled", "dropped") and mentions(json.dumps(e), fault):
            ros.append((t, f"task_status {e.get('id')} {e.get('state')}: {str(e.get('reason', ''))[:120]}"))
    logs = [(t, line[:160]) for t, line in list(graph.lines)
            if t >= t0 and mentions(line, fault) and " started " not in line]
    ros.sort()
    logs.sort()
    return {"detect_s": ros[0][0] - t0 if ros else None, "detect_by": ros[0][1] if ros else "",
            "log_detect_s": logs[0][0] - t0 if logs else None, "log_by": logs[0][1] if logs else ""}


def resumed(rec: Any, since: float, samples: int = 5) -> float | None:
    """Arrival time of the first of ``samples`` consecutive ``joint_states`` after ``since`` with the
    pusher moving (speed above ``MOVING_M_S``): motion resumed, not a stop trajectory's last creep."""
    run: list[float] = []
    for t, _, _, v in list(rec.joint_states):
        if t <= since:
            continue
        run = run + [t] if np.linalg.norm(v) > MOVING_M_S else []
        if len(run) >= samples:
            return run[0]
    return None


def earliest(*times: float | None) -> float | None:
    known = [t for t in times if t is not None]
    return min(known) if known else None


def recovery(rec: Any, graph: Graph, fault: str, t0: float, marks: dict[str, float], cid: str) -> float | None:
    """When the graph recovered from ``fault`` (module docstring), as an absolute time; ``None``: not."""
    done = terminal(rec, cid, t0)
    if fault in MESSAGE_FAULTS:
        return None
    if fault == "burst":
        return marks.get("burst_terminal")
    if fault == "kill:draft":
        return first_state(rec, cid, ("planned", "refused", "failed"), t0)
    if fault == "sigstop:policy_controller":
        return earliest(resumed(rec, marks["cont"]), done)
    node = fault.split(":")[1]
    started = graph.started_after(node, t0)
    if started is None:
        return None
    if node == "policy_controller":
        return earliest(resumed(rec, started), done)
    if node == "sim_node":
        sim_back = next((j[0] for j in list(rec.joint_states) if j[0] > started), None)
        if sim_back is None:
            return None
        marks["sim_back"] = sim_back
        return earliest(resumed(rec, sim_back + 0.15), done)  # after the new episode's first tick
    ready = ("ready",) if node == "planner_node" else ("",)
    return next((t for t, name, _, message, _ in list(rec.status)
                 if name == node and t > started and message.startswith(ready)), None)


def restart_position(p: dict[str, Any]) -> np.ndarray:
    """Where a restarted sim_node's pusher starts: episode 0 of the YAML's seed and task."""
    import gymnasium as gym

    env = gym.make(p["env_id"], n_blocks=p["n_blocks"], frame_skip=1)
    try:
        obs, _ = env.reset(seed=p["seed"], options={"task": json.loads(p["task"])})
    finally:
        env.close()
    return obs[scene.PUSHER_POS].astype(float)


def start_of_motion(rec: Any, t_cmd: float) -> dict[str, float]:
    """The command's first trajectory: how far its first point lies from the measured pusher
    (``first_cmd_offset_mm``; large when the controller plans from a stale setpoint) and the peak
    pusher speed in the 0.5 s after it (``start_peak_speed``)."""
    first = next(((t, pos) for t, pos, _ in list(rec.trajectories) if t > t_cmd and len(pos)), None)
    js = list(rec.joint_states)
    before = [j for j in js if j[0] <= first[0]] if first else []
    if first is None or not before:
        return {}
    after = [float(np.linalg.norm(v)) for t, _, _, v in js if first[0] < t <= first[0] + 0.5]
    return {"first_cmd_offset_mm": 1e3 * float(np.linalg.norm(first[1][0] - before[-1][2])),
            "start_peak_speed": max(after, default=0.0)}


# --------------------------------------------------------------------------------------- runs
def choose_command(rec: Any, since: float) -> str:
    """Push the red block to the left or the right zone, whichever is farther: a longer task, so
    the fault finds it running."""
    red = wait_until(lambda: next((p for p in reversed(list(rec.poses)) if p[1] == "red_block" and p[0] > since), None),
                     5.0)
    xy = np.zeros(2) if red is None else np.array(red[3:5])
    return COMMAND.format(max(("left", "right"), key=lambda zone: scene.REGIONS[zone].distance(xy)))


def run_once(fault: str, k: int, rec: Any, graph: Graph, limits: dict[str, Any], sent: set[str],
             run_timeout: float) -> dict[str, Any]:
    """One run of ``fault`` (see the module docstring); the row of measurements."""
    cid = f"{fault.replace(':', '-')}-{k}"
    row: dict[str, Any] = {"fault": fault, "run": k, "id": cid}
    if not wait_until(lambda: not not_ready(rec, graph), 180.0, 0.2):
        row["error"] = f"graph not ready: {not_ready(rec, graph)}"
        return row
    running = [c for c in sent if first_state(rec, c, ("executing",)) and terminal(rec, c) is None]
    if running:  # a command the last run left running (it outlived --run-timeout) must not act in this one
        rec.cancel()
        wait_until(lambda: all(terminal(rec, c) for c in running), 10.0)
        row["cancelled_before"] = running
    if not rec.reset():
        row["error"] = "sim_node reset failed"
        return row
    time.sleep(0.3)  # poses published before the reset may still be on their way
    text = choose_command(rec, time.monotonic())
    t_cmd = rec.send_command(cid, text)
    sent.add(cid)
    row["command"] = text
    marks: dict[str, float] = {}
    planning = wait_until(lambda: first_state(rec, cid, ("planning",), t_cmd), 60.0)
    if fault in ("kill:planner_node", "kill:draft"):
        if planning is None:
            row["error"] = "the command was never planned"
            return row
        t_at = planning + (0.3 if fault == "kill:draft" else 0.0)
    else:
        executing = wait_until(lambda: first_state(rec, cid, ("executing",), t_cmd), 60.0)
        moving = executing and wait_until(lambda: first_trajectory(rec, executing), 10.0)
        if not moving:
            row["error"] = f"no motion for the command: {[e for _, e in events(rec, cid)]}"
            return row
        t_at = moving + INJECT_AFTER_S
    time.sleep(max(0.0, t_at - time.monotonic()))
    before = ("planned", "refused", *TERMINAL) if fault in ("kill:planner_node", "kill:draft") else TERMINAL
    row["mid_task"] = first_state(rec, cid, before) is None  # the planner faults: still planning
    t0 = time.monotonic()
    row.update(inject(fault, cid, rec, graph, marks, sent, run_timeout))
    t0 = marks.get("t0", t0)
    row["t_command"], row["t_fault"] = t_cmd, t0  # time.monotonic(): the traces' clock
    wait_until(lambda: terminal(rec, cid, t_cmd), run_timeout)
    if fault == "kill:planner_node" and first_state(rec, cid, ("done",)) is None:  # lost or failed: resend once
        back = wait_until(lambda: recovery(rec, graph, fault, t0, marks, cid), 150.0, 0.2)
        if back and terminal(rec, cid) is None:
            wait_until(lambda: terminal(rec, cid), 15.0)  # a late acknowledgement first
        if back and first_state(rec, cid, ("done",)) is None:
            retry = f"{cid}-retry"
            sent.add(retry)
            marks["retry"] = rec.send_command(retry, text)
            row["retried"] = True
            wait_until(lambda: terminal(rec, retry), run_timeout + 60.0)  # it is planned first
    if "pass" in marks:  # a message fault ends with the command
        rec.set_mode("pass")
        marks["pass"] = time.monotonic()
    wait_until(lambda: not not_ready(rec, graph), 150.0, 0.2)
    t_rec = recovery(rec, graph, fault, t0, marks, cid)
    row["recover_s"] = None if t_rec is None else t_rec - t0
    t_end = {"sigstop:policy_controller": marks.get("cont"),
             "kill:sim_node": graph.started_after("sim_node", t0)}.get(fault)  # then a new episode
    if fault in MESSAGE_FAULTS:
        t_end = marks["pass"]
    t_end = t_end or t_rec or t0 + 10.0
    row["window_s"] = t_end - t0
    row.update(motion(rec, t0, t_end))
    row.update(limit_check(rec, t_cmd, time.monotonic(), limits))
    row.update(start_of_motion(rec, t_cmd))
    planned = first_state(rec, cid, ("planned",), t_cmd)
    row["plan_latency_s"] = None if planned is None else planned - t_cmd
    row.update(detection(rec, graph, fault, t0))
    if fault == "kill:sim_node":
        period = 1.0 / float(limits["control_rate_hz"])
        back = marks.get("sim_back")
        row["cmds_while_robot_gone"] = sum(1 for t, _, _ in list(rec.trajectories)
                                           if t0 + period < t < (back or time.monotonic()))
        if back is not None:  # the new episode (its first ticks may reach the recorder late: discovery)
            start = restart_position(limits)
            row["after_restart_moved_mm"] = 1e3 * max(float(np.linalg.norm(p - start)) for t, _, p, _ in
                                                      list(rec.joint_states) if back <= t <= back + 5.0)
    if fault == "sigstop:policy_controller":
        row["cmds_within_0.1s_of_resume"] = sum(1 for t, _, _ in list(rec.trajectories)
                                                if marks["cont"] <= t <= marks["cont"] + 0.1)
    outcome = [e.get("state") for _, e in events(rec, cid) if e.get("state") in TERMINAL]
    retry_outcome = [e.get("state") for _, e in events(rec, f"{cid}-retry") if e.get("state") in TERMINAL]
    row["outcome"] = outcome[0] if outcome else "none"
    row["completed"] = "done" in outcome or "done" in retry_outcome
    if fault == "burst":
        last = marks.get("burst_last_id")
        row["completed"] = bool(last) and "done" in [e.get("state") for _, e in events(rec, last)]
    return row


def inject(fault: str, cid: str, rec: Any, graph: Graph, marks: dict[str, float], sent: set[str],
           run_timeout: float) -> dict[str, Any]:
    """Inject ``fault`` now; ``marks`` gets its times (``t0``, ``cont``, ``pass``, ...)."""
    out: dict[str, Any] = {}
    if fault.startswith("kill:"):
        node = fault.split(":")[1]
        pid = draft_pid(graph.pid("planner_node")) if node == "draft" else graph.pid(node)
        if pid is None:
            out["error"] = "no draft process (is planner_node's mode ssd?)"
            return out
        marks["t0"] = time.monotonic()
        os.kill(pid, signal.SIGKILL)
    elif fault.startswith("sigstop:"):
        pid = graph.pid(fault.split(":")[1])
        marks["t0"] = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(STOP_S)
        finally:
            os.kill(pid, signal.SIGCONT)
            marks["cont"] = time.monotonic()
    elif fault in MESSAGE_FAULTS:
        marks["t0"] = time.monotonic()
        rec.set_mode(fault)
        marks["pass"] = 0.0  # switched back when the command ends
    elif fault == "burst":
        text = COMMAND.format("left")
        ids = [f"{cid}-b{i:03d}" for i in range(BURST)]
        marks["t0"] = time.monotonic()
        for i, bid in enumerate(ids):
            sent.add(bid)
            rec.send_command(bid, text)
            time.sleep(max(0.0, marks["t0"] + (i + 1) / BURST - time.monotonic()))
        marks["burst_last_id"] = ids[-1]
        everything = [cid, *ids]
        def all_ended() -> float | None:  # when the last of them got its terminal event
            ends = [terminal(rec, i) for i in everything]
            return None if None in ends else max(ends)

        t_all = wait_until(all_ended, max(run_timeout, 150.0), 0.2)
        if t_all:
            marks["burst_terminal"] = t_all
        nxt = f"{cid}-next"
        sent.add(nxt)
        t_next = rec.send_command(nxt, text)
        planned = wait_until(lambda: first_state(rec, nxt, ("planned", "refused", "failed"), t_next), 60.0)
        out["next_command_latency_s"] = None if planned is None else planned - t_next
        wait_until(lambda: terminal(rec, nxt), run_timeout)
        out["burst_terminal_events"] = sum(1 for i in ids for _, e in events(rec, i) if e.get("state") in TERMINAL)
        out["burst_states"] = dict(sorted({s: sum(1 for i in ids for _, e in events(rec, i) if e.get("state") == s)
                                           for s in TERMINAL}.items()))
    else:
        raise ValueError(f"unknown fault {fault!r}")
    return out


def schedule(faults: list[str], runs: int) -> list[tuple[str, int]]:
    """``(fault, run)`` in order: round-robin over the faults (a restarted planner brings a new draft
    process for the next ``kill:draft``), ``kill:sim_node``'s runs last, each on a fresh graph (a
    restarted sim_node restarts the clock, and the graph refuses its inputs until it passes the old stamps)."""
    order = [(f, k) for k in range(runs) for f in faults if f != "kill:sim_node"]
    return order + [("kill:sim_node", k) for k in range(runs) if "kill:sim_node" in faults]


# ------------------------------------------------------------------------------------ summary
def median(xs: list[Any]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(rows: list[dict[str, Any]], acks: dict[str, int], hold_goal_s: float) -> list[dict[str, Any]]:
    """One line per fault: medians over its runs, worst hold, completion with its Wilson interval."""
    out = []
    for fault in dict.fromkeys(r["fault"] for r in rows):
        runs = [r for r in rows if r["fault"] == fault and "error" not in r]
        errors = [r["error"] for r in rows if r["fault"] == fault and "error" in r]
        n, k = len(runs), sum(bool(r.get("completed")) for r in runs)
        ids = [i for i in acks if i.startswith(f"{fault.replace(':', '-')}-")]
        line: dict[str, Any] = {"fault": fault, "runs": n, "errors": errors,
                                "mid_task": sum(bool(r.get("mid_task")) for r in runs),
                                "completed": k, "completion_ci": wilson_interval(k, n) if n else None,
                                "commands": len(ids), "acked_once": sum(acks[i] == 1 for i in ids)}
        for key in ("peak_speed", "pusher_disp_mm", "block_disp_mm", "detect_s", "log_detect_s", "recover_s",
                    "plan_latency_s", "max_joint_speed", "max_cmd_speed", "first_cmd_offset_mm", "start_peak_speed"):
            line[key] = median([r.get(key) for r in runs])
        line["moved_s_max"] = max((r["moved_s"] for r in runs), default=None)
        line["notes"] = notes(fault, runs)
        line["hold_ok"] = all(r["moved_s"] <= hold_goal_s for r in runs) if fault in HOLD_FAULTS and runs else None
        line["limits_ok"] = not any(r.get("exceeded") for r in runs) if runs else None
        line["detect_by"] = next((r["detect_by"] for r in runs if r.get("detect_by")), "")
        out.append(line)
    return out


def notes(fault: str, runs: list[dict[str, Any]]) -> str:
    """The fault's own measurements, over its runs, in words."""
    def each(key: str) -> str:
        return "/".join(fmt(r.get(key)) for r in runs)

    out = []
    if fault == "kill:sim_node":
        out.append(f"trajectories sent while sim_node was gone: {each('cmds_while_robot_gone')}; pusher moved "
                   f"{each('after_restart_moved_mm')} mm from the restarted episode's start in its first 5 s")
    if fault == "sigstop:policy_controller":
        out.append(f"trajectories within 0.1 s of SIGCONT: {each('cmds_within_0.1s_of_resume')}")
    if fault == "burst":
        out.append(f"terminal events of the 100: {each('burst_terminal_events')}; "
                   f"next command planned in {each('next_command_latency_s')} s")
    if fault == "kill:planner_node" and any(r.get("retried") for r in runs):
        out.append(f"command lost, resent by the client in {sum(bool(r.get('retried')) for r in runs)} runs")
    if runs and all(r.get("detect_s") is None for r in runs) and any(r.get("log_detect_s") is not None for r in runs):
        out.append("reported in the logs only")
    out.append(f"plan latency {each('plan_latency_s')} s")
    return "; ".join(out)


def fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "**no**"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def markdown(summary: list[dict[str, Any]], hold_goal_s: float) -> str:
    head = ("| fault | runs (mid-task) | peak speed m/s | pusher disp mm | block disp mm | moved after fault s "
            f"(worst; hold goal ≤ {hold_goal_s:g}) | limits ok | detect s (ROS) | detect s (log) | recover s | "
            "completed (Wilson 95%) | commands acked once | notes |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for s in summary:
        ci = s["completion_ci"]
        done = f"{s['completed']}/{s['runs']}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
        hold = "–" if s["fault"] not in (*HOLD_FAULTS, "kill:sim_node") else \
            fmt(s["moved_s_max"]) + ("" if s["hold_ok"] is None else (" ✓" if s["hold_ok"] else " **✗**"))
        lines.append(f"| `{s['fault']}` | {s['runs']} ({s['mid_task']}) | {fmt(s['peak_speed'])} | "
                     f"{fmt(s['pusher_disp_mm'], 0)} | {fmt(s['block_disp_mm'], 0)} | {hold} | {fmt(s['limits_ok'])} | "
                     f"{fmt(s['detect_s'])} | {fmt(s['log_detect_s'])} | {fmt(s['recover_s'])} | {done} | "
                     f"{s['acked_once']}/{s['commands']} | {s['notes']} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per fault (default 3)")
    parser.add_argument("--quick", action="store_true", help="one run per fault")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated subset of {', '.join(FAULTS)}")
    parser.add_argument("--policy", default="expert", help="controller policy (default expert: see the docstring)")
    parser.add_argument("--planner-mode", default="ssd", help="planner_node's decoding mode (ssd: has a draft process)")
    parser.add_argument("--run-timeout", type=float, default=20.0, help="wall seconds a command may take after the "
                        "fault (a normal push takes under 10)")
    parser.add_argument("--budget", type=float, default=1800.0, help="start no run after this many wall seconds")
    parser.add_argument("--out", default="outputs/faults", help="output directory")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 1
    args.faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = [f for f in args.faults if f not in FAULTS]
    if unknown or not 1 <= args.runs <= 20:
        parser.error(f"unknown faults {unknown}" if unknown else "--runs must be in [1, 20]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    domain = random.randint(120, 200)
    env = apply_defaults(dict(os.environ))
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    env.pop("ROS_LOCALHOST_ONLY", None)
    os.environ.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    limits = stack_limits()
    hold_goal_s = 1.0 / float(limits["control_rate_hz"]) + float(limits["command_timeout_s"])
    params = out / "params.yaml"
    params.write_text(f"planner_node:\n  ros__parameters:\n    mode: {args.planner_mode}\n    command: ''\n"
                      + ("policy_controller:\n  ros__parameters:\n    model: ''\n" if args.policy == "expert" else ""))
    rclpy.init()
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    acks: dict[str, int] = {}
    graphs: dict[str, dict[str, Any]] = {}  # each graph started: seconds until ready, the runner's exit code
    for kind, faults in (("plain", [f for f in args.faults if f not in MESSAGE_FAULTS]),
                         ("relayed", [f for f in args.faults if f in MESSAGE_FAULTS])):
        if not faults:
            continue
        rec = BenchNode(robot_prefix="raw/" if kind == "relayed" else "", relay=kind == "relayed", seed=domain).start()
        sent: set[str] = set()

        def start_graph() -> Graph:
            name = kind if kind not in graphs else f"{kind}-{sum(g.startswith(kind) for g in graphs) + 1}"
            t = time.monotonic()
            graph = Graph(name, kind == "relayed", args, env, params)
            ready = wait_until(lambda: not not_ready(rec, graph), 300.0, 0.5)
            graphs[name] = {"ready_s": None if ready is None else time.monotonic() - t}
            print(f"[faults] graph {name} ready after {graphs[name]['ready_s']} s: {not_ready(rec, graph)}", flush=True)
            return graph

        graph = start_graph()
        try:
            for fault, k in schedule(faults, args.runs):
                if time.monotonic() - started > args.budget:
                    rows.append({"fault": fault, "run": k, "error": f"skipped: --budget {args.budget:g} s spent"})
                    continue
                if fault == "kill:sim_node" and k > 0:  # a fresh graph: the last kill restarted the clock
                    graphs[graph.name]["exit_code"] = graph.stop()
                    graph = start_graph()
                try:
                    row = run_once(fault, k, rec, graph, limits, sent, args.run_timeout)
                except Exception as e:  # noqa: BLE001  (a bench bug in one run: keep the others)
                    row = {"fault": fault, "run": k, "error": f"{type(e).__name__}: {e}"}
                row["graph"] = kind
                rows.append(row)
                print(f"[faults] {json.dumps(row, default=str)}", flush=True)
            time.sleep(5.0)  # late terminal events
            for cid in sent:
                acks[cid] = sum(1 for _, e in events(rec, cid) if e.get("state") in TERMINAL)
            rec.save(out / f"{kind}_trace.npz")
        finally:
            graphs.setdefault(graph.name, {})["exit_code"] = graph.stop()
            rec.close()
    rclpy.try_shutdown()
    summary = summarize(rows, acks, hold_goal_s)
    table = markdown(summary, hold_goal_s)
    unacked = sorted(i for i, n in acks.items() if n != 1)
    result = {"args": {k: v for k, v in vars(args).items()}, "domain": domain, "graphs": graphs,
              "hold_goal_s": hold_goal_s, "wall_s": time.monotonic() - started, "summary": summary, "runs": rows,
              "terminal_events_per_command": acks, "not_acked_exactly_once": unacked,
              "machine": {"cpus": os.cpu_count(), "load": os.getloadavg()}}
    (out / "faults.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "faults.md").write_text(table + "\n")
    print(table)
    print(f"\n{len(unacked)} commands without exactly one terminal event: {unacked[:20]}")
    print(f"wall {result['wall_s']:.0f} s; graphs {graphs}; json {out / 'faults.json'}")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
