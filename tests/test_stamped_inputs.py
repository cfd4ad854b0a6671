"""Stamped inputs (``ros_ws/stamped.py``): joint_states + per-object PoseStamped -> the 16-float
observation, with stale, replayed, reordered, future and wrong-frame data refused.

The pure checks use the real message classes (no rclpy context); the last test reads what a
running ``sim_node`` publishes over loopback Fast DDS and rebuilds its ``observation`` exactly.
"""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

geometry_msgs = pytest.importorskip("geometry_msgs.msg")
from sensor_msgs.msg import JointState  # noqa: E402

from forethought.ros_ws.stamped import (  # noqa: E402
    REFUSAL_KINDS, TABLE_FRAME, StampedInputs, pose_topic, quaternion_from_yaw, yaw_from_quaternion,
)
from forethought.sim import scene  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OBJECTS = ("red_block", "green_block")


def stamp(t: float):
    ns = int(round(t * 1e9))
    msg = JointState().header.stamp
    msg.sec, msg.nanosec = ns // 10**9, ns % 10**9
    return msg


def joint_state(t: float, q=(0.01, -0.02), dq=(0.3, -0.1), names=scene.PUSHER_JOINTS) -> JointState:
    msg = JointState(name=list(names), position=[float(v) for v in q], velocity=[float(v) for v in dq])
    msg.header.stamp = stamp(t)
    return msg


def pose(t: float, x: float, y: float, yaw: float, frame: str = TABLE_FRAME):
    msg = geometry_msgs.PoseStamped()
    msg.header.stamp, msg.header.frame_id = stamp(t), frame
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = x, y, 0.02
    o = msg.pose.orientation
    o.x, o.y, o.z, o.w = quaternion_from_yaw(yaw)
    return msg


def fill(inputs: StampedInputs, t: float) -> None:
    inputs.on_joint_state(joint_state(t), now=t)
    inputs.on_pose("red_block", pose(t, 0.1, -0.05, 1.0), now=t)
    inputs.on_pose("green_block", pose(t, -0.12, 0.2, -0.3), now=t)


def test_builds_the_observation_layout() -> None:
    inputs = StampedInputs(OBJECTS, max_age_s=0.3)
    fill(inputs, 100.0)
    obs = inputs.observation(now=100.1)
    assert obs.dtype == np.float32 and obs.shape == (scene.OBS_DIM,)
    np.testing.assert_allclose(obs[:4], [0.01, -0.02, 0.3, -0.1], atol=1e-6)
    np.testing.assert_allclose(obs[scene.block_slice("red_block")], [1, 0.1, -0.05, scene.wrap_yaw(1.0)], atol=1e-6)
    np.testing.assert_allclose(obs[scene.block_slice("green_block")], [1, -0.12, 0.2, -0.3], atol=1e-6)
    assert not obs[scene.block_slice("blue_block")].any()  # absent: all zeros, as in the sim
    assert inputs.refusals == dict.fromkeys(REFUSAL_KINDS, 0)


@pytest.mark.parametrize("yaw", [-3.0, -0.7, 0.0, 0.5, 2.4, math.pi - 1e-6])
def test_yaw_round_trips_through_a_quaternion(yaw: float) -> None:
    assert yaw_from_quaternion(*quaternion_from_yaw(yaw)) == pytest.approx(yaw, abs=1e-9)


def refused(inputs: StampedInputs, kind: str, call) -> str:
    before = dict(inputs.refusals)
    with pytest.raises(ValueError) as err:
        call()
    assert inputs.refusals[kind] == before[kind] + 1, inputs.refusals
    assert inputs.last_refusal == str(err.value) and inputs.last_refusal_kind == kind
    assert inputs.status_values()[f"refused_{kind}"] == inputs.refusals[kind]
    return str(err.value)


def test_stale_on_arrival_and_at_use() -> None:
    inputs = StampedInputs(OBJECTS, max_age_s=0.3)
    # The replay: a 6 s old message is refused on arrival, every copy.
    for _ in range(3):
        assert "6.000 s old" in refused(inputs, "stale", lambda: inputs.on_joint_state(joint_state(94.0), now=100.0))
    assert "nothing received" in refused(inputs, "stale", lambda: inputs.observation(now=100.0))
    fill(inputs, 100.0)
    inputs.observation(now=100.3)  # exactly max_age_s old: still fresh
    assert "red_block" not in refused(inputs, "stale", lambda: inputs.observation(now=100.31))  # joint_states first
    inputs.on_joint_state(joint_state(100.3), now=100.31)
    assert "red_block" in refused(inputs, "stale", lambda: inputs.observation(now=100.31))


