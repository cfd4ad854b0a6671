"""``forethought run``: graphs started by the runner, restarts, exit codes, guarded callbacks.

Over real rclpy / Fast DDS on loopback; the harness is ``ros_harness``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(150)]
rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.ros_ws import runner  # noqa: E402
from forethought.ros_ws.stamped import pose_topic  # noqa: E402
from forethought.sim import scene  # noqa: E402

from ros_harness import TASK, ros_env, Probe, probe, spawn, node_args, our_processes, assert_clean_exit, assert_ros2_control_accepts  # noqa: E402,F401  (fixtures are used by name)


def test_runner_help() -> None:
    res = subprocess.run([sys.executable, "-m", "forethought.cli", "run", "robot", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    for option in ("--task", "--until-success", "--video", "--timeout", "--rate-factor", "--params", "--max-restarts",
                   "--restart-backoff", "{robot,sim,stack}", "simulator (sim, stack)", "planning (stack, robot)",
                   "forethought run robot --params my_robot.yaml", "launch/robot.yaml"):
        assert option in res.stdout


def parse(*argv: str):
    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    return parser.parse_args(argv)


def test_options_apply_to_their_graphs_only() -> None:
    """Simulator options need sim_node; planning options need the planner; --n-blocks also sets
    the objects every node expects."""
    for graph in ("sim", "stack"):
        assert runner.overrides(parse(graph, "--n-blocks", "2", "--video", "/tmp/x.mp4", "--timeout", "5")) == {
            "n_blocks": 2, "objects": ["red_block", "green_block"], "video_path": "/tmp/x.mp4", "max_duration_s": 5.0}
    for graph in ("stack", "robot"):
        assert runner.overrides(parse(graph, "--command", "go left", "--policy", "expert", "--until-success")) == {
            "command": "go left", "policy": "expert", "exit_on_success": True}
    with pytest.raises(ValueError, match="--seed only applies to graphs with sim_node .*--video only applies.* robot"):
        runner.overrides(parse("robot", "--seed", "1", "--video", "x.mp4"))
    with pytest.raises(ValueError, match="--command only applies to the planning graphs"):
        runner.overrides(parse("sim", "--command", "go left"))
    assert runner.overrides(parse("robot", "--policy", "expert", "--model", "")) == {"policy": "expert", "model": ""}
    assert runner.yaml_value(["red_block", "it's"]) == "['red_block', 'it''s']"


def test_runner_refuses_a_simulator_option_for_the_robot_before_starting_nodes(ros_env: dict[str, str]) -> None:
    res = subprocess.run([sys.executable, "-m", "forethought.cli", "run", "robot", "--rate-factor", "2"],
                         capture_output=True, text=True, env=ros_env, timeout=60)
    assert res.returncode == 2
    assert "--rate-factor only applies to graphs with sim_node" in res.stderr and "started" not in res.stderr


def test_runner_refuses_bad_task_before_starting_nodes(ros_env: dict[str, str]) -> None:
    res = subprocess.run([sys.executable, "-m", "forethought.cli", "run", "sim", "--task", '{"skill": "fly"}'],
                         capture_output=True, text=True, env=ros_env, timeout=60)
    assert res.returncode == 2
    assert "unknown skill 'fly'" in res.stderr and "started" not in res.stderr


def test_runner_restarts_a_killed_node_while_the_graph_runs_then_gives_up_with_exit_1(
        probe: Probe, spawn, tmp_path: Path) -> None:
    """``forethought run sim --max-restarts 1``: a ``kill -9`` of policy_controller is restarted
    (sim_node keeps running, the new controller reports status); a second one ends the run with
    exit code 1 (not the signal's 247), leaving no process behind."""
    probe.subscribe(DiagnosticArray, "status")
    proc, log = spawn(["-m", "forethought.cli", "run", "sim", "--rate-factor", "2", "--max-restarts", "1",
                       "--restart-backoff", "0.5"], "runner")
    started = lambda name: re.findall(rf"started {name} \(pid (\d+)\)", log.read_text())  # noqa: E731
    controller = lambda: probe.status.get("/policy_controller")  # noqa: E731
    probe.spin_until(lambda: controller() is not None and probe.status.get("/sim_node") is not None, 60, "the graph")
    (sim_pid,), (first,) = started("sim_node"), started("policy_controller")
    os.kill(int(first), signal.SIGKILL)
    probe.spin_until(lambda: len(started("policy_controller")) == 2, 20, "the restart")
    assert "policy_controller crashed (code -9): restart 1/1 in 0.5 s" in log.read_text()
    probe.status.pop("/policy_controller")
    probe.spin_until(lambda: controller() is not None, 30, "the restarted controller's status")
    sim_status = probe.count.get("status", 0)
    probe.spin_for(1.5)
    assert probe.count["status"] > sim_status and proc.poll() is None
    os.kill(int(sim_pid), 0)  # sim_node was never stopped
    os.kill(int(started("policy_controller")[1]), signal.SIGKILL)
    assert proc.wait(timeout=40) == 1, log.read_text()[-3000:]
    assert "after 1 restarts (--max-restarts 1): stopping the graph" in log.read_text()
    assert not our_processes()


def test_graph_pushes_red_block_left_then_stops_cleanly(probe: Probe, spawn, tmp_path: Path) -> None:
    """sim_node + policy_controller (the scripted expert) as separate processes via ``forethought run sim``.

    The graph starts on a harmless task (pusher to the top-left region); once this probe sees
    observations it publishes the push as a ``goal`` (as the executive would), so the whole push
    happens while it watches.
    """
    probe.subscribe(PoseStamped, pose_topic("red_block"))
    sent: list[JointTrajectory] = []
    probe.node.create_subscription(JointTrajectory, "joint_trajectory", sent.append, 100)
    goal = probe.node.create_publisher(String, "goal", 10)
    video = tmp_path / "run.mp4"
    t0 = time.monotonic()
    runner, log = spawn(["-m", "forethought.cli", "run", "sim", "--task", '{"skill": "reach", "target": "top_left"}',
                         "--n-blocks", "3", "--seed", "0", "--rate-factor", "2", "--video", str(video)], "runner")
    first = probe.spin_until(lambda: pose_topic("red_block") in probe.latest, 40, "the first red block pose")
    probe.spin_until(lambda: goal.get_subscription_count() >= 2, 20, "sim_node and policy_controller on goal")

    def red_left() -> bool:
        p = probe.latest[pose_topic("red_block")].pose.position
        return scene.REGIONS["left"].contains((p.x, p.y))

    assert not red_left(), "seed 0 must need a push"
    goal.publish(String(data=TASK))
    took = probe.spin_until(red_left, 60, "the red block in region 'left'")
    print(f"\nstart-to-first-observation {first:.2f} s; goal-to-success {took:.2f} s wall at rate factor 2 "
          f"(~{2 * took:.1f} s sim); total {time.monotonic() - t0:.2f} s")
    assert runner.poll() is None, "the runner stopped by itself without --until-success"
    assert_ros2_control_accepts(sent)
    pids = [int(p) for p in re.findall(r"started \w+ \(pid (\d+)\)", log.read_text())]
    assert len(pids) == 2 and set(pids) <= set(our_processes())  # the orphan check below can see them
    text = assert_clean_exit(runner, log)
    deadline = time.monotonic() + 5
    while our_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert our_processes() == [], "orphan node processes"
    assert video.is_file() and video.stat().st_size > 0, text[-2000:]


def test_bad_parameter_exits_2_without_traceback(spawn) -> None:
    proc, log = spawn(node_args("forethought.ros_ws.sim_node", "sim_node", n_blocks=7), "bad_param")
    assert proc.wait(timeout=40) == 2
    text = log.read_text()
    assert "n_blocks=7" in text and "Traceback" not in text


def test_guarded_callbacks_report_errors_on_status_and_keep_the_node_alive(probe: Probe) -> None:
    """``ReportingNode.guard``: an exception in a callback is logged and turns the next status ERROR
    (once); ``StopNode`` still ends the node."""
    class Node(nc.ReportingNode):
        def __init__(self) -> None:
            super().__init__("guarded", context=probe.context)
            self.counts = {}
            self.pub_status = self.create_publisher(DiagnosticArray, "status", 10)

    def stop() -> None:
        raise nc.StopNode(4)

    node = Node()
    try:
        parse = node.guard(lambda msg: json.loads(msg.data), "parse")
        assert parse(String(data='{"ok": 1}')) == {"ok": 1}
        assert parse(String(data="{not json")) is None  # caught
        assert node.faults == 1 and node.fault.startswith("parse: JSONDecodeError")
        probe.spin_until(lambda: probe.node.count_publishers("status") > 0, 5, "discovery")
        levels: list[int] = []
        probe.node.create_subscription(DiagnosticArray, "status", lambda m: levels.append(m.status[0].level), 10)
        probe.spin_for(0.5)
        node.publish_status(nc.OK, "fine", {})
        node.publish_status(nc.OK, "fine", {})
        probe.spin_until(lambda: len(levels) >= 2, 5, "two status messages")
        assert levels[:2] == [nc.ERROR, nc.OK]
        with pytest.raises(nc.StopNode):
            node.guard(stop)()
    finally:
        node.destroy_node()
