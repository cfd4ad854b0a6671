"""executive: plan progress, re-issues, refusals, timeouts, retries and faults.

Over real rclpy / Fast DDS on loopback; the harness is ``ros_harness``.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(150)]
rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from std_msgs.msg import Float32MultiArray, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.sim import scene  # noqa: E402

from ros_harness import Probe, probe, spawn, node_args, assert_clean_exit, scene_obs, task_events, terminal  # noqa: E402,F401  (fixtures are used by name)


def test_executive_hands_out_steps_in_order_and_exits_when_done(probe: Probe, spawn) -> None:
    probe.subscribe(String, "goal")
    goals: list[str] = []
    probe.node.create_subscription(String, "goal", lambda m: goals.append(m.data), 50)
    plan_pub = probe.node.create_publisher(String, "plan", nc.PLAN_QOS)
    obs_pub = probe.node.create_publisher(Float32MultiArray, "observation", 10)
    plan = {"steps": [{"skill": "reach", "target": "center"}, {"skill": "push", "object": "red_block", "target": "left"}]}
    plan_pub.publish(String(data=json.dumps(plan)))  # before the node starts: transient local delivers it late
    proc, log = spawn(node_args("forethought.ros_ws.executive", "executive", exit_on_success=True, settle_steps=2,
                                goal_period_s=0.2), "executive")
    probe.spin_until(lambda: obs_pub.get_subscription_count() > 0, 40, "the executive to subscribe")
    away = scene_obs((0.2, 0.2), {"red_block": (0.05, 0.0)})
    for _ in range(5):
        obs_pub.publish(nc.obs_to_msg(away))
        probe.executor.spin_once(timeout_sec=0.05)
    probe.spin_until(lambda: bool(goals), 10, "the first goal")
    assert json.loads(goals[-1]) == plan["steps"][0]
    bad = away.copy()
    bad[0] = np.inf
    obs_pub.publish(nc.obs_to_msg(bad))  # ignored, never fatal
    at_center = scene_obs((0.0, 0.0), {"red_block": (0.05, 0.0)})
    deadline = time.monotonic() + 10
    while json.loads(goals[-1]) != plan["steps"][1] and time.monotonic() < deadline:
        obs_pub.publish(nc.obs_to_msg(at_center))
        probe.spin_for(0.1)
    assert json.loads(goals[-1]) == plan["steps"][1], goals[-3:]
    done = scene_obs((0.0, 0.0), {"red_block": scene.REGIONS["left"].center})
    deadline = time.monotonic() + 10
    while proc.poll() is None and time.monotonic() < deadline:
        obs_pub.publish(nc.obs_to_msg(done))
        probe.executor.spin_once(timeout_sec=0.1)
    assert proc.wait(timeout=10) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "plan done" in text and "Traceback" not in text


def test_executive_reissues_a_step_a_later_step_broke_then_reports_failure(probe: Probe, spawn) -> None:
    """Plan: red to the left, then green to the right. Each push knocks the other block out of its
    region; with ``max_reissues=1`` each step is re-issued once, then the plan fails on ``status``."""
    probe.subscribe(nc.DiagnosticArray, "status")
    goals: list[str] = []
    probe.node.create_subscription(String, "goal", lambda m: goals.append(m.data), 50)
    plan_pub = probe.node.create_publisher(String, "plan", nc.PLAN_QOS)
    obs_pub = probe.node.create_publisher(Float32MultiArray, "observation", 10)
    red, green = {"skill": "push", "object": "red_block", "target": "left"}, \
        {"skill": "push", "object": "green_block", "target": "right"}
    plan_pub.publish(String(data=json.dumps({"steps": [red, green]})))
    proc, log = spawn(node_args("forethought.ros_ws.executive", "executive", settle_steps=1, max_reissues=1,
                                goal_period_s=0.2), "executive")
    probe.spin_until(lambda: obs_pub.get_subscription_count() > 0, 40, "the executive to subscribe")
    left, right, middle = scene.REGIONS["left"].center, scene.REGIONS["right"].center, (0.0, 0.15)

    def send_until(red_xy: tuple[float, float], green_xy: tuple[float, float], done: Callable[[], bool]) -> None:
        o = scene_obs((0.25, -0.25), {"red_block": red_xy, "green_block": green_xy})
        deadline = time.monotonic() + 10
        while not done() and time.monotonic() < deadline:
            obs_pub.publish(nc.obs_to_msg(o))
            probe.spin_for(0.1)
        assert done(), (goals[-3:], probe.status.get("/executive"))

    def goal_is(step: dict[str, Any]) -> Callable[[], bool]:
        return lambda: bool(goals) and json.loads(goals[-1]) == step

    send_until(middle, (0.1, 0.1), goal_is(red))
    send_until(left, (0.1, 0.1), goal_is(green))  # step 1 settled
    send_until(middle, right, goal_is(red))  # step 2 knocked red out of "left": step 1 again
    send_until(left, (0.1, 0.1), goal_is(green))  # and redoing it knocked green out: step 2 again
    executive = lambda: probe.status.get("/executive", {})  # noqa: E731
    send_until(middle, right, lambda: executive().get("plan_status") == "failed")  # broken once too often
    assert probe.latest["status"].status[0].level == nc.ERROR
    assert "step 1" in executive()["failure"] and "max_reissues=1" in executive()["failure"]
    assert executive()["reissues"] == "2" and executive()["failed_plans"] == "1"
    probe.spin_until(lambda: json.loads(goals[-1]) == {"skill": nc.HOLD_SKILL, "reason": "plan failed"}, 10,
                     "the hold goal")
    n_goals = len(goals)
    probe.spin_for(1.0)
    assert len(goals) == n_goals  # after the hold, a failed plan hands out no goal
    assert proc.poll() is None  # without exit_on_success the node stays up, reporting the failure
    assert "re-issuing" in log.read_text() and "Traceback" not in log.read_text()


@pytest.mark.parametrize("plan, reason", [
    ({"steps": [], "refusal": "object not in scene"}, "refused"),
    ({"steps": [{"skill": "push", "object": "blue_block", "target": "left"}]}, "unknown object"),
    ("{not json", "plan not executed"),
])
def test_executive_refuses_bad_plans_without_sending_a_goal(plan: Any, reason: str, probe: Probe, spawn) -> None:
    goals: list[str] = []
    probe.node.create_subscription(String, "goal", lambda m: goals.append(m.data), 50)
    plan_pub = probe.node.create_publisher(String, "plan", nc.PLAN_QOS)
    obs_pub = probe.node.create_publisher(Float32MultiArray, "observation", 10)
    proc, log = spawn(node_args("forethought.ros_ws.executive", "executive", exit_on_success=True), "executive")
    probe.spin_until(lambda: obs_pub.get_subscription_count() > 0, 40, "the executive to subscribe")
    obs_pub.publish(nc.obs_to_msg(scene_obs((0.0, 0.0), {"red_block": (0.05, 0.0)})))  # blue is absent
    probe.spin_for(0.5)
    plan_pub.publish(String(data=plan if isinstance(plan, str) else json.dumps(plan)))
    deadline = time.monotonic() + 20
    while proc.poll() is None and time.monotonic() < deadline:
        obs_pub.publish(nc.obs_to_msg(scene_obs((0.0, 0.0), {"red_block": (0.05, 0.0)})))
        probe.executor.spin_once(timeout_sec=0.1)
    assert proc.wait(timeout=10) == 3
    text = log.read_text()
    assert reason in text and "Traceback" not in text
    assert all(json.loads(g)["skill"] == nc.HOLD_SKILL for g in goals), goals  # no step: at most a hold


def test_executive_times_out_retries_and_fails_and_reacts_to_faults(probe: Probe, spawn) -> None:
    """One executive: a step timeout (1 s) is retried once, then the plan fails with the reason; an
    ERROR from the controller fails the plan, and so does its silence (2.5 s); 3 surprise WARNs in a
    row fail it; a newer plan cancels the running one. Each ends on ``task_status`` for the plan's
    id, with a hold goal."""
    events = task_events(probe)
    probe.subscribe(DiagnosticArray, "status")
    goals: list[dict[str, Any]] = []
    probe.node.create_subscription(String, "goal", lambda m: goals.append(json.loads(m.data)), 100)
    plan_pub = probe.node.create_publisher(String, "plan", nc.PLAN_QOS)
    obs_pub = probe.node.create_publisher(Float32MultiArray, "observation", 10)
    peer_status = probe.node.create_publisher(DiagnosticArray, "status", 10)
    surprise = probe.node.create_publisher(DiagnosticArray, "surprise", 10)
    proc, log = spawn(node_args("forethought.ros_ws.executive", "executive", goal_period_s=0.1, step_timeout_s=1.0,
                                max_retries=1, surprise_hold_k=3, peer_timeout_s=2.5), "executive")
    probe.spin_until(lambda: obs_pub.get_subscription_count() > 0, 40, "the executive to subscribe")
    away = scene_obs((0.25, -0.25), {"red_block": (0.0, 0.15)})
    red_left = {"skill": "push", "object": "red_block", "target": "left"}

    heartbeat = nc.status_msg(probe.node, nc.OK, "running", {})
    heartbeat.status[0].name = "/policy_controller"

    def run(plan_id: str, until: Callable[[], bool], timeout: float, what: str, inject: Callable[[], None] = lambda: None,
            alive: bool = True) -> None:
        plan_pub.publish(String(data=json.dumps({"id": plan_id, "steps": [red_left]})))
        t0 = time.monotonic()
        while not until():
            assert time.monotonic() - t0 < timeout, (what, events.get(plan_id))
            obs_pub.publish(nc.obs_to_msg(away))
            if alive:
                peer_status.publish(heartbeat)  # the controller's status, its heartbeat
            inject()
            probe.spin_for(0.1)

    run("slow", lambda: bool(terminal(events.get("slow", []))), 15, "the timeout")
    states = [(e["state"], e.get("step")) for e in events["slow"]]
    assert states == [("executing", 0), ("executing", 0), ("failed", None)], states  # issued, retried once, failed
    assert "not achieved within 1 s" in events["slow"][-1]["reason"] and "max_retries=1" in events["slow"][-1]["reason"]
    probe.spin_until(lambda: goals[-1] == {"skill": nc.HOLD_SKILL, "reason": "plan failed"}, 5, "the hold goal")
    assert {"skill": nc.HOLD_SKILL, "reason": "step timed out: retrying"} in goals  # the retry restarts the controller
    executive = lambda: probe.status.get("/executive", {})  # noqa: E731
    probe.spin_until(lambda: executive().get("retries") == "1" and executive().get("plan_status") == "failed", 5,
                     "the retry and the failure on status")

    error = nc.status_msg(probe.node, nc.ERROR, "holding: policy error; error: policy.act: RuntimeError: boom", {})
    error.status[0].name = "/policy_controller"
    run("broken", lambda: bool(terminal(events.get("broken", []))), 10, "the controller error",
        lambda: peer_status.publish(error))
    assert terminal(events["broken"]) == ["failed"] and "RuntimeError: boom" in events["broken"][-1]["reason"]

    warn = nc.status_msg(probe.node, nc.WARN, "surprise", {"surprise": 2.0, "threshold": 0.6})
    run("surprised", lambda: bool(terminal(events.get("surprised", []))), 10, "sustained surprise",
        lambda: surprise.publish(warn))
    assert terminal(events["surprised"]) == ["failed"] and "sustained surprise" in events["surprised"][-1]["reason"]

    run("first", lambda: bool(events.get("first")), 5, "the first plan to execute")
    run("second", lambda: bool(events.get("second")), 5, "the second plan to execute")
    assert terminal(events["first"]) == ["cancelled"] and "replaced by plan second" in events["first"][-1]["reason"]
    client = probe.node.create_client(Trigger, "cancel")
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(Trigger.Request())
    probe.spin_until(future.done, 10, "the cancel service")
    probe.spin_until(lambda: bool(terminal(events["second"])), 5, "the cancelled event")
    assert terminal(events["second"]) == ["cancelled"]
    probe.spin_until(lambda: goals[-1]["skill"] == nc.HOLD_SKILL, 5, "the hold goal")

    probe.spin_for(2.0)  # the controller stays silent: 2.5 s in, the plan fails before its 1 s step timeout
    run("orphan", lambda: bool(terminal(events.get("orphan", []))), 10, "the controller's silence", alive=False)
    assert terminal(events["orphan"]) == ["failed"] and "policy_controller silent for" in events["orphan"][-1]["reason"]
    assert_clean_exit(proc, log)
