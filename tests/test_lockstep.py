"""Lockstep: over ROS, the same seed gives the same episode as ``forethought eval``; the waits.

``forethought eval``'s episode (the evaluation API in-process: ``evaluate`` with the scripted
expert, one block, a fixed seed and task) against ``sim_node`` (``lockstep:=true``, the same seed
and task) + ``policy_controller`` (``execution:=sync``, ``policy:=expert``, ``use_sim_time:=true``)
over real rclpy / Fast DDS on loopback: the states the controller sees (rebuilt from
``joint_states`` and the block's pose, as its ``InputTopics`` does) and the setpoints the sim
applies (``joint_commands``) equal eval's observations and actions, step by step.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240)]
rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from forethought.models.evaluation import PolicySpec, build_policy, evaluate  # noqa: E402
from forethought.ros_ws.stamped import JOINT_STATES_TOPIC, StampedInputs, pose_topic, stamp_seconds  # noqa: E402
from forethought.sim import PUSH_BLOCKS_ID, scene  # noqa: E402

from ros_harness import Probe, ros_env, probe, spawn, node_args, assert_clean_exit, trajectory  # noqa: E402,F401  (fixtures are used by name)

SEED = 5
TASK = {"skill": "push", "object": "red_block", "target": "left"}
RATE_HZ = 10.0


class Recording:
    """A harness policy that records what it sees and does: ``obs[S]`` and ``action[A]`` per ``act``."""

    def __init__(self, policy: Any) -> None:
        self.policy, self.observations, self.actions = policy, [], []

    def reset(self, task: dict[str, Any] | None, seed: int) -> None:
        self.policy.reset(task, seed)

    def act(self, obs: np.ndarray) -> np.ndarray:
        action = self.policy.act(obs)
        self.observations.append(np.array(obs))
        self.actions.append(np.array(action))
        return action


def eval_episode() -> tuple[np.ndarray, np.ndarray, float]:
    """``forethought eval --policy expert --env-kwargs '{"n_blocks": 1}' --seeds SEED`` with TASK:
    its observations ``[N, S]``, actions ``[N, A]`` and final distance (m)."""
    expert = build_policy("expert", PolicySpec(None, PUSH_BLOCKS_ID, scene.OBS_DIM, scene.ACTION_DIM))
    policy = Recording(expert)
    report = evaluate(policy, PUSH_BLOCKS_ID, [SEED], "expert", env_kwargs={"n_blocks": 1}, task=TASK)
    episode = report.per_episode[0]
    assert episode.success and episode.steps == len(policy.actions) >= 10, episode
    return np.array(policy.observations), np.array(policy.actions), float(episode.final_distance)


def test_lockstep_episode_over_ros_equals_forethought_eval(probe: Probe, spawn) -> None:
    observations, actions, final_distance = eval_episode()
    n = len(actions)
    states: dict[int, JointState] = {}  # tick -> message; tick k is at sim time k / RATE_HZ
    poses: dict[int, PoseStamped] = {}
    commands: dict[int, np.ndarray] = {}
    tick = lambda m: round(stamp_seconds(m.header.stamp) * RATE_HZ)  # noqa: E731
    subscriptions = [
        probe.node.create_subscription(JointState, JOINT_STATES_TOPIC, lambda m: states.__setitem__(tick(m), m), 500),
        probe.node.create_subscription(PoseStamped, pose_topic("red_block"),
                                       lambda m: poses.__setitem__(tick(m), m), 500),
        probe.node.create_subscription(JointState, "joint_commands",
                                       lambda m: commands.__setitem__(tick(m), np.array(m.position)), 500)]
    probe.subscribe(DiagnosticArray, "status")
    task = json.dumps(TASK)
    sim, sim_log = spawn(node_args("forethought.ros_ws.sim_node", "sim_node", lockstep=True, lockstep_timeout_s=20.0,
                                   real_time_factor=20.0, n_blocks=1, seed=SEED, task=task,
                                   control_rate_hz=RATE_HZ), "sim_node")
    probe.spin_until(lambda: all(sub.get_publisher_count() > 0 for sub in subscriptions), 60,
                     "this probe to hear sim_node (it waits for the controller)")
    ctrl, ctrl_log = spawn(node_args("forethought.ros_ws.policy_controller", "policy_controller", policy="expert",
                                     model="", task=task, execution="sync", use_sim_time=True, objects=["red_block"],
                                     control_rate_hz=RATE_HZ), "policy_controller")
    done = lambda: all(k in states and k in poses and k in commands for k in range(1, n + 2))  # noqa: E731
    probe.spin_until(lambda: done() or sim.poll() is not None or ctrl.poll() is not None, 150,
                     f"{n + 1} lockstep ticks (sim_node log: {sim_log})")
    assert sim.poll() is None and ctrl.poll() is None, (sim_log.read_text()[-2000:], ctrl_log.read_text()[-2000:])
    sim_status = probe.status.get("/sim_node", {})

    inputs = StampedInputs(["red_block"], max_age_s=0.5)  # what the controller's InputTopics builds
    ros = []
    for k in range(1, n + 2):
        now = k / RATE_HZ
        inputs.on_pose("red_block", poses[k], now)
        inputs.on_joint_state(states[k], now)
        ros.append(inputs.observation(now))
    ros = np.array(ros)
    assert stamp_seconds(states[1].header.stamp) == pytest.approx(0.1)  # the start state is the first tick
    diff = np.abs(ros[:n] - observations).max(axis=1)
    first = int(np.argmax(diff > 1e-6)) if (diff > 1e-6).any() else None
    assert first is None, (f"step {first} of {n} differs from forethought eval by {diff[first]:.3g}: ros {ros[first]}, "
                           f"eval {observations[first]}; sim_node status {sim_status}; "
                           f"controller status {probe.status.get('/policy_controller')}")
    applied = np.array([commands[k + 2] for k in range(n)])  # a_k runs from tick k + 1 to k + 2
    assert np.abs(applied - actions).max() <= 1e-7, np.abs(applied - actions).max(axis=1)
    assert scene.step_distance(TASK, ros[n]) == pytest.approx(final_distance, abs=1e-6)
    assert scene.is_success(TASK, ros[n]) and not any(scene.is_success(TASK, o) for o in ros[:n])
    print(f"\nlockstep over ROS = forethought eval for all {n} steps of seed {SEED} (max difference: state "
          f"{np.abs(ros[:n] - observations).max():.1e}, setpoint {np.abs(applied - actions).max():.1e})")
    assert sim_status.get("lockstep_timeouts") == "0", sim_status
    assert_clean_exit(ctrl, ctrl_log)
    assert_clean_exit(sim, sim_log)


def test_lockstep_waits_for_each_command_and_times_out_holding(probe: Probe, spawn) -> None:
    """With this probe as the controller: no tick before it is connected; each tick waits for a
    command and applies its first point for the whole tick; without one it steps after
    ``lockstep_timeout_s`` (counted)."""
    states: dict[int, JointState] = {}
    commands: dict[int, np.ndarray] = {}
    tick = lambda m: round(stamp_seconds(m.header.stamp) * RATE_HZ)  # noqa: E731
    pub = probe.node.create_publisher(JointTrajectory, "joint_trajectory", 10)
    step = {"on": False, "by": np.zeros(2)}
    target = lambda msg: np.array(msg.position) + step["by"]  # noqa: E731

    def on_state(msg: JointState) -> None:  # a controller in sync: one trajectory per state
        states[tick(msg)] = msg
        if step["on"]:
            pub.publish(trajectory(tuple(target(msg)), tuple(target(msg))))
    probe.node.create_subscription(JointState, JOINT_STATES_TOPIC, on_state, 100)
    probe.node.create_subscription(JointState, "joint_commands",
                                   lambda m: commands.__setitem__(tick(m), np.array(m.position)), 100)
    probe.subscribe(DiagnosticArray, "status")
    status = lambda: probe.status.get("/sim_node", {})  # noqa: E731
    proc, log = spawn(node_args("forethought.ros_ws.sim_node", "sim_node", lockstep=True, lockstep_timeout_s=1.0,
                                real_time_factor=10.0, n_blocks=1, seed=1), "sim_node")
    message = lambda: probe.latest["status"].status[0].message if "status" in probe.latest else ""  # noqa: E731
    probe.spin_until(lambda: "waiting for a controller" in message(), 40, "sim_node to wait for a controller")
    assert not states  # neither the pose nor /clock has a reader here: not connected, no tick
    probe.node.create_subscription(PoseStamped, pose_topic("red_block"), lambda m: None, 10)
    probe.node.create_subscription(Clock, "/clock", lambda m: None, 10)
    probe.spin_until(lambda: 1 in states, 20, "the start state once connected")
    t0 = time.monotonic()
    probe.spin_until(lambda: all(k in states and k in commands for k in range(1, 5)), 20,
                     "three ticks without commands")
    assert time.monotonic() - t0 > 3 * 1.0 * 0.9, "stepped without waiting for commands"
    probe.spin_until(lambda: int(status().get("lockstep_timeouts", 0)) >= 3, 10, "the timeouts on status")
    assert all(np.array_equal(commands[k], commands[1]) for k in range(1, 5)), "moved without a command"

    first = max(states)
    step["on"], step["by"] = True, np.array([-0.01 * np.sign(states[first].position[0]), 0.0])  # toward the centre
    pub.publish(trajectory(tuple(target(states[first])), tuple(target(states[first]))))  # answer the waiting tick
    t0 = time.monotonic()
    probe.spin_until(lambda: all(k in states and k in commands for k in range(first, first + 11)), 20,
                     "ten answered ticks")
    assert time.monotonic() - t0 < 10 * 1.0 * 0.5, "answered ticks waited for the timeout"
    for k in range(first, first + 9):  # the command answering tick k is the setpoint of tick k -> k + 1
        assert np.array_equal(commands[k + 1], target(states[k])), (k, commands[k + 1], target(states[k]))
    assert status()["clipped_trajectories"] == "0" and status()["rejected_trajectories"] == "0"
    assert_clean_exit(proc, log)
