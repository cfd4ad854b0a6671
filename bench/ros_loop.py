"""ROS control-loop benchmark (issue 13): sim_node + policy_controller over ROS, on sim time.

    .venv/bin/python bench/ros_loop.py [--runs 3] [--seconds 20] [--policy dmpc] [--execution async]
        [--threads 1] [--backend torch] [--action-steps 0] [--temporal-ensemble-k 0] [--json]

Per run, two fresh processes on loopback (a random ``ROS_DOMAIN_ID`` in 201-230): ``sim_node``
(``launch/sim.yaml``, real-time factor 1, one block, seed = the run's index, the task pushing the
red block to the left) publishing ``/clock``, and ``policy_controller`` with ``use_sim_time`` and
the controller of ``launch/stack.yaml``: D-MPC (ssr, the shipped proposer and dynamics, 5 DDIM
steps, ``--threads`` torch threads, ``--backend``, ``--action-steps``), ``--execution`` async (planning on its worker thread, the
control timer at 10 Hz). After the first replan the bench listens to both ``status`` topics for
``--seconds`` wall seconds; whenever the push succeeds it sends the next target region on ``goal``
(``TARGETS``), so the controller keeps planning. Reported per run:

- loop overhead p50 / p99 (ms): the controller's ``overhead_ms_p50`` / ``_p99`` at the end (every
  trajectory of the run): the wall time from handing a plan to the worker thread to the
  trajectory's publication, less the policy's compute (thread hand-offs, executor wake-up, the
  safety gate; loopback DDS transport excluded; ``--execution sync``: from the observation's delivery);
- observation wait p50 / p99 (ms): ``obs_wait_ms_p50`` / ``_p99``: how long a plan's observation
  had been delivered when the plan started (the worker was busy with the previous plan);
- achieved control and replan rates (Hz of sim time): the mean of the controller's per-second
  windows while it ran (``control_rate_hz``, ``replan_rate_hz``);
- missed ticks: the controller's ``missed_ticks`` (late + starved, ``chunk_execution.TickMonitor``)
  at the end, and the ticks counted (control rate x run time);
- replan compute (ms): the median of the controller's per-window ``replan_ms_median``;
- real-time factor: the mean of sim_node's ``real_time_factor_measured``.

The summary is the median over runs (missed ticks: the sum). Output: a markdown table on stdout,
``--json`` one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from forethought.runtime import apply_defaults, pretrained_dir

ROOT = Path(__file__).resolve().parents[1]
TASK = '{"skill": "push", "object": "red_block", "target": "left"}'
TARGETS = ("left", "top_right", "bottom_left", "right", "top_left", "bottom_right")
"""The run's first goal is TASK; each success sends the next target (on ``goal``, to both nodes)."""


def node_cmd(module: str, name: str, **params: Any) -> list[str]:
    from forethought.ros_ws.runner import yaml_value

    cmd = [sys.executable, "-m", module, "--ros-args", "-r", f"__node:={name}",
           "--params-file", str(ROOT / "launch" / "sim.yaml")]
    for k, v in params.items():
        cmd += ["-p", f"{k}:={yaml_value(v)}"]
    return cmd


