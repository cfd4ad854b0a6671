"""sim_node: trajectory execution, the safety gate where trajectories are accepted, goals, resets.

Over real rclpy / Fast DDS on loopback; the harness is ``ros_harness``.
"""

from __future__ import annotations

import json
import re

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
from forethought.ros_ws.safety import LIMIT_PARAMS  # noqa: E402
from forethought.sim import scene  # noqa: E402

from ros2_control_rules import chunk_contract, validate_trajectory_msg  # noqa: E402
from ros_harness import Probe, probe, spawn, node_args, assert_clean_exit, trajectory  # noqa: E402,F401  (fixtures are used by name)


def test_sim_node_validates_trajectories_goals_and_resets(probe: Probe, spawn) -> None:
    for topic, kind in (("status", DiagnosticArray), ("joint_states", JointState), ("observation", Float32MultiArray)):
        probe.subscribe(kind, topic)
    pub = probe.node.create_publisher(JointTrajectory, "joint_trajectory", 10)
    goal = probe.node.create_publisher(String, "goal", 10)
    proc, log = spawn(node_args("forethought.ros_ws.sim_node", "sim_node", real_time_factor=2.0,
                                command_timeout_s=0.0, n_blocks=1, seed=1, limit_mode="reject"), "sim_node")
    status = lambda: probe.status.get("/sim_node", {})  # noqa: E731
    probe.spin_until(lambda: "joint_states" in probe.latest and "status" in probe.latest, 40, "sim_node to publish")
    probe.spin_until(lambda: pub.get_subscription_count() > 0 and goal.get_subscription_count() > 0, 10,
                     "sim_node's subscriptions to match")
    ready = re.search(r"\[INFO\] \[(\d+\.\d+)\] \[sim_node\]: forethought/PushBlocks", log.read_text())
    if ready:  # node constructed (timer started) -> first message in this process: discovery + 1 tick
        print(f"\nsim_node ready -> first joint_states here: {probe.first_wall['joint_states'] - float(ready[1]):.3f} s")
    js = probe.latest["joint_states"]
    assert list(js.name) == list(scene.PUSHER_JOINTS) and len(js.velocity) == 2
    p0 = np.array(js.position)

    pub.publish(trajectory((float("nan"), 0.0)))
    probe.spin_until(lambda: status().get("rejected_trajectories") == "1", 10, "the NaN chunk to be rejected")
    pub.publish(trajectory((0.0, 0.0), (0.5, 0.5), dt=0.1))  # second point beyond the 0.27 m limit
    probe.spin_until(lambda: status().get("rejected_trajectories") == "2", 10, "the out-of-limit chunk to be rejected")
    pub.publish(trajectory((0.1, 0.1), names=("pusher_x", "elbow")))
    probe.spin_until(lambda: status().get("rejected_trajectories") == "3", 10, "the unknown-joint chunk to be rejected")
    far = tuple(-np.sign(p0) * 0.25)
    pub.publish(trajectory(far, dt=0.001))  # ~0.5 m in 1 ms: far beyond the velocity limit
    probe.spin_until(lambda: status().get("rejected_trajectories") == "4", 10, "the rogue jump to be rejected")
    assert "velocity" in status()["last_error"]
    tick = int(status()["step"])
    probe.spin_until(lambda: int(status()["step"]) >= tick + 5, 10, "5 more ticks")
    assert np.abs(np.array(probe.latest["joint_states"].position) - p0).max() < 0.01, "pusher moved on a rejected chunk"
    assert status()["accepted_trajectories"] == "0"

    target = np.array([0.12, -0.2]) if p0[1] > 0 else np.array([0.12, 0.2])
    n = int(np.ceil(np.linalg.norm(target - p0) / 0.03))  # 0.3 m/s, starting and ending gently
    path = p0 + (target - p0) * (0.5 - 0.5 * np.cos(np.pi * np.arange(1, n + 1) / n))[:, None]
    pub.publish(trajectory(*map(tuple, path), target))
    probe.spin_until(lambda: np.linalg.norm(np.array(probe.latest["joint_states"].position) - target) < 0.3 * np.linalg.norm(p0 - target),
                     20, "the pusher to move toward a valid chunk's target")
    probe.spin_until(lambda: status()["accepted_trajectories"] == "1", 5, "the status to count the chunk")

    for bad in ("not json", '{"skill": "fly"}', '{"skill": "push", "object": "green_block", "target": "left"}'):
        goal.publish(String(data=bad))
    probe.spin_until(lambda: status().get("bad_goals") == "3", 10, "three bad goals to be refused")
    goal.publish(String(data='{"skill": "reach", "target": "center"}'))
    probe.spin_until(lambda: json.loads(status()["task"]).get("skill") == "reach", 10, "a valid goal to apply")
    assert proc.poll() is None

    client = probe.node.create_client(Trigger, "reset")
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(Trigger.Request())
    probe.spin_until(future.done, 10, "the reset service")
    assert future.result().success
    probe.spin_until(lambda: status()["episode"] == "1", 10, "the episode counter")

    text = assert_clean_exit(proc, log)
    assert "joint_trajectory rejected" in text and "goal refused" in text


