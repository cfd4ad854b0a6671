"""``forethought run <graph>``: start a ROS 2 node graph over rclpy without the ROS launch system.

Examples::

    forethought run sim --task '{"skill":"push","object":"red_block","target":"left"}' \\
        --until-success --video outputs/demo.mp4
    forethought run sim --n-blocks 3 --seed 4 --rate-factor 4 --timeout 60
    forethought run sim --params my_overrides.yaml
    forethought run stack --command "push the red block to the left zone" --n-blocks 3 \\
        --until-success --timeout 120 --video outputs/stack.mp4
    forethought run stack --policy dmpc --policy-option planner=ssr --command "go to the center"
    forethought run robot --params my_robot.yaml
    forethought run robot --params my_robot.yaml --command "push the red block to the left zone"

Each node of the graph (``forethought.ros_ws.graph``) runs as its own process::

    python -m <module> --ros-args -r __node:=<name> --params-file <packaged launch/*.yaml>
        [--params-file <--params FILE> ...] --params-file <options, as a node-named YAML>

with ``sys.executable`` (the same venv), ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` unless the
environment sets it (discovery stays on this machine), and its own process group. The options
become parameters of every node (a node ignores parameters it does not declare) in a last
params file, because rcl ranks a node-named YAML section above ``-p``: options beat ``--params``
files, which beat the packaged YAML. The runner forwards SIGINT/SIGTERM to every node and waits for them (a second signal
kills them); nodes end without tracebacks and no process is left behind.

Graphs: ``sim`` (sim_node + the scripted expert, one plan step from ``--task``), ``stack``
(sim_node + planner_node + executive + policy_controller + world_model_node: a natural-language
``--command`` is planned by the LLM planner and executed step by step by a learned policy, D-MPC
or the proposer, while the world model reports how surprising each observation is) and ``robot``
(the stack without sim_node, on the system clock: the robot's driver and perception provide the
topics ``launch/robot.yaml`` documents; ``--params`` gives the robot's joints, limits and objects).
In the graphs with sim_node, every other node runs with ``use_sim_time`` (``graph.on_sim_clock``).

Options: the simulator's (``--task``, ``--n-blocks``, ``--seed``, ``--video``, ``--timeout``,
``--rate-factor``) apply to the graphs with sim_node only; the planning ones (``--command``,
``--policy``, ``--model``, ``--policy-option``) to ``stack`` and ``robot``; a misplaced one is a
bad option (exit 2). ``--until-success`` stops the graph when its primary node succeeds.

Supervision: a node that crashes (killed by a signal, e.g. ``kill -9`` or the OOM killer, or
exits with a code >= 128) is started again with the same command after ``--restart-backoff`` S,
doubled at each restart of that node (at most ``MAX_BACKOFF_S``), at most ``--max-restarts``
times per node; meanwhile the rest of the graph keeps running and the robot holds (sim_node's
watchdog; the executive re-reads the last plan, kept by the ``plan`` topic's QoS, when it comes
back). A node that exits with another code on its own is not restarted: it ends the run.

Exit codes (``EXIT_*``):

- 0: the primary node succeeded (``sim``: sim_node, stopped or the task done; ``stack`` and
  ``robot``: the executive, the whole plan done with ``--until-success``), or a signal stopped
  the graph and every node exited cleanly;
- 1: ``--timeout`` ran out with ``--until-success`` and no success (``sim``), another node
  stopped first (the stack's sim_node at ``--timeout``), a node crashed more than
  ``--max-restarts`` times, or a node exited with an error after a signal;
- 2: a bad option or parameter;
- 3: (``stack``, ``robot``) the plan was refused or invalid; 4: the plan failed.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.resources
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from forethought.cli_args import key_values
from forethought.ros_ws.graph import GRAPHS, NodeSpec, has_sim
from forethought.runtime import apply_defaults
from forethought.sim.scene import BLOCK_NAMES, validate_step

EXIT_OK, EXIT_FAILED, EXIT_BAD_OPTION = 0, 1, 2
"""The runner's own exit codes (the module docstring lists them all)."""
MAX_BACKOFF_S = 30.0
"""The longest wait before a crashed node is started again."""
SHUTDOWN_GRACE_S = 30.0
"""How long nodes get to exit after SIGINT (the sim node may be encoding a video) before SIGKILL."""
SIM_OPTIONS = ("--task", "--n-blocks", "--seed", "--video", "--timeout", "--rate-factor")
"""Options that set sim_node's parameters: graphs with sim_node only (``graph.has_sim``)."""
PLANNING_OPTIONS = ("--command", "--policy", "--model", "--policy-option")
"""Options of the planning graphs (``PLANNING_GRAPHS``)."""
PLANNING_GRAPHS = tuple(g for g, nodes in GRAPHS.items() if any(n.name == "planner_node" for n in nodes))
"""The graphs with planner_node: stack, robot."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``run`` verb's arguments."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = ("examples:" + __doc__.split("Examples::")[1].split("Each node")[0].rstrip()
                     + "\n\nEach node runs as its own process; Ctrl-C stops them all. Exit code: the primary node's "
                     "(sim: sim_node; stack, robot: executive); a crashed node is restarted (--max-restarts). "
                     "robot: the stack without sim_node, for a real robot's driver and perception; its "
                     "parameters and the topics the robot must provide are in launch/robot.yaml.")
    parser.add_argument("graph", choices=sorted(GRAPHS), help="which node graph to start")
    parser.add_argument("--until-success", action="store_true", help="stop when the task succeeds (stack, robot: "
                        "the whole plan)")
    parser.add_argument("--params", action="append", default=[], metavar="FILE",
                        help="extra ROS params YAML applied over the packaged one (repeatable); robot: the "
                             "robot's joints, limits, objects (see launch/robot.yaml)")
    parser.add_argument("--max-restarts", type=int, default=3, metavar="N",
                        help="restart a crashed node at most N times, then stop the graph with exit 1 (default 3)")
    parser.add_argument("--restart-backoff", type=float, default=1.0, metavar="S",
                        help="wait S s before restarting a crashed node, doubled at each restart (default 1)")
    sim = parser.add_argument_group("simulator (sim, stack)")
    sim.add_argument("--task", metavar="JSON", help='plan step, e.g. \'{"skill": "push", "object": '
                     '"red_block", "target": "left"}\' (default: the YAML\'s)')
    sim.add_argument("--n-blocks", type=int, choices=(1, 2, 3), help="blocks on the table")
    sim.add_argument("--seed", type=int, help="episode seed")
    sim.add_argument("--video", metavar="PATH", help="write an MP4 or GIF of the run on exit")
    sim.add_argument("--timeout", type=float, metavar="S", help="stop after S sim seconds (exit 1 with "
                     "--until-success if not achieved)")
    sim.add_argument("--rate-factor", type=float, metavar="F", help="sim seconds per wall second (default 1)")
    planning = parser.add_argument_group("planning (stack, robot)")
    planning.add_argument("--command", dest="task_command", metavar="TEXT", help="natural-language task for the "
                          "planner (default: the YAML's; robot: none, send one on task_command)")
    planning.add_argument("--policy", help="controller policy: proposer, dmpc, expert, ... (default: the YAML's)")
    planning.add_argument("--model", metavar="DIR", help="the controller policy's checkpoint directory (default "
                          "or '': the policy's own, the shipped proposer for dmpc and proposer, none for expert)")
    planning.add_argument("--policy-option", action="append", default=[], metavar="KEY=VALUE",
                          help="extra controller policy option (repeatable), as in forethought eval")


def yaml_value(value: object) -> str:
    """``value`` as a YAML scalar or flow list (strings single-quoted, so JSON stays a string); also
    fits ``-p name:=value``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    return "'" + str(value).replace("'", "''") + "'"


