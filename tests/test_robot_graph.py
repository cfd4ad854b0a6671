"""The robot graph (``forethought run robot``) against ``sim_node`` started separately as the "driver".

The driver speaks only the topics ``launch/robot.yaml`` documents: it publishes ``joint_states``
and ``objects/<name>/pose`` and executes ``joint_trajectory`` (its ``goal`` and ``status`` are
remapped away, so nothing else connects it to the graph). sim_node stamps in sim time and
publishes ``/clock``, so the robot graph runs with ``use_sim_time: true`` from the robot's params
file, as it would against Gazebo; a real driver stamps in the system clock and the graph's
default (no ``use_sim_time``) matches it. The plan is injected on ``plan`` as the planner would
publish it (planner_node runs a random tiny Llama, so the LLM is not needed), the controller runs
the scripted expert, and with ``--until-success`` the run ends with exit 0 when the executive
judges the plan done: the red block, as the driver reports it, is in the left region.
"""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]
rclpy = pytest.importorskip("rclpy")

from geometry_msgs.msg import PoseStamped  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.ros_ws.stamped import pose_topic  # noqa: E402
from forethought.sim import scene  # noqa: E402

from ros_harness import TASK, ros_env, Probe, probe, spawn, our_processes, assert_ros2_control_accepts, task_events, terminal  # noqa: E402,F401  (fixtures are used by name)

ROBOT_YAML = """\
/**:
  ros__parameters:
    use_sim_time: true  # the driver (sim_node) stamps in sim time and publishes /clock
    objects: [red_block]
    policy: expert
    model: ""
    target: {target}
    adapter: ""
    mode: ar
"""


def test_robot_graph_pushes_a_block_with_a_separately_started_driver(probe: Probe, spawn, tmp_path: Path,
                                                                       model_dir: str) -> None:
    events = task_events(probe)
    probe.subscribe(PoseStamped, pose_topic("red_block"))
    sent: list[JointTrajectory] = []
    probe.node.create_subscription(JointTrajectory, "joint_trajectory", sent.append, 100)
    plan_pub = probe.node.create_publisher(String, "plan", nc.PLAN_QOS)
    params = tmp_path / "my_robot.yaml"
    params.write_text(ROBOT_YAML.format(target=json.dumps(model_dir)))
    robot, log = spawn(["-m", "forethought.cli", "run", "robot", "--params", str(params), "--until-success",
                        "--max-restarts", "0"], "robot")
    driver, driver_log = spawn(["-m", "forethought.ros_ws.sim_node", "--ros-args", "-r", "__node:=driver",
                                "-r", "goal:=driver/unused_goal", "-r", "status:=driver/status",
                                "-p", "n_blocks:=1", "-p", "seed:=0"], "driver")  # task: the default, the same push

    def red_xy() -> tuple[float, float]:
        p = probe.latest[pose_topic("red_block")].pose.position
        return p.x, p.y

    probe.spin_until(lambda: pose_topic("red_block") in probe.latest, 60, "the driver's first pose")
    assert not scene.REGIONS["left"].contains(red_xy()), "seed 0 must need a push"
    probe.spin_until(lambda: probe.node.count_subscribers("plan") >= 1 and probe.node.count_publishers("joint_trajectory") >= 1,
                     120, "the executive and the controller")
    probe.spin_for(2.0)  # every node has its inputs before the plan lands
    plan = {"id": "robot-push", "steps": [json.loads(TASK)]}
    plan_pub.publish(String(data=json.dumps(plan)))
    t0 = time.monotonic()
    probe.spin_until(lambda: terminal(events.get("robot-push", [])) or robot.poll() is not None, 180,
                     "the plan to end")
    took = time.monotonic() - t0
    states = [e["state"] for e in events.get("robot-push", [])]
    assert states[:1] == ["executing"] and terminal(events["robot-push"]) == ["done"], (states, log.read_text()[-3000:])
    assert robot.wait(timeout=60) == 0, log.read_text()[-3000:]  # --until-success: the executive exits 0, so does the run
    probe.spin_for(0.5)
    assert scene.REGIONS["left"].contains(red_xy()), red_xy()  # as the driver measures it
    assert_ros2_control_accepts(sent)
    print(f"\nplan-to-done {took:.1f} s wall, {len(sent)} trajectories")
    assert driver.poll() is None, driver_log.read_text()[-3000:]  # the driver is not part of the graph
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert re.findall(r"started (\w+) \(pid", text) == ["world_model_node", "policy_controller", "executive",
                                                      "planner_node"]  # no sim_node in the robot graph
    driver.send_signal(signal.SIGINT)
    assert driver.wait(timeout=40) == 0
    deadline = time.monotonic() + 5
    while our_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert our_processes() == [], "orphan node processes"
