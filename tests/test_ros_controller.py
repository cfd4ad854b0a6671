"""policy_controller: the chunk contract, limits, holding after done, refusal and cancel.

Over real rclpy / Fast DDS on loopback; the harness is ``ros_harness``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(150)]
rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float32MultiArray, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.sim import scene  # noqa: E402

from ros_harness import TASK, Probe, probe, spawn, node_args, assert_clean_exit, assert_ros2_control_accepts, scene_obs  # noqa: E402,F401  (fixtures are used by name)


def test_policy_controller_acts_within_limits_and_refuses_nan(probe: Probe, spawn) -> None:
    probe.subscribe(JointTrajectory, "joint_trajectory")
    probe.subscribe(DiagnosticArray, "status")
    sent: list[JointTrajectory] = []
    probe.node.create_subscription(JointTrajectory, "joint_trajectory", sent.append, 100)
    goal_pub = probe.node.create_publisher(String, "goal", 10)
    obs_pub = probe.node.create_publisher(Float32MultiArray, "observation", 10)
    proc, log = spawn(node_args("forethought.ros_ws.policy_controller", "policy_controller", policy="expert", model="", task=""),
                      "policy_controller")
    probe.spin_until(lambda: goal_pub.get_subscription_count() > 0, 60, "policy_controller to subscribe")
    obs = scene_obs((0.0, 0.0), {"red_block": (0.05, 0.0)})
    obs_pub.publish(nc.obs_to_msg(obs))
    probe.spin_for(0.5)
    assert "joint_trajectory" not in probe.latest  # no goal yet: nothing is sent
    status = lambda: probe.status.get("/policy_controller", {})  # noqa: E731
    goal_pub.publish(String(data='{"skill": "push", "object": "purple_block", "target": "left"}'))
    probe.spin_until(lambda: status().get("bad_goals") == "1", 10, "the bad goal to be counted")
    goal_pub.publish(String(data=TASK))
    probe.spin_until(lambda: status().get("task", "None") != "None", 10, "the goal to be taken")
    bad = obs.copy()
    bad[1] = np.nan
    obs_pub.publish(nc.obs_to_msg(bad))
    probe.spin_until(lambda: status().get("refused_observations") == "1", 10, "the NaN observation to be refused")
    assert "joint_trajectory" not in probe.latest
    obs_pub.publish(nc.obs_to_msg(obs))
    probe.spin_until(lambda: "joint_trajectory" in probe.latest, 10, "a command for a good observation")
    cmd = probe.latest["joint_trajectory"]
    assert list(cmd.joint_names) == list(scene.PUSHER_JOINTS) and len(cmd.points) == 2  # the expert's action, then rest
    assert cmd.points[0].positions == cmd.points[1].positions
    goal_pub.publish(String(data=nc.hold_goal("test")))  # moving -> one trajectory to rest, then nothing
    probe.spin_until(lambda: status().get("holds") == "1" and status().get("moving") == "false", 10, "the hold")
    n = len(sent)
    for _ in range(5):
        obs_pub.publish(nc.obs_to_msg(obs))
        probe.spin_for(0.1)
    assert len(sent) == n and status()["task"] == "None", "a held controller sent motion"
    assert_ros2_control_accepts(sent)
    assert_clean_exit(proc, log)


def test_nothing_moves_after_plan_done_refusal_or_cancel(probe: Probe, spawn) -> None:
    """sim_node (4x real time) + the expert controller + the executive. After "plan done", after a
    refused plan (sent mid-push) and after the executive's ``cancel`` service (called mid-push), the
    controller sends no motion and nothing moves for 10 s of sim time."""
    sent: list[JointTrajectory] = []
    probe.node.create_subscription(JointTrajectory, "joint_trajectory", sent.append, 100)
    commands: list[JointState] = []
    probe.node.create_subscription(JointState, "joint_commands", commands.append, 100)
    observations: list[np.ndarray] = []
    probe.node.create_subscription(Float32MultiArray, "observation", lambda m: observations.append(nc.msg_to_obs(m)), 100)
    probe.subscribe(DiagnosticArray, "status")
    plan_pub = probe.node.create_publisher(String, "plan", nc.PLAN_QOS)
    procs = [spawn(node_args("forethought.ros_ws.sim_node", "sim_node", real_time_factor=4.0, n_blocks=3, seed=0),
                   "sim_node"),
             spawn(node_args("forethought.ros_ws.policy_controller", "policy_controller", task=""), "policy_controller"),
             spawn(node_args("forethought.ros_ws.executive", "executive", goal_period_s=0.5), "executive")]
    sim = lambda: probe.status.get("/sim_node", {})  # noqa: E731
    executive = lambda: probe.status.get("/executive", {})  # noqa: E731
    controller = lambda: probe.status.get("/policy_controller", {})  # noqa: E731
    probe.spin_until(lambda: observations and executive() and controller() and plan_pub.get_subscription_count() > 0,
                     90, "the three nodes")

    def sim_seconds(seconds: float) -> None:
        t0 = float(sim()["sim_time"])
        probe.spin_until(lambda: float(sim()["sim_time"]) >= t0 + seconds, seconds / 4 + 15, f"{seconds} s of sim time")

    def push(target: str) -> None:
        plan_pub.publish(String(data=json.dumps({"steps": [{"skill": "push", "object": "red_block", "target": target}]})))
        n = len(sent)
        probe.spin_until(lambda: len(sent) > n + 5, 20, f"the controller to push toward {target}")

    def still_for_10_s(after: str) -> None:
        sim_seconds(2.0)  # the trajectory to rest runs out, then the watchdog holds where the pusher is
        n_sent, n_cmd, n_obs = len(sent), len(commands), len(observations)
        sim_seconds(10.0)
        assert len(sent) == n_sent, f"the controller sent motion after {after}"
        held = np.array([c.position for c in commands[n_cmd:]])
        assert len(held) > 90 and np.ptp(held, axis=0).max() < 1e-9, f"the setpoint moved after {after}"
        seen = np.array(observations[n_obs:])
        moving = [0, 1] + [i for b in scene.present_blocks(seen[0]) for i in range(scene.block_slice(b).start + 1,
                                                                               scene.block_slice(b).start + 3)]
        drift = np.ptp(seen[:, moving], axis=0).max()
        assert drift < 1e-3, f"something moved {drift:.4f} m after {after}"

    push("left")
    probe.spin_until(lambda: executive().get("plan_status") == "done", 60, "plan done")
    still_for_10_s("plan done")
    push("right")
    plan_pub.publish(String(data=json.dumps({"steps": [], "refusal": "changed my mind"})))
    probe.spin_until(lambda: executive().get("refused_plans") == "1", 10, "the refusal")
    still_for_10_s("a refused plan")
    push("top_left")
    client = probe.node.create_client(Trigger, "cancel")
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(Trigger.Request())
    probe.spin_until(future.done, 10, "the cancel service")
    assert future.result().success and future.result().message == "cancelled the plan"
    still_for_10_s("cancel")
    assert int(controller()["holds"]) >= 3, controller()  # one per event at least (also on "step achieved")
    assert_ros2_control_accepts(sent)
    for proc, log in procs:
        assert_clean_exit(proc, log)


def test_controller_rechecks_goals_against_the_blocks_present_and_holds(probe: Probe, spawn) -> None:
    """A goal naming the green block, accepted before any observation, is refused at the first
    observation (only red present): no trajectory, no crash, the controller holds; a valid goal then works."""
    sent: list[JointTrajectory] = []
    probe.node.create_subscription(JointTrajectory, "joint_trajectory", sent.append, 100)
    probe.subscribe(DiagnosticArray, "status")
    goal_pub = probe.node.create_publisher(String, "goal", 10)
    obs_pub = probe.node.create_publisher(Float32MultiArray, "observation", 10)
    proc, log = spawn(node_args("forethought.ros_ws.policy_controller", "policy_controller", policy="expert", model="",
                                task=""), "policy_controller")
    probe.spin_until(lambda: goal_pub.get_subscription_count() > 0, 60, "policy_controller to subscribe")
    status = lambda: probe.status.get("/policy_controller", {})  # noqa: E731
    goal_pub.publish(String(data='{"skill": "push", "object": "green_block", "target": "left"}'))
    probe.spin_until(lambda: "green_block" in status().get("task", ""), 10, "the goal to be taken (no observation yet)")
    obs = scene_obs((0.0, 0.0), {"red_block": (0.05, 0.0)})
    obs_pub.publish(nc.obs_to_msg(obs))
    probe.spin_until(lambda: status().get("bad_goals") == "1" and status().get("task") == "None", 10,
                     "the goal to be refused against the observed scene")
    for _ in range(5):
        obs_pub.publish(nc.obs_to_msg(obs))
        probe.spin_for(0.1)
    assert not sent and proc.poll() is None
    goal_pub.publish(String(data=TASK))
    probe.spin_until(lambda: status().get("task", "None") != "None", 10, "the valid goal")
    obs_pub.publish(nc.obs_to_msg(obs))
    probe.spin_until(lambda: bool(sent), 10, "motion for the valid goal")
    assert "goal refused" in log.read_text() and "Traceback" not in log.read_text()
    assert_clean_exit(proc, log)