def _misplaced(args: argparse.Namespace) -> list[str]:
    """The given options that do not apply to ``args.graph``."""
    given = {"--task": args.task, "--n-blocks": args.n_blocks, "--seed": args.seed, "--video": args.video,
             "--timeout": args.timeout, "--rate-factor": args.rate_factor, "--command": args.task_command,
             "--policy": args.policy, "--model": args.model, "--policy-option": args.policy_option or None}
    wrong = () if has_sim(args.graph) else SIM_OPTIONS
    wrong += () if args.graph in PLANNING_GRAPHS else PLANNING_OPTIONS
    return [flag for flag in wrong if given[flag] is not None]


def overrides(args: argparse.Namespace) -> dict[str, object]:
    """Node parameters set by the command-line options; raise ``ValueError`` for a bad one."""
    misplaced = _misplaced(args)
    if misplaced:
        where = {flag: "graphs with sim_node (sim, stack)" for flag in SIM_OPTIONS}
        where.update({flag: "the planning graphs (" + ", ".join(PLANNING_GRAPHS) + ")" for flag in PLANNING_OPTIONS})
        raise ValueError("; ".join(f"{flag} only applies to {where[flag]}" for flag in misplaced)
                         + f", not to {args.graph}")
    out: dict[str, object] = {}
    if args.task is not None:
        try:
            validate_step(json.loads(args.task))
        except json.JSONDecodeError as e:
            raise ValueError(f"--task is not valid JSON ({e.msg}): {args.task!r}") from None
        out["task"] = args.task
    if args.n_blocks is not None:
        out["n_blocks"] = args.n_blocks
        out["objects"] = list(BLOCK_NAMES[: args.n_blocks])  # the env's first n blocks: every pose expected
    if args.seed is not None:
        out["seed"] = args.seed
    if args.video:
        Path(args.video).parent.mkdir(parents=True, exist_ok=True)
        out["video_path"] = os.path.abspath(args.video)
    if args.until_success:
        out["exit_on_success"] = True
    if args.timeout is not None:
        if not args.timeout > 0:
            raise ValueError(f"--timeout {args.timeout}: must be > 0 sim seconds")
        out["max_duration_s"] = float(args.timeout)
    if args.rate_factor is not None:
        if not 0 < args.rate_factor <= 1000:
            raise ValueError(f"--rate-factor {args.rate_factor}: must be in (0, 1000]")
        out["real_time_factor"] = float(args.rate_factor)
    if args.task_command is not None:
        if not args.task_command.strip():
            raise ValueError("--command is empty")
        out["command"] = args.task_command
    if args.policy is not None:
        out["policy"] = args.policy
    if args.model is not None:
        out["model"] = os.path.abspath(args.model) if args.model else ""
    if args.policy_option:
        out["policy_options"] = json.dumps(key_values(args.policy_option, "--policy-option"))
    for f in args.params:
        if not Path(f).is_file():
            raise ValueError(f"--params {f}: no such file")
    if not 0 <= args.max_restarts <= 1000:
        raise ValueError(f"--max-restarts {args.max_restarts}: must be in [0, 1000]")
    if not 0 <= args.restart_backoff <= MAX_BACKOFF_S:
        raise ValueError(f"--restart-backoff {args.restart_backoff}: must be in [0, {MAX_BACKOFF_S}] s")
    return out


