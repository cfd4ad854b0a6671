"""sim_node: trajectory execution (stamped starts included), the safety gate where trajectories are
accepted, goals, resets, sim time (stamps, ``/clock``, pause / step / resume, the real-time factor).

Over real rclpy / Fast DDS on loopback; the harness is ``ros_harness``. Lockstep against
``forethought eval``: ``test_lockstep.py``.
"""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(150)]
rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.ros_ws.input_topics import seconds_to_time  # noqa: E402
from forethought.ros_ws.safety import LIMIT_PARAMS  # noqa: E402
from forethought.ros_ws.stamped import TABLE_FRAME, pose_topic, stamp_seconds  # noqa: E402
from forethought.sim import scene  # noqa: E402

from ros2_control_rules import chunk_contract, validate_trajectory_msg  # noqa: E402
from ros_harness import Probe, ros_env, probe, spawn, node_args, assert_clean_exit, trajectory  # noqa: E402,F401  (fixtures are used by name)


def test_sim_node_validates_trajectories_goals_and_resets(probe: Probe, spawn) -> None:
    for topic, kind in (("status", DiagnosticArray), ("joint_states", JointState)):
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
    probe.spin_until(lambda: len(commands) >= 3 and states and pub.get_subscription_count() > 0, 40,
                     "joint_commands and joint_states")
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


def _stamp(msg) -> float:
    return stamp_seconds(msg.header.stamp)


def test_sim_node_stamps_are_sim_time_and_status_measures_the_real_time_factor(probe: Probe, spawn) -> None:
    """Every output carries its tick's sim time (k / control_rate_hz, the ``/clock`` value of that
    tick); ``real_time_factor_measured`` agrees with the rate at which ``/clock`` advances here."""
    clock: list[tuple[float, float]] = []  # (wall s here, sim s)
    probe.node.create_subscription(Clock, "/clock", lambda m: clock.append((time.monotonic(), stamp_seconds(m.clock))), 200)
    seen: dict[str, list] = {"joint_states": [], "joint_commands": [], "pose": []}
    probe.node.create_subscription(JointState, "joint_states", seen["joint_states"].append, 200)
    probe.node.create_subscription(JointState, "joint_commands", seen["joint_commands"].append, 200)
    probe.node.create_subscription(PoseStamped, pose_topic("red_block"), seen["pose"].append, 200)
    statuses: list[DiagnosticArray] = []
    probe.node.create_subscription(DiagnosticArray, "status", statuses.append, 50)
    proc, log = spawn(node_args("forethought.ros_ws.sim_node", "sim_node", real_time_factor=4.0, n_blocks=1,
                                seed=2), "sim_node")
    probe.spin_until(lambda: len(seen["joint_states"]) >= 60 and len(clock) >= 60 and len(seen["joint_commands"]) > 30
                     and len(seen["pose"]) > 30, 60, "60 ticks")  # the topics may match a few ticks apart
    t_js = np.array([_stamp(m) for m in seen["joint_states"]])
    assert np.allclose(t_js * 10, np.round(t_js * 10), atol=1e-6) and t_js.min() >= 0.1 - 1e-9, t_js[:5]
    assert np.allclose(np.diff(t_js), 0.1, atol=1e-9), "joint_states not one per tick, in order"
    clock_times = {round(t, 9) for _, t in clock}
    on_clock = [t for t in t_js if t >= min(clock_times)]  # this probe may have matched /clock later
    assert len(on_clock) > 30 and all(round(t, 9) in clock_times for t in on_clock), "a stamp that /clock never showed"
    for topic in ("joint_commands", "pose"):
        stamps = {round(_stamp(m), 9) for m in seen[topic]}
        assert len(stamps) > 30 and stamps <= {round(t, 9) for t in t_js} | {round(t_js.max() + 0.1, 9)}, topic
    assert all(m.header.frame_id == TABLE_FRAME for m in seen["pose"])
    status_times = [_stamp(s) for s in statuses]
    assert np.allclose(np.array(status_times) * 10, np.round(np.array(status_times) * 10), atol=1e-6)

    probe.spin_for(4.0)  # the real-time factor: this probe's /clock rate vs the node's measurement
    wall0, sim0 = next((w, t) for w, t in clock if w >= clock[-1][0] - 3.0)
    here = (clock[-1][1] - sim0) / (clock[-1][0] - wall0)
    values = {kv.key: kv.value for kv in statuses[-1].status[0].values}
    assert values["real_time_factor"] == "4.0000"
    measured = float(values["real_time_factor_measured"])
    print(f"\nreal-time factor: target 4, measured by sim_node {measured:.2f}, from /clock here {here:.2f}")
    assert here > 1.0 and abs(measured - here) < 0.25 * here, (measured, here)
    assert_clean_exit(proc, log)