def test_sim_node_follows_long_trajectories_and_clips_rogue_ones(probe: Probe, spawn) -> None:
    """``joint_commands`` (the setpoint at the end of every tick, stamped like that tick's ``joint_states``):
    a valid 10 s, 1000-point trajectory is followed point by point to its end (the 1 s watchdog does
    not cut it); a rogue jump in 1 ms is clipped, and what then executes keeps to the velocity and
    acceleration limits."""
    commands: list[JointState] = []
    probe.node.create_subscription(JointState, "joint_commands", commands.append, 100)
    states: list[JointState] = []
    probe.node.create_subscription(JointState, "joint_states", states.append, 100)
    probe.subscribe(DiagnosticArray, "status")
    pub = probe.node.create_publisher(JointTrajectory, "joint_trajectory", 10)
    proc, log = spawn(node_args("forethought.ros_ws.sim_node", "sim_node", real_time_factor=4.0,
                                command_timeout_s=1.0, n_blocks=1, seed=1), "sim_node")
    status = lambda: probe.status.get("/sim_node", {})  # noqa: E731
    probe.spin_until(lambda: len(commands) >= 3 and pub.get_subscription_count() > 0, 40, "joint_commands")
    first = commands[0]
    assert list(first.name) == list(scene.PUSHER_JOINTS) and len(first.position) == 2
    p0 = np.array(commands[-1].position)  # no trajectory yet: holding the start position
    assert np.linalg.norm(p0 - np.array(states[-1].position)) < 0.02
    t = 0.01 * np.arange(1, 1001)
    path = p0 * (1 - 0.05 * t)[:, None] + 0.02 * np.sin(2 * np.pi * t / 2.5)[:, None] * np.array([1.0, -1.0])
    n0 = len(commands)
    pub.publish(trajectory(*map(tuple, path), dt=0.01))
    probe.spin_until(lambda: any(np.allclose(c.position, path[-1], atol=1e-9) for c in commands[n0:]), 30,
                     "the end of the 10 s trajectory")
    sent = np.array([c.position for c in commands[n0:]])
    start = next(i for i, q in enumerate(sent) if np.allclose(q, path[9], atol=1e-9))
    assert np.allclose(sent[start:start + 100], path[9::10], atol=1e-9)  # every tick on its point, to the end
    assert status()["accepted_trajectories"] == "1" and status()["clipped_trajectories"] == "0"

    far = -np.sign(path[-1] + 1e-9) * 0.25
    assert np.linalg.norm(far - path[-1]) > 0.35
    n1 = len(commands)
    pub.publish(trajectory(tuple(far), dt=0.001))
    probe.spin_until(lambda: status().get("clipped_trajectories") == "1", 10, "the rogue jump to be clipped")
    probe.spin_until(lambda: len(commands) > n1 + 30, 20, "3 s of sim time after it")
    executed = np.array([c.position for c in commands[n1 - 2:]])
    vel = np.diff(executed, axis=0) / 0.1
    acc = np.diff(vel, axis=0) / 0.1
    assert np.abs(vel).max() <= LIMIT_PARAMS["max_velocity"][0][0] * (1 + 1e-6), np.abs(vel).max()
    assert np.abs(acc).max() <= LIMIT_PARAMS["max_acceleration"][0][0] * (1 + 1e-6), np.abs(acc).max()
    assert np.linalg.norm(executed[-1] - far) > 0.3  # the jump did not happen

    every = np.array([c.position for c in commands])
    assert np.all(np.abs(every) <= scene.WORKSPACE_HALF + 1e-9)
    stamp = lambda m: (m.header.stamp.sec, m.header.stamp.nanosec)  # noqa: E731
    stamps = {stamp(s) for s in states}
    later = [c for c in commands[:-2] if stamp(c) >= min(stamps)]  # this probe may have matched joint_states later
    assert len(later) > 10 and all(stamp(c) in stamps for c in later), "a command without its tick's joint_states stamp"
    assert_clean_exit(proc, log)