def test_replayed_and_reordered_messages_are_refused() -> None:
    inputs = StampedInputs(OBJECTS, max_age_s=1.0)
    fill(inputs, 10.0)
    for t in (10.0, 9.95):  # the same stamp again (a replay), then an older one (reordered)
        refused(inputs, "out_of_order", lambda: inputs.on_pose("red_block", pose(t, 0.3, 0.3, 0.0), now=10.05))
        refused(inputs, "out_of_order", lambda: inputs.on_joint_state(joint_state(t, q=(0.2, 0.2)), now=10.05))
    obs = inputs.observation(now=10.05)
    assert obs[scene.block_slice("red_block")][1] == pytest.approx(0.1) and obs[0] == pytest.approx(0.01)
    inputs.on_pose("red_block", pose(10.01, 0.3, 0.3, 0.0), now=10.05)  # newer: accepted
    assert inputs.observation(now=10.05)[scene.block_slice("red_block")][1] == pytest.approx(0.3)


def test_wrong_frame_future_and_malformed_are_refused() -> None:
    inputs = StampedInputs(OBJECTS, max_age_s=0.5)
    assert "'camera'" in refused(inputs, "wrong_frame", lambda: inputs.on_pose("red_block", pose(5.0, 0, 0, 0, "camera"), now=5.0))
    refused(inputs, "future", lambda: inputs.on_pose("red_block", pose(6.0, 0, 0, 0), now=5.0))
    refused(inputs, "malformed", lambda: inputs.on_pose("blue_block", pose(5.0, 0, 0, 0), now=5.0))  # not expected
    refused(inputs, "malformed", lambda: inputs.on_pose("red_block", pose(5.0, math.nan, 0, 0), now=5.0))
    refused(inputs, "malformed", lambda: inputs.on_joint_state(joint_state(5.0, names=("pusher_x", "elbow")), now=5.0))
    no_velocity = joint_state(5.0)
    no_velocity.velocity = []
    refused(inputs, "malformed", lambda: inputs.on_joint_state(no_velocity, now=5.0))
    assert inputs.latest == {}  # nothing refused was kept


def test_extra_joints_in_any_order_are_fine() -> None:
    inputs = StampedInputs(("red_block",), max_age_s=0.5)
    msg = JointState(name=["gripper", "pusher_y", "pusher_x"], position=[9.0, 0.2, 0.1], velocity=[9.0, -1.0, 1.0])
    msg.header.stamp = stamp(1.0)
    inputs.on_joint_state(msg, now=1.0)
    inputs.on_pose("red_block", pose(1.0, 0, 0, 0), now=1.0)
    np.testing.assert_allclose(inputs.observation(now=1.0)[:4], [0.1, 0.2, 1.0, -1.0])


@pytest.mark.parametrize("kwargs, field", [
    ({"objects": ("red_block", "red_block"), "max_age_s": 1.0}, "twice"),
    ({"objects": ("purple_block",), "max_age_s": 1.0}, "purple_block"),
    ({"objects": OBJECTS, "max_age_s": 0.0}, "max_age_s"),
    ({"objects": OBJECTS, "max_age_s": math.nan}, "max_age_s"),
    ({"objects": OBJECTS, "max_age_s": 1.0, "frame": ""}, "frame"),
    ({"objects": OBJECTS, "max_age_s": 1.0, "joint_names": ("pusher_x",)}, "joint_names"),
])
def test_bad_configuration_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        StampedInputs(**kwargs)


