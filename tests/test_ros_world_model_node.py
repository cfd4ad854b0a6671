"""world_model_node: surprise over ROS, pairing commands with observations by their stamps.

Over real rclpy / Fast DDS on loopback; the harness is ``ros_harness``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(150)]
rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.sim import scene  # noqa: E402

from forethought.ros_ws.input_topics import seconds_to_time  # noqa: E402

from ros_harness import TASK, InputPublisher, Probe, ros_env, probe, spawn, node_args, assert_clean_exit, assert_ros2_control_accepts  # noqa: E402,F401  (fixtures are used by name)


def test_world_model_node_reports_low_surprise_on_a_quiet_push(probe: Probe, spawn) -> None:
    """sim_node + the scripted expert + world_model_node (+ the executive reading ``surprise``), on sim time:
    commands pair with the observations they led to by their stamps."""
    probe.subscribe(DiagnosticArray, "status")
    probe.subscribe(JointState, "joint_states")
    reports: list[dict[str, str]] = []
    levels: list[bytes] = []

    def keep(msg: DiagnosticArray) -> None:
        (st,) = msg.status
        assert st.name == "/world_model_node/surprise"
        reports.append({kv.key: kv.value for kv in st.values})
        levels.append(st.level)
    probe.node.create_subscription(DiagnosticArray, "surprise", keep, 100)
    blocks = list(scene.BLOCK_NAMES)  # sim_node is the clock: the others run on sim time, as in the graphs
    procs = [spawn(node_args("forethought.ros_ws.sim_node", "sim_node", real_time_factor=2.0, n_blocks=3, seed=0,
                             objects=blocks), "sim_node"),
             spawn(node_args("forethought.ros_ws.policy_controller", "policy_controller", task="", objects=blocks,
                             use_sim_time=True), "policy_controller"),
             spawn(node_args("forethought.ros_ws.world_model_node", "world_model_node", objects=blocks, use_sim_time=True),
                   "world_model_node"),
             spawn(node_args("forethought.ros_ws.executive", "executive", objects=blocks, use_sim_time=True), "executive")]
    sent: list[JointTrajectory] = []
    probe.node.create_subscription(JointTrajectory, "joint_trajectory", sent.append, 100)
    goal = probe.node.create_publisher(String, "goal", 10)
    probe.spin_until(lambda: reports and "joint_states" in probe.latest and goal.get_subscription_count() >= 2, 90,
                     "surprise reports and the controller")
    p0 = np.array(probe.latest["joint_states"].position)
    goal.publish(String(data=TASK))  # the push starts now, while world_model_node watches
    probe.spin_until(lambda: np.linalg.norm(np.array(probe.latest["joint_states"].position) - p0) > 0.02, 30,
                     "the expert to move the pusher")
    n0 = len(reports)
    probe.spin_until(lambda: len(reports) >= n0 + 40, 30, "40 surprise reports while the expert pushes")
    values = [float(r["surprise"]) for r in reports[n0:]]
    print(f"\nsurprise over {len(values)} steps of a push: median {np.median(values):.4f}, max {max(values):.4f}")
    assert np.all(np.isfinite(values)) and min(values) >= 0 and max(values) > min(values)  # the scene moves
    from forethought.ros_ws.world_model_node import PARAMS

    assert all(float(r["threshold"]) == pytest.approx(PARAMS["surprise_threshold"][0]) for r in reports)
    assert all(level == nc.OK for level in levels), values
    assert [int(r["steps"]) for r in reports[n0:]] == list(range(int(reports[n0]["steps"]), int(reports[n0]["steps"]) + len(values)))

    wm = lambda: probe.status.get("/world_model_node", {})  # noqa: E731
    last = int(reports[-1]["steps"])
    probe.spin_until(lambda: int(wm().get("steps", 0)) >= last, 10, "a world_model_node status after the reports")
    unpaired = int(wm()["unpaired_observations"])  # a sample lost while the readers match under load restarts it
    n1 = len(reports)
    probe.spin_until(lambda: len(reports) >= n1 + 20, 20, "20 more surprise reports")
    last = int(reports[-1]["steps"])
    probe.spin_until(lambda: int(wm().get("steps", 0)) >= last and probe.status.get("/executive", {}).get("surprise", "None")
                     != "None", 10, "the statuses to report the surprise")
    assert int(wm()["unpaired_observations"]) == unpaired, "in steady state every observation pairs with its command"
    assert wm()["above_threshold"] == "0" and int(wm()["episodes"]) == 1, json.dumps(wm())
    assert probe.status["/executive"]["surprise_warnings"] == "0"
    assert_ros2_control_accepts(sent)
    for proc, log in procs:
        assert_clean_exit(proc, log)


def test_world_model_node_matches_the_offline_trace_and_ignores_bad_input(probe: Probe, spawn) -> None:
    """Commands and observations of an expert episode, sent by this probe: the node's surprise is
    ``surprise_trace`` of the same episode; a NaN observation and a wrong-size command are counted, not fatal."""
    import gymnasium as gym

    import forethought.sim.envs  # noqa: F401  (registers the envs)
    from forethought.models.world_model.modeling_world_model import LatentWorldModel
    from forethought.models.world_model.probe import LinearProbe
    from forethought.models.world_model.surprise import surprise_trace
    from forethought.ros_ws.world_model_node import PARAMS
    from forethought.sim.experts import make_expert

    env = gym.make("forethought/PushBlocks-v0", n_blocks=3)
    step = json.loads(TASK)
    obs, _ = env.reset(seed=2, options={"task": step})
    expert = make_expert("forethought/PushBlocks-v0")
    xs, actions = [obs], []
    for _ in range(12):
        a = expert.act(obs, step).astype(np.float32)
        obs, *_ = env.step(a)
        xs.append(obs)
        actions.append(a)
    env.close()
    model = LatentWorldModel.from_pretrained(PARAMS["world_model"][0])
    assert PARAMS["surprise_space"][0] == "positions"  # the default: the probed positions' surprise
    readout = LinearProbe.load(PARAMS["world_model"][0], model.config.embed_dim, model.config.obs_dim)
    expected = surprise_trace(model, np.stack(xs), np.stack(actions), probe=readout)

    probe.subscribe(DiagnosticArray, "status")
    reports: list[float] = []
    probe.node.create_subscription(
        DiagnosticArray, "surprise", lambda m: reports.append(float({k.key: k.value for k in m.status[0].values}["surprise"])), 50)
    cmd_pub = probe.node.create_publisher(JointState, "joint_commands", 10)
    inputs = InputPublisher(probe)
    # sync_tolerance_s 0: an observation needs one stamp on every input (this probe sends exact ones)
    proc, log = spawn(node_args("forethought.ros_ws.world_model_node", "world_model_node", max_age_s=8.0,
                                sync_tolerance_s=0.0, objects=list(scene.BLOCK_NAMES)), "world_model_node")
    probe.spin_until(lambda: cmd_pub.get_subscription_count() > 0 and inputs.joints.get_subscription_count() > 0
                     and "/world_model_node" in probe.status, 60, "world_model_node to subscribe")
    status = lambda: probe.status.get("/world_model_node", {})  # noqa: E731

    def command(position: Any, stamp: float) -> None:
        msg = JointState(name=list(scene.PUSHER_JOINTS), position=[float(v) for v in position])
        msg.header.stamp = seconds_to_time(stamp)
        cmd_pub.publish(msg)

    def send(position: Any, observation: np.ndarray, command_first: bool = True) -> None:
        """One tick: the command and the observation it led to, with one stamp, in either order."""
        stamp = time.time()
        if position is not None and command_first:
            command(position, stamp)
            probe.spin_for(0.02)
        inputs.publish(observation, stamp)
        probe.spin_for(0.05)
        if position is not None and not command_first:
            command(position, stamp)
            probe.spin_for(0.02)

    send(None, xs[0])  # before any command: the episode starts here
    for k, (a, o) in enumerate(zip(actions, xs[1:])):
        send(a, o, command_first=k % 3 != 1)  # every third command lands after its observation
    first = model.config.frameskip  # horizon 1: no value for the first block
    probe.spin_until(lambda: len(reports) >= len(xs) - first, 10, "a surprise report per step after the first block")
    assert np.allclose(reports, expected[first:], rtol=1e-4, atol=1e-9), (reports, expected[first:].tolist())
    probe.spin_until(lambda: status().get("steps") == str(len(reports)), 5, "the status to count the steps")
    assert status()["unpaired_observations"] == "0" and status()["refused_malformed"] == "0"

    bad = xs[-1].copy()
    bad[3] = np.nan
    send(actions[-1], bad)  # a command, then its observation with a NaN
    probe.spin_until(lambda: status().get("refused_malformed") == "1", 10, "the NaN observation to be counted")
    cmd_pub.publish(JointState(name=list(scene.PUSHER_JOINTS), position=[0.1, 0.2, 0.3]))
    probe.spin_until(lambda: status().get("refused_commands") == "1", 10, "the wrong-size command to be counted")
    command(actions[0], time.time() - 60.0)  # a replayed command: its stamp is far from the clock
    probe.spin_until(lambda: status().get("refused_commands") == "2", 10, "the replayed command to be counted")
    assert proc.poll() is None
    n = len(reports)
    for a, o in zip(actions, xs[1:]):  # two commands before this observation: a restart, then it runs again
        send(a, o)
    probe.spin_until(lambda: len(reports) >= n + len(actions) - first, 10, "surprise reports after the restart")
    assert np.allclose(reports[n:], surprise_trace(model, np.stack(xs[1:]), np.stack(actions[1:]), probe=readout)[first:],
                       rtol=1e-4, atol=1e-9)
    probe.spin_until(lambda: status().get("unpaired_observations") == "1", 5, f"the restart to be counted: {status()}")
    text = assert_clean_exit(proc, log)
    assert "input refused: joint_states: NaN" in text and "joint_commands ignored" in text


def test_world_model_node_refuses_an_unknown_surprise_space(spawn) -> None:
    proc, log = spawn(node_args("forethought.ros_ws.world_model_node", "world_model_node", surprise_space="pixels"),
                      "bad_space")
    assert proc.wait(timeout=60) == 2
    text = log.read_text()
    assert "surprise_space 'pixels' must be one of ['latent', 'positions']" in text and "Traceback" not in text


# ------------------------------------------------------------------------ pure helpers (no DDS)
def test_surprise_tracker_pairs_like_the_monitor_and_restarts() -> None:
    """The world_model_node's pairing logic (no DDS) gives ``SurpriseMonitor``'s values for the same steps."""
    import gymnasium as gym

    import forethought.sim.envs  # noqa: F401  (registers the envs)
    from forethought.models.world_model.modeling_world_model import LatentWorldModel
    from forethought.models.world_model.surprise import SurpriseMonitor
    from forethought.ros_ws.world_model_node import PARAMS, SurpriseTracker, read_command

    model = LatentWorldModel.from_pretrained(PARAMS["world_model"][0])
    env = gym.make("forethought/PushBlocks-v0", n_blocks=3)
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    xs, actions = [obs], []
    for _ in range(14):
        a = rng.uniform(-0.2, 0.2, 2).astype(np.float32)
        obs, *_ = env.step(a)
        xs.append(obs)
        actions.append(a)
    env.close()
    direct = SurpriseMonitor(model)
    direct.reset(xs[0])
    expected = [None] + [direct.step(a, o) for a, o in zip(actions, xs[1:])]

    tracker = SurpriseTracker(SurpriseMonitor(model), threshold=0.3, max_gap_s=1.0)
    assert tracker.observe(xs[0], 0.1) == []  # waits: its command (stamped <= 0.1) may still come
    assert tracker.episodes == 0 and tracker.observations
    # the command stamped 0.2 tells that none is coming for 0.1: the episode starts at xs[0]
    assert tracker.command(read_command(list(reversed(scene.PUSHER_JOINTS)), actions[0][::-1]), 0.2) == []  # any order
    assert tracker.episodes == 1 and tracker.unpaired == 0
    got = []
    for t, (a, o) in enumerate(zip(actions, xs[1:])):  # command t and observation t + 1 share the stamp 0.2 + 0.1 t
        stamp = 0.2 + 0.1 * t
        if t == 0:
            got.append(tracker.observe(o, stamp))  # its command came first
        elif t % 2:
            got.append(tracker.observe(o, stamp))  # the observation first: it waits for its command
            assert got[-1] == [] and len(tracker.observations) == 1
            got[-1] = tracker.command(a, stamp)
        else:
            assert tracker.command(a, stamp) == []
            got.append(tracker.observe(o, stamp))
    assert [v == [] for v in got] == [v is None for v in expected[1:]]
    assert np.allclose([v for (v,) in filter(None, got)], [v for v in expected if v is not None], rtol=1e-6)
    values = [v for v in expected if v is not None]
    assert tracker.steps == len(values) and tracker.max == pytest.approx(max(values))
    assert tracker.above == sum(v > 0.3 for v in values)
    assert tracker.observe(xs[1], 0.1) == [] and not tracker.observations  # not newer: ignored

    now = 0.2 + 0.1 * len(actions)
    assert tracker.observe(xs[-1], now) == []
    assert tracker.command(actions[0], now + 0.05) == [] and tracker.unpaired == 1  # none came for it: restart
    tracker.command(actions[1], now + 0.06)
    tracker.observe(xs[-1], now + 0.1)
    assert tracker.command(actions[0], now + 0.15) == [] and tracker.unpaired == 2  # two commands: restart
    assert tracker.observe(xs[1], now + 5.0) == [] and tracker.episodes == 1
    tracker.command(actions[0], now + 4.99)  # stamped before that observation: it was due to it
    assert tracker.observe(xs[1], now + 5.1) == [] and tracker.episodes == 2  # a gap: a new episode
    assert tracker.unpaired == 2 and not tracker.commands
    assert tracker.command(actions[2], now + 5.2) == [] and tracker.unpaired == 3  # nothing left for now + 5.1
    for bad in ((["pusher_x"], [0.1]), (["pusher_x", "pusher_y"], [0.1]), (list(scene.PUSHER_JOINTS), [0.1, float("nan")])):
        with pytest.raises(ValueError):
            read_command(*bad)