@pytest.mark.parametrize("points, names, error", [
    ([(float("nan"), 0.0)], scene.PUSHER_JOINTS, "NaN"),
    ([(0.0, float("inf"))], scene.PUSHER_JOINTS, "NaN or infinite"),
    ([(0.0, 0.0, 0.0)], scene.PUSHER_JOINTS, "3 positions"),
    ([(0.0, 0.0)], ("pusher_x", "pusher_x"), "exactly once"),
    ([], scene.PUSHER_JOINTS, "0 points"),
])
def test_check_trajectory_rejects(points: list, names: tuple, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        nc.check_trajectory(trajectory(*points, names=names), scene.PUSHER_JOINTS)


def test_check_trajectory_reorders_joints_and_reads_times() -> None:
    pos, times = nc.check_trajectory(trajectory((0.1, 0.2), (0.2, 0.25), dt=0.3, names=("pusher_y", "pusher_x")),
                                     scene.PUSHER_JOINTS)
    assert pos.tolist() == [[0.2, 0.1], [0.25, 0.2]] and np.allclose(times, [0.3, 0.6])
    with pytest.raises(ValueError, match="strictly increasing"):
        nc.check_trajectory(trajectory((0.1, 0.2), (0.2, 0.25), dt=0.0), scene.PUSHER_JOINTS)
    msg = trajectory((0.1, 0.2), (0.2, 0.25))
    assert validate_trajectory_msg(msg, scene.PUSHER_JOINTS, now_s=0.0) == [] and chunk_contract(msg, 0.1) == []
    msg.points[1].velocities = [0.1, 0.0]  # moving at the end: joint_trajectory_controller refuses it
    assert [b[:6] for b in validate_trajectory_msg(msg, scene.PUSHER_JOINTS, now_s=0.0)] == ["rule 5"]
    msg.header.stamp.sec, msg.points[1].velocities = 5, []  # ends at 5.2 s: in the past at 6 s
    assert [b[:6] for b in validate_trajectory_msg(msg, scene.PUSHER_JOINTS, now_s=6.0)] == ["rule 6"]
    assert [b[:6] for b in validate_trajectory_msg(trajectory((0.1, 0.2)), ("pusher_x",), now_s=0.0)] == \
        ["rule 1", "rule 4"]


def test_observation_message_round_trip_and_bad_steps() -> None:
    obs = np.arange(scene.OBS_DIM, dtype=np.float32)
    msg = nc.obs_to_msg(obs)
    assert msg.layout.dim[0].label.split(",") == list(scene.OBS_LABELS) and msg.layout.dim[0].size == scene.OBS_DIM
    assert np.array_equal(nc.msg_to_obs(msg), obs)
    msg.data = msg.data[:-1]
    with pytest.raises(ValueError, match="expected 16"):
        nc.msg_to_obs(msg)
    with pytest.raises(ValueError, match="not valid JSON"):
        nc.parse_step("{skill: push")
    with pytest.raises(ValueError, match="empty plan step"):
        nc.parse_step("  ")
    assert nc.parse_goal(nc.hold_goal("plan done")) == {"skill": "hold", "reason": "plan done"}
    with pytest.raises(ValueError, match="a hold goal is"):
        nc.parse_goal('{"skill": "hold", "until": 3}')
    with pytest.raises(ValueError, match="unknown object"):
        nc.parse_step('{"skill": "push", "object": "blue_block", "target": "left"}', present=("red_block",))