# ---------------------------------------------------------------- against a running sim_node
@pytest.mark.ros
@pytest.mark.timeout(120)
def test_sim_node_topics_rebuild_its_observation(tmp_path: Path) -> None:
    rclpy = pytest.importorskip("rclpy")
    from rclpy.executors import SingleThreadedExecutor
    import gymnasium as gym

    import forethought.sim.envs  # noqa: F401  (registers the envs)
    from forethought.runtime import apply_defaults
    from forethought.sim import PUSH_BLOCKS_ID

    domain = random.randint(102, 200)
    env = apply_defaults(dict(os.environ))
    env.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(domain), ROS_LOG_DIR=str(tmp_path))
    log = (tmp_path / "sim_node.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "forethought.ros_ws.sim_node", "--ros-args", "-r", "__node:=sim_node",
         "--params-file", str(ROOT / "launch" / "sim.yaml"), "-p", "n_blocks:=2", "-p", "seed:=7",
         "-p", """task:='{"skill": "push", "object": "green_block", "target": "left"}'"""],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    try:
        node = rclpy.create_node("stamped_probe", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        joints: list[JointState] = []
        poses: dict[str, list] = {b: [] for b in OBJECTS}
        node.create_subscription(JointState, "joint_states", joints.append, 100)
        for b in OBJECTS:
            node.create_subscription(geometry_msgs.PoseStamped, pose_topic(b), poses[b].append, 100)
        deadline = time.monotonic() + 60
        while len(joints) < 20 or min(len(v) for v in poses.values()) < 20:
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "sim_node.log").read_text()[-2000:]
            executor.spin_once(timeout_sec=0.05)
        assert names_of_pose_topics(node) >= {f"/{pose_topic(b)}" for b in OBJECTS}
        assert "/objects/blue_block/pose" not in names_of_pose_topics(node)  # only the blocks present
        assert all(p.header.frame_id == TABLE_FRAME for v in poses.values() for p in v)
        by_stamp = {b: {(p.header.stamp.sec, p.header.stamp.nanosec): p for p in v} for b, v in poses.items()}
        inputs, rebuilt = StampedInputs(OBJECTS, max_age_s=0.5), []
        heard_by_all = [js for js in joints  # the pose topics may have matched a tick or two after joint_states
                        if all((js.header.stamp.sec, js.header.stamp.nanosec) in by_stamp[b] for b in OBJECTS)]
        assert len(heard_by_all) >= 16, "joint_states and the poses share too few stamps"
        for js in heard_by_all[:16]:  # the same stamp on joint_states and every pose of one tick
            key = (js.header.stamp.sec, js.header.stamp.nanosec)
            now = key[0] + 1e-9 * key[1]
            inputs.on_joint_state(js, now=now)
            for b in OBJECTS:
                inputs.on_pose(b, by_stamp[b][key], now=now)
            rebuilt.append(inputs.observation(now=now))
            assert np.allclose(rebuilt[-1][scene.PUSHER_POS], js.position, atol=1e-6)
        # with no command the scene stays at the episode's start state (eval's reset), whichever tick
        # the probe heard first (discovery may take a few); ticks are one sim period apart
        stamps = [js.header.stamp.sec + 1e-9 * js.header.stamp.nanosec for js in heard_by_all[:16]]
        assert np.allclose(np.diff(stamps), 0.1, atol=1e-6), stamps
        start, _ = gym.make(PUSH_BLOCKS_ID, n_blocks=2).reset(
            seed=7, options={"task": {"skill": "push", "object": "green_block", "target": "left"}})
        assert np.allclose(rebuilt[0], start, atol=1e-5), (rebuilt[0], start)
        assert inputs.refusals == dict.fromkeys(REFUSAL_KINDS, 0)
        executor.shutdown()
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def names_of_pose_topics(node) -> set[str]:
    return {name for name, _ in node.get_topic_names_and_types() if name.startswith("/objects/")}


def test_helper_is_pure() -> None:
    # Learning code and tests use it without a ROS install: no rclpy, no simulator.
    code = ("import json, sys, forethought.ros_ws.stamped; "
            "print(json.dumps([m for m in ('rclpy', 'mujoco', 'gymnasium') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_fresh_objects_are_the_ones_seen_within_max_age() -> None:
    inputs = StampedInputs(OBJECTS, max_age_s=0.5)
    assert inputs.fresh_objects(now=10.0) is None  # no pose yet
    inputs.on_pose("green_block", pose(9.9, 0.0, 0.1, 0.0), now=10.0)
    assert inputs.fresh_objects(now=10.0) == ("green_block",)
    inputs.on_pose("red_block", pose(10.2, 0.1, 0.0, 0.0), now=10.3)
    assert inputs.fresh_objects(now=10.3) == ("red_block", "green_block")  # objects order
    assert inputs.fresh_objects(now=10.6) == ("red_block",)  # green is 0.7 s old