def crashed(returncode: int) -> bool:
    """Whether a node's exit is a crash to restart: killed by a signal, or a code >= 128."""
    return returncode < 0 or returncode >= 128


def node_command(spec: NodeSpec, params_files: list[str]) -> list[str]:
    """The argv that starts ``spec`` as its own Python process, with ``params_files`` in order.

    Options travel as a last, node-named params file (``override_file``) rather than ``-p``:
    rcl ranks a node-named YAML section above ``-p`` (a wildcard), so ``-p`` would lose to a
    ``--params`` file that names the node.
    """
    cmd = [sys.executable, "-m", spec.module, "--ros-args", "-r", f"__node:={spec.name}"]
    if spec.namespace:
        cmd += ["-r", f"__ns:={spec.namespace}"]
    for src, dst in spec.remaps:
        cmd += ["-r", f"{src}:={dst}"]
    for f in params_files:
        cmd += ["--params-file", f]
    return cmd


def override_file(directory: str, spec: NodeSpec, params: dict[str, object]) -> str:
    """Write ``params`` as a YAML section named after ``spec`` (beats wildcard and earlier files)."""
    path = os.path.join(directory, f"{spec.name}.overrides.yaml")
    lines = [f"{spec.name}:", "  ros__parameters:"] + [f"    {k}: {yaml_value(v)}" for k, v in params.items()]
    with open(path, "w") as f:
        f.write("\n".join(lines if params else [f"{spec.name}:", "  ros__parameters: {}"]) + "\n")
    return path


