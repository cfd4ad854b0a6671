"""policy_controller: the chunk contract, limits, stamped inputs, async execution, holding after done,
refusal and cancel.

Over real rclpy / Fast DDS on loopback; the harness is ``ros_harness``. Without ``sim_node`` the
controller runs on the system clock, and the probe stamps its inputs with wall-clock time.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(150)]
rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.ros_ws.stamped import pose_topic  # noqa: E402
from forethought.runtime import pretrained_dir  # noqa: E402
from forethought.sim import scene  # noqa: E402

from ros_harness import (TASK, InputPublisher, Probe, ros_env, probe, spawn, node_args, assert_clean_exit,  # noqa: E402,F401  (fixtures are used by name)
                         assert_ros2_control_accepts, scene_obs)

CONTROLLER = "forethought.ros_ws.policy_controller"
OBS = scene_obs((0.0, 0.0), {"red_block": (0.05, 0.0)})


def controller_message(probe: Probe) -> str:
    """The message of the controller's latest ``status`` ("running" or "holding: <why>")."""
    msg = probe.latest.get("status")
    return msg.status[0].message if msg is not None else ""


def stream(probe: Probe, inputs: InputPublisher, seconds: float, until=lambda: True, timeout: float = 10.0) -> float:
    """Publish ``OBS`` stamped now every 0.1 s (a driver and a perception node at 10 Hz) for at least
    ``seconds``, then until ``until()`` (fail after ``timeout``); return the last stamp (s)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds or not until():
        if time.monotonic() - t0 > seconds + timeout:
            pytest.fail(f"timed out after {seconds + timeout} s of inputs")
        stamp = time.time()
        inputs.publish(OBS, stamp)
        probe.spin_for(0.1)
    return stamp


@pytest.mark.parametrize("execution", ["sync", "async"])
def test_policy_controller_acts_within_limits_and_refuses_nan(probe: Probe, spawn, execution: str) -> None:
    probe.subscribe(JointTrajectory, "joint_trajectory")
    probe.subscribe(DiagnosticArray, "status")
    sent: list[JointTrajectory] = []
    probe.node.create_subscription(JointTrajectory, "joint_trajectory", sent.append, 100)
    goal_pub = probe.node.create_publisher(String, "goal", 10)
    inputs = InputPublisher(probe)
    proc, log = spawn(node_args(CONTROLLER, "policy_controller", policy="expert", model="", task="", execution=execution),
                      "policy_controller")
    probe.spin_until(lambda: goal_pub.get_subscription_count() > 0, 60, "policy_controller to subscribe")
    inputs.publish(OBS, time.time() - 0.4)  # stale 0.1 s after it lands: nothing may act on it after the goal
    probe.spin_for(0.5)
    assert "joint_trajectory" not in probe.latest  # no goal yet: nothing is sent
    status = lambda: probe.status.get("/policy_controller", {})  # noqa: E731
    goal_pub.publish(String(data='{"skill": "push", "object": "purple_block", "target": "left"}'))
    probe.spin_until(lambda: status().get("bad_goals") == "1", 10, "the bad goal to be counted")
    goal_pub.publish(String(data=TASK))
    probe.spin_until(lambda: status().get("task", "None") != "None", 10, "the goal to be taken")
    bad = OBS.copy()
    bad[1] = np.nan
    inputs.publish(bad)
    probe.spin_until(lambda: status().get("refused_malformed") == "1", 10, "the NaN input to be refused")
    assert "joint_trajectory" not in probe.latest
    assert controller_message(probe).startswith("holding: input refused: joint_states: NaN")
    inputs.publish(OBS)
    probe.spin_until(lambda: "joint_trajectory" in probe.latest, 10, "a command for a good observation")
    cmd = probe.latest["joint_trajectory"]
    assert list(cmd.joint_names) == list(scene.PUSHER_JOINTS) and len(cmd.points) == 2  # the expert's action, then rest
    assert cmd.points[0].positions == cmd.points[1].positions
    goal_pub.publish(String(data=nc.hold_goal("test")))  # moving -> one trajectory to rest, then nothing
    probe.spin_until(lambda: status().get("holds") == "1" and status().get("moving") == "false", 10, "the hold")
    probe.spin_for(0.3)  # the trajectory to rest, sent before that status, may be taken a wake after it
    n = len(sent)
    stream(probe, inputs, 0.5)
    assert len(sent) == n and status()["task"] == "None", "a held controller sent motion"
    assert status()["execution"] == execution
    assert_ros2_control_accepts(sent)
    assert_clean_exit(proc, log)


def test_stale_replayed_and_wrong_frame_inputs_make_it_hold_and_say_why(probe: Probe, spawn) -> None:
    """Moving on fresh inputs, then each bad input: one trajectory to rest, no motion after it, and
    ``status`` names the refusal; fresh inputs again resume motion. A duplicate of a fresh message
    (DDS duplicate, reordered delivery) is refused and counted, but the robot keeps going."""
    probe.subscribe(DiagnosticArray, "status")
    sent: list[JointTrajectory] = []
    probe.node.create_subscription(JointTrajectory, "joint_trajectory", sent.append, 100)
    inputs = InputPublisher(probe)
    proc, log = spawn(node_args(CONTROLLER, "policy_controller", policy="expert", model="", task=TASK),
                      "policy_controller")
    status = lambda: probe.status.get("/policy_controller", {})  # noqa: E731
    probe.spin_until(lambda: inputs.joints.get_subscription_count() > 0 and status(), 60, "policy_controller")
    for kind, bad_input, why in (
            ("stale", lambda last: inputs.publish(OBS, time.time() - 6.0), "old on arrival"),  # the replay
            ("wrong_frame", lambda last: inputs.publish(OBS, frame="map"), "frame 'map'")):
        n = len(sent)
        last = stream(probe, inputs, 1.0, until=lambda: status().get("moving") == "true" and len(sent) > n + 3)
        holds = int(status()["holds"])
        bad_input(last)
        probe.spin_until(lambda: status().get(f"refused_{kind}", "0") != "0" and status().get("moving") == "false",
                         10, f"the {kind} input to be refused")
        assert controller_message(probe).startswith("holding: input refused") and why in controller_message(probe)
        assert why in status()["last_input_refusal"] and int(status()["holds"]) == holds + 1
        probe.spin_for(0.3)  # the trajectory to rest, sent before that status, may be taken a wake after it
        n = len(sent)
        probe.spin_for(1.5)  # no fresh inputs: nothing but the trajectory to rest, sent already
        assert len(sent) == n, f"motion after a {kind} input"
    last = stream(probe, inputs, 1.0, until=lambda: status().get("moving") == "true")
    holds = int(status()["holds"])
    inputs.publish(OBS, last)  # a duplicate of the last fresh set: every source out of order
    stamp = time.time()
    inputs.publish(OBS, stamp)
    inputs.publish(OBS, stamp)  # and a duplicate of a fresh one
    n = len(sent)
    stream(probe, inputs, 1.0, until=lambda: int(status().get("refused_out_of_order", "0")) >= 2 and len(sent) > n + 3)
    assert "not newer than the last accepted" in status()["last_input_refusal"]
    assert status()["moving"] == "true" and int(status()["holds"]) == holds, "a duplicate made it hold"
    assert_ros2_control_accepts(sent)
    assert_clean_exit(proc, log)


def test_a_robot_moved_while_holding_is_planned_from_where_it_is(probe: Probe, spawn) -> None:
    """After a hold, the pusher is moved 15 cm by something else (a sim reset): the next goal's first
    trajectory starts from the measured position, not from the old setpoint, and needs no clipping
    (``command_timeout_s`` long: the watchdog does not re-sync the model in time)."""
    probe.subscribe(DiagnosticArray, "status")
    sent: list[JointTrajectory] = []
    probe.node.create_subscription(JointTrajectory, "joint_trajectory", sent.append, 100)
    goal_pub = probe.node.create_publisher(String, "goal", 10)
    inputs = InputPublisher(probe)
    proc, log = spawn(node_args(CONTROLLER, "policy_controller", policy="expert", model="", task=TASK,
                                command_timeout_s=30.0), "policy_controller")
    status = lambda: probe.status.get("/policy_controller", {})  # noqa: E731
    probe.spin_until(lambda: inputs.joints.get_subscription_count() > 0 and status(), 60, "policy_controller")
    stream(probe, inputs, 1.0, until=lambda: status().get("moving") == "true")
    goal_pub.publish(String(data=nc.hold_goal("test")))
    probe.spin_until(lambda: status().get("moving") == "false" and status().get("holds") == "1", 10, "the hold")
    old = np.array(sent[-1].points[-1].positions)  # where the model of the robot came to rest
    moved = OBS.copy()
    moved[scene.PUSHER_POS] = (old[0], old[1] + 0.15)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.0:  # the trajectory to rest has ended; the robot is elsewhere
        inputs.publish(moved)
        probe.spin_for(0.1)
    n, commands = len(sent), int(status()["commands"])
    goal_pub.publish(String(data=TASK))
    t0 = time.monotonic()
    while len(sent) == n:
        assert time.monotonic() - t0 < 10, "no trajectory for the goal"
        inputs.publish(moved)
        probe.spin_for(0.1)
    first = np.array(sent[n].points[0].positions)
    here = moved[scene.PUSHER_POS].astype(float)
    step = 0.8 / 10.0  # max_velocity x control period (the defaults)
    assert np.linalg.norm(first - here) <= step + 1e-6 and np.linalg.norm(first - here) < np.linalg.norm(first - old)
    probe.spin_until(lambda: int(status()["commands"]) > commands, 10, "status after the goal's trajectory")
    assert status()["clipped_trajectories"] == "0", status()
    assert_clean_exit(proc, log)


def test_async_execution_misses_no_control_tick(probe: Probe, spawn) -> None:
    """The proposer (8-action chunks) planned on the worker thread, inputs at 10 Hz: every control
    tick runs on time with setpoints ahead (``missed_ticks`` 0), replans keep up, chunks blended (ACT)."""
    probe.subscribe(DiagnosticArray, "status")
    sent: list[JointTrajectory] = []
    probe.node.create_subscription(JointTrajectory, "joint_trajectory", sent.append, 100)
    inputs = InputPublisher(probe)
    proc, log = spawn(node_args(CONTROLLER, "policy_controller", policy="proposer",
                                model=str(pretrained_dir() / "proposer-pushblocks"), num_inference_steps=2,
                                action_steps=8, temporal_ensemble_k=0.1, task=TASK), "policy_controller")
    status = lambda: probe.status.get("/policy_controller", {})  # noqa: E731
    probe.spin_until(lambda: inputs.joints.get_subscription_count() > 0 and status(), 60, "policy_controller")
    stream(probe, inputs, 1.5)  # the first plans (and torch's warm-up)
    probe.spin_until(lambda: "replan_ms_median" in status(), 10, "replans on status")
    before = dict(status())
    stream(probe, inputs, 5.0)
    after = dict(status())
    assert after["execution"] == "async" and after["moving"] == "true"
    assert after["missed_ticks"] == "0", after
    assert 8.0 <= float(after["control_rate_hz"]) <= 12.0, after
    assert float(after["replan_rate_hz"]) > 0 and int(after["commands"]) > int(before["commands"]) + 3, after
    assert 0 <= float(after["overhead_ms_p50"]) <= float(after["overhead_ms_p99"]) < 1000, after
    assert_ros2_control_accepts(sent)
    assert_clean_exit(proc, log)


def test_latent_planner_runs_as_the_controller_selected_by_parameter(probe: Probe, spawn) -> None:
    """``policy: latent-cem`` (the SIGReg state model, its rollout on onnxruntime): each plan's first
    block (5 actions) goes out as a timed trajectory within the limits, and its replans are on status."""
    probe.subscribe(DiagnosticArray, "status")
    sent: list[JointTrajectory] = []
    probe.node.create_subscription(JointTrajectory, "joint_trajectory", sent.append, 100)
    inputs = InputPublisher(probe)
    proc, log = spawn(node_args(CONTROLLER, "policy_controller", policy="latent-cem", model="", backend="onnx",
                                policy_options='{"samples": 100, "iterations": 3}', task=TASK), "policy_controller")
    status = lambda: probe.status.get("/policy_controller", {})  # noqa: E731
    probe.spin_until(lambda: inputs.joints.get_subscription_count() > 0 and status(), 60, "policy_controller")
    stream(probe, inputs, 1.0, until=lambda: len(sent) >= 2 and "replan_ms_median" in status(), timeout=20)
    assert status()["policy"] == "latent-cem"
    assert max(len(t.points) for t in sent) >= 5  # a 5-action block (and the point to rest)
    assert_ros2_control_accepts(sent)
    assert_clean_exit(proc, log)


def test_nothing_moves_after_plan_done_refusal_or_cancel(probe: Probe, spawn) -> None:
    """sim_node (4x real time) + the expert controller + the executive. After "plan done", after a
    refused plan (sent mid-push) and after the executive's ``cancel`` service (called mid-push), the
    controller sends no motion and nothing moves for 10 s of sim time (the nodes on sim_node's clock)."""
    sent: list[JointTrajectory] = []
    probe.node.create_subscription(JointTrajectory, "joint_trajectory", sent.append, 100)
    commands: list[JointState] = []
    probe.node.create_subscription(JointState, "joint_commands", commands.append, 100)
    pusher: list[list[float]] = []  # measured pusher xy (joint_states)
    probe.node.create_subscription(JointState, "joint_states", lambda m: pusher.append(list(m.position[:2])), 100)
    blocks: dict[str, list[list[float]]] = {b: [] for b in scene.BLOCK_NAMES}  # block xy (object poses)
    for b in scene.BLOCK_NAMES:
        probe.node.create_subscription(PoseStamped, pose_topic(b), lambda m, b=b: blocks[b].append(
            [m.pose.position.x, m.pose.position.y]), 100)
    probe.subscribe(DiagnosticArray, "status")
    plan_pub = probe.node.create_publisher(String, "plan", nc.PLAN_QOS)
    procs = [spawn(node_args("forethought.ros_ws.sim_node", "sim_node", real_time_factor=4.0, n_blocks=3, seed=0),
                   "sim_node"),
             spawn(node_args(CONTROLLER, "policy_controller", task="", objects=list(scene.BLOCK_NAMES), use_sim_time=True),
                   "policy_controller"),
             spawn(node_args("forethought.ros_ws.executive", "executive", goal_period_s=0.5,
                             objects=list(scene.BLOCK_NAMES), use_sim_time=True), "executive")]
    sim = lambda: probe.status.get("/sim_node", {})  # noqa: E731
    executive = lambda: probe.status.get("/executive", {})  # noqa: E731
    controller = lambda: probe.status.get("/policy_controller", {})  # noqa: E731
    probe.spin_until(lambda: pusher and executive() and controller() and plan_pub.get_subscription_count() > 0,
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
        n_sent, n_cmd = len(sent), len(commands)
        n_seen = {"pusher": len(pusher), **{b: len(xy) for b, xy in blocks.items()}}
        sim_seconds(10.0)
        assert len(sent) == n_sent, f"the controller sent motion after {after}"
        held = np.array([c.position for c in commands[n_cmd:]])
        assert len(held) > 90 and np.ptp(held, axis=0).max() < 1e-9, f"the setpoint moved after {after}"
        seen = {"pusher": pusher[n_seen["pusher"]:], **{b: xy[n_seen[b]:] for b, xy in blocks.items()}}
        assert len(seen["pusher"]) > 90 and all(len(seen[b]) > 90 for b in scene.BLOCK_NAMES), {k: len(v) for k, v in seen.items()}
        drift = max(np.ptp(np.array(xy), axis=0).max() for xy in seen.values())
        assert drift < 1e-3, f"something moved {drift:.4f} m after {after}"

    client = probe.node.create_client(Trigger, "cancel")  # found before the push it cancels starts
    assert client.wait_for_service(timeout_sec=20)
    push("left")
    probe.spin_until(lambda: executive().get("plan_status") == "done", 60, "plan done")
    still_for_10_s("plan done")
    push("right")
    plan_pub.publish(String(data=json.dumps({"steps": [], "refusal": "changed my mind"})))
    probe.spin_until(lambda: executive().get("refused_plans") == "1", 10, "the refusal")
    still_for_10_s("a refused plan")
    push("top_left")
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
    inputs = InputPublisher(probe)
    proc, log = spawn(node_args(CONTROLLER, "policy_controller", policy="expert", model="", task=""), "policy_controller")
    probe.spin_until(lambda: goal_pub.get_subscription_count() > 0, 60, "policy_controller to subscribe")
    status = lambda: probe.status.get("/policy_controller", {})  # noqa: E731
    goal_pub.publish(String(data='{"skill": "push", "object": "green_block", "target": "left"}'))
    probe.spin_until(lambda: "green_block" in status().get("task", ""), 10, "the goal to be taken (no observation yet)")
    inputs.publish(OBS)
    probe.spin_until(lambda: status().get("bad_goals") == "1" and status().get("task") == "None", 10,
                     "the goal to be refused against the observed scene")
    stream(probe, inputs, 0.5)
    assert not sent and proc.poll() is None
    goal_pub.publish(String(data=TASK))
    probe.spin_until(lambda: status().get("task", "None") != "None", 10, "the valid goal")
    stream(probe, inputs, 0.0, until=lambda: bool(sent))
    assert "goal refused" in log.read_text() and "Traceback" not in log.read_text()
    assert_clean_exit(proc, log)