def test_sim_node_pause_step_resume_and_stamped_trajectory_starts(probe: Probe, spawn) -> None:
    """Paused, ``/clock`` stands still and each ``step`` is exactly one tick. A trajectory stamped in
    the future starts then (the hold runs until it); one stamped in the past skips its points up to
    now and runs the rest at their times, exactly; one that ends in the past is rejected."""
    clock: list[float] = []
    probe.node.create_subscription(Clock, "/clock", lambda m: clock.append(stamp_seconds(m.clock)), 200)
    states: dict[float, JointState] = {}
    commands: dict[float, np.ndarray] = {}
    probe.node.create_subscription(JointState, "joint_states", lambda m: states.__setitem__(round(_stamp(m), 6), m), 200)
    probe.node.create_subscription(JointState, "joint_commands",
                                   lambda m: commands.__setitem__(round(_stamp(m), 6), np.array(m.position)), 200)
    probe.subscribe(DiagnosticArray, "status")
    status = lambda: probe.status.get("/sim_node", {})  # noqa: E731
    pub = probe.node.create_publisher(JointTrajectory, "joint_trajectory", 10)
    pause, step = probe.node.create_client(SetBool, "pause"), probe.node.create_client(Trigger, "step")
    proc, log = spawn(node_args("forethought.ros_ws.sim_node", "sim_node", real_time_factor=2.0, n_blocks=1,
                                seed=4, command_timeout_s=5.0), "sim_node")
    assert pause.wait_for_service(timeout_sec=40) and step.wait_for_service(timeout_sec=10)
    probe.spin_until(lambda: len(states) >= 3 and pub.get_subscription_count() > 0, 30, "sim_node to tick")

    def call(client, request):
        future = client.call_async(request)
        probe.spin_until(future.done, 10, f"the {client.srv_name} service")
        return future.result()

    refused = call(step, Trigger.Request())
    assert not refused.success and "paused" in refused.message
    assert call(pause, SetBool.Request(data=True)).success
    probe.spin_for(1.0)
    now, n_states = clock[-1], len(states)
    probe.spin_for(1.0)
    assert clock[-1] == now and len(states) == n_states, "time went on while paused"
    probe.spin_until(lambda: status().get("paused") == "true", 10, "status to say paused")
    hold = commands[round(now, 6)]

    def step_once() -> float:
        before = max(states)
        assert call(step, Trigger.Request()).success
        probe.spin_until(lambda: max(states) > before, 10, "the stepped tick")
        probe.spin_for(0.3)
        assert max(states) == pytest.approx(before + 0.1, abs=1e-9) and abs(clock[-1] - max(states)) < 1e-9, "not exactly one tick"
        return max(states)

    future = trajectory(tuple(hold + [0.01, 0.0]), tuple(hold + [0.02, 0.0]))
    future.header.stamp = seconds_to_time(now + 0.3)
    pub.publish(future)
    probe.spin_until(lambda: status().get("accepted_trajectories") == "1", 10, "the future trajectory")
    ticks = [step_once() for _ in range(6)]
    for t, expected in zip(ticks, [hold, hold, hold, hold + [0.01, 0.0], hold + [0.02, 0.0], hold + [0.02, 0.0]]):
        assert np.array_equal(commands[round(t, 6)], expected), (t - now, commands[round(t, 6)], expected)

    now, base = ticks[-1], hold + [0.02, 0.0]
    past_points = [base + [0.0, -0.01], base + [0.005, 0.005]]  # at now - 0.1 and now: skipped
    later = [base + [0.0, 0.01 * i] for i in range(1, 5)]  # at now + 0.1 ... now + 0.4
    past = trajectory(*map(tuple, past_points + later))
    past.header.stamp = seconds_to_time(now - 0.2)
    pub.publish(past)
    probe.spin_until(lambda: status().get("accepted_trajectories") == "2", 10, "the trajectory stamped in the past")
    ticks = [step_once() for _ in range(4)]
    for t, expected in zip(ticks, later):
        assert np.array_equal(commands[round(t, 6)], expected), (t - now, commands[round(t, 6)], expected)
    assert not any(np.allclose(q, p, atol=1e-6) for q in commands.values() for p in past_points), "a past point ran"

    stale = trajectory(tuple(base), tuple(base))
    stale.header.stamp = seconds_to_time(ticks[-1] - 1.0)
    pub.publish(stale)
    probe.spin_until(lambda: status().get("rejected_trajectories") == "1", 10, "the trajectory that ended to be refused")
    assert "ends in the past" in status()["last_error"]

    assert call(pause, SetBool.Request(data=False)).success
    probe.spin_until(lambda: clock[-1] > ticks[-1] + 1.0, 20, "time to go on after resume")
    assert not call(step, Trigger.Request()).success
    probe.spin_until(lambda: status().get("paused") == "false" and float(status()["real_time_factor_measured"]) > 0.5,
                     20, "the measured real-time factor to recover")
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


def test_bad_steps_and_goals_are_named() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        nc.parse_step("{skill: push")
    with pytest.raises(ValueError, match="empty plan step"):
        nc.parse_step("  ")
    assert nc.parse_goal(nc.hold_goal("plan done")) == {"skill": "hold", "reason": "plan done"}
    with pytest.raises(ValueError, match="a hold goal is"):
        nc.parse_goal('{"skill": "hold", "until": 3}')
    with pytest.raises(ValueError, match="unknown object"):
        nc.parse_step('{"skill": "push", "object": "blue_block", "target": "left"}', present=("red_block",))