class Listener:
    """An in-bench rclpy node keeping every ``status`` of the graph: ``{node: [(wall s, message, values)]}``."""

    def __init__(self, domain: int) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("ros_loop_bench", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        from std_msgs.msg import String

        self.status: dict[str, list[tuple[float, str, dict[str, str]]]] = {}
        self.node.create_subscription(DiagnosticArray, "status", self._keep, 50)
        self.goal = self.node.create_publisher(String, "goal", 10)
        self.String = String

    def _keep(self, msg: Any) -> None:
        for st in msg.status:
            self.status.setdefault(st.name, []).append((time.time(), st.message, {kv.key: kv.value for kv in st.values}))

    def latest(self, node: str) -> dict[str, str]:
        return self.status.get(node, [(0.0, "", {})])[-1][2]

    def spin_until(self, pred: Any, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return bool(pred())

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_once(k: int, args: argparse.Namespace, env: dict[str, str], listener: Listener, logs: Path) -> dict[str, Any]:
    listener.status.clear()
    controller = {"policy": args.policy, "execution": args.execution, "threads": args.threads, "task": TASK,
                  "use_sim_time": True, "objects": ["red_block"], "temporal_ensemble_k": args.temporal_ensemble_k}
    if args.policy in ("dmpc", "proposer"):
        controller.update(model=str(pretrained_dir() / "proposer-pushblocks"), num_inference_steps=5)
    if args.policy == "dmpc":
        controller.update(planner="ssr", dynamics=str(pretrained_dir() / "dynamics-pushblocks"), backend=args.backend,
                          action_steps=args.action_steps)
    procs = []
    for module, name, params in (
            ("forethought.ros_ws.sim_node", "sim_node", {"real_time_factor": 1.0, "n_blocks": 1, "seed": k,
                                                         "task": TASK}),
            ("forethought.ros_ws.policy_controller", "policy_controller", controller)):
        with open(logs / f"{name}-{k}.log", "w") as f:
            procs.append(subprocess.Popen(node_cmd(module, name, **params), env=env, stdout=f,
                                          stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT))
    try:
        ctrl = lambda: listener.latest("/policy_controller")  # noqa: E731
        if not listener.spin_until(lambda: "replan_ms_median" in ctrl() or any(p.poll() is not None for p in procs), 120):
            raise RuntimeError(f"run {k}: no replan within 120 s (logs in {logs})")
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"run {k}: a node exited (logs in {logs})")
        t0 = sent = time.time()
        goals = 0
        while time.time() - t0 < args.seconds:  # a new target whenever the push succeeds: the loop keeps planning
            listener.spin_until(lambda: time.time() - t0 >= args.seconds, 0.2)
            if listener.latest("/sim_node").get("is_success") == "true" and time.time() - sent > 1.5:
                goals += 1
                target = TARGETS[goals % len(TARGETS)]
                listener.goal.publish(listener.String(data=json.dumps({**json.loads(TASK), "target": target})))
                sent = time.time()
        wall = time.time() - t0
        final = dict(ctrl())
        windows = [v for t, msg, v in listener.status["/policy_controller"] if t >= t0 and msg == "running"
                   and "control_rate_hz" in v]
        rtf = [float(v["real_time_factor_measured"]) for t, _, v in listener.status.get("/sim_node", [])
               if t >= t0 and "real_time_factor_measured" in v]
    finally:
        for p in reversed(procs):
            stop(p)
    mean = lambda xs: statistics.fmean(xs) if xs else float("nan")  # noqa: E731
    control_hz = mean([float(v["control_rate_hz"]) for v in windows])
    return {"run": k, "wall_s": round(wall, 2), "windows": len(windows), "goals": goals + 1,
            "overhead_ms_p50": float(final.get("overhead_ms_p50", "nan")),
            "overhead_ms_p99": float(final.get("overhead_ms_p99", "nan")),
            "obs_wait_ms_p50": float(final.get("obs_wait_ms_p50", "nan")),
            "obs_wait_ms_p99": float(final.get("obs_wait_ms_p99", "nan")),
            "control_rate_hz": control_hz, "replan_rate_hz": mean([float(v["replan_rate_hz"]) for v in windows]),
            "replan_ms_median": statistics.median([float(v["replan_ms_median"]) for v in windows
                                                   if "replan_ms_median" in v] or [float("nan")]),
            "missed_ticks": int(final["missed_ticks"]), "late_ticks": int(final["late_ticks"]),
            "starved_ticks": int(final["starved_ticks"]), "ticks": round(control_hz * wall * mean(rtf)) if rtf else None,
            "real_time_factor": mean(rtf), "lead_steps": int(final["lead_steps"]),
            "late_chunks": int(final["late_chunks"]), "commands": int(final["commands"])}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    med = lambda key: statistics.median(r[key] for r in rows)  # noqa: E731
    return {"runs": len(rows), **{k: med(k) for k in ("overhead_ms_p50", "overhead_ms_p99", "obs_wait_ms_p50",
                                                       "obs_wait_ms_p99", "control_rate_hz",
                                                       "replan_rate_hz", "replan_ms_median", "real_time_factor")},
            "missed_ticks": sum(r["missed_ticks"] for r in rows), "ticks": sum(r["ticks"] or 0 for r in rows)}


def markdown(s: dict[str, Any], args: argparse.Namespace) -> str:
    return "\n".join([
        "| policy | execution | backend, chunk | runs | overhead p50 / p99 (ms) | observation wait p50 / p99 (ms) | control rate (Hz) | "
        "replan rate (Hz) | replan compute (ms) | missed ticks / ticks | real-time factor |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {args.policy} | {args.execution} | {args.backend}, {args.action_steps or 'default'} | {s['runs']} | {s['overhead_ms_p50']:.2f} / {s['overhead_ms_p99']:.2f} | "
        f"{s['obs_wait_ms_p50']:.1f} / {s['obs_wait_ms_p99']:.1f} | "
        f"{s['control_rate_hz']:.2f} | {s['replan_rate_hz']:.2f} | {s['replan_ms_median']:.1f} | "
        f"{s['missed_ticks']} / {s['ticks']} | {s['real_time_factor']:.3f} |"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0, help="wall seconds measured per run (after the first replan)")
    parser.add_argument("--policy", default="dmpc", help="dmpc, proposer or expert")
    parser.add_argument("--execution", default="async", choices=("async", "sync"))
    parser.add_argument("--threads", type=int, default=1, help="the controller's torch threads")
    parser.add_argument("--temporal-ensemble-k", type=float, default=0.0)
    parser.add_argument("--backend", default="torch", choices=("torch", "onnx"), help="dmpc: the controller's backend")
    parser.add_argument("--action-steps", type=int, default=0, help="dmpc: actions per chunk (0: the default, 8)")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    domain = random.randint(201, 230)
    env = apply_defaults(dict(os.environ))
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    env.pop("ROS_LOCALHOST_ONLY", None)
    os.environ.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    logs = Path(tempfile.mkdtemp(prefix="ros_loop-"))
    env["ROS_LOG_DIR"] = str(logs)
    listener = Listener(domain)
    try:
        rows = [run_once(k, args, env, listener, logs) for k in range(args.runs)]
    finally:
        listener.close()
    summary = summarize(rows)
    if args.json:
        print(json.dumps({"summary": summary, "runs": rows, "args": vars(args)}))
    else:
        for r in rows:
            print(json.dumps(r))
        print(markdown(summary, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