def _die_with_parent() -> None:  # runs in the child before exec: SIGTERM it if the runner dies
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def log(text: str) -> None:
    print(f"[forethought run] {text}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Start the graph, supervise it, stop it; return the exit code (see the module docstring)."""
    try:
        params = overrides(args)
    except ValueError as e:
        log(f"error: {e}")
        return EXIT_BAD_OPTION
    env = apply_defaults(dict(os.environ))
    signals: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _: signals.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    procs: list[tuple[NodeSpec, subprocess.Popen]] = []
    code = EXIT_OK
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="forethought-run-"))
        try:
            commands = []
            for spec in GRAPHS[args.graph]:
                packaged = importlib.resources.files("forethought.launch") / spec.params_file
                yaml = str(stack.enter_context(importlib.resources.as_file(packaged)))
                node_params = {**params, **dict(spec.fixed)}
                files = [yaml, *[os.path.abspath(f) for f in args.params], override_file(tmp, spec, node_params)]
                commands.append(node_command(spec, files))
                procs.append((spec, _start(spec, commands[-1], env)))
            code = _supervise(procs, commands, env, signals, args.max_restarts, args.restart_backoff)
        finally:
            code = _stop(procs, signals, code)
            for s, h in previous.items():
                signal.signal(s, h)
    return code


def _start(spec: NodeSpec, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=_die_with_parent)
    log(f"started {spec.name} (pid {proc.pid})")
    return proc


def _supervise(procs: list[tuple[NodeSpec, subprocess.Popen]], commands: list[list[str]], env: dict[str, str],
               signals: list[int], max_restarts: int, backoff: float) -> int:
    """Wait until a signal or a node's own exit, restarting crashed nodes (``crashed``); return the exit code."""
    restarts = [0] * len(procs)
    due: dict[int, float] = {}  # node index -> when to start it again
    while not signals:
        now = time.monotonic()
        for i, (spec, proc) in enumerate(procs):
            rc = proc.poll()
            if rc is None or i in due:
                continue
            if not crashed(rc):
                log(f"{spec.name} exited with code {rc}: stopping the graph")
                return rc if spec.primary else (rc or EXIT_FAILED)
            if restarts[i] >= max_restarts:
                log(f"{spec.name} crashed (code {rc}) after {restarts[i]} restarts (--max-restarts "
                    f"{max_restarts}): stopping the graph")
                return EXIT_FAILED
            delay = min(backoff * 2 ** restarts[i], MAX_BACKOFF_S)
            restarts[i] += 1
            due[i] = now + delay
            log(f"{spec.name} crashed (code {rc}): restart {restarts[i]}/{max_restarts} in {delay:g} s")
        for i, at in list(due.items()):
            if now >= at:
                procs[i] = (procs[i][0], _start(procs[i][0], commands[i], env))
                del due[i]
        time.sleep(0.05)
    log(f"{signal.Signals(signals[0]).name}: stopping the graph")
    return EXIT_OK


def _stop(procs: list[tuple[NodeSpec, subprocess.Popen]], signals: list[int], code: int) -> int:
    """SIGINT every running node's process group, wait, SIGKILL stragglers; return the exit code."""
    n_signals = len(signals)
    for _, proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
    deadline = time.monotonic() + SHUTDOWN_GRACE_S
    while any(p.poll() is None for _, p in procs) and time.monotonic() < deadline and len(signals) <= n_signals:
        time.sleep(0.05)
    for spec, proc in procs:
        if proc.poll() is None:  # not reaped yet, so its pid (and group id) cannot be reused
            log(f"{spec.name} did not stop: killing it")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if n_signals:
        bad = [(s.name, p.returncode) for s, p in procs if p.returncode != 0]
        if bad:
            log(f"nodes exited with errors: {bad}")
        code = EXIT_FAILED if bad else EXIT_OK
    return code
