"""executive: plan progress on stamped inputs (the dwell), re-issues, refusals, timeouts, retries,
faults, a silent or restarted planner and a restarted controller.

Over real rclpy / Fast DDS on loopback; the harness is ``ros_harness``. The executive runs without
``use_sim_time``: its clock is the wall clock, ``InputPublisher``'s default stamp.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from typing import Any, Callable

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.timeout(150)]
rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.sim import scene  # noqa: E402

from ros_harness import (InputPublisher, Probe, ros_env, probe, spawn, node_args, assert_clean_exit, scene_obs,  # noqa: E402,F401  (fixtures are used by name)
                         task_events, terminal)

RED = ("red_block",)
RED_LEFT = {"skill": "push", "object": "red_block", "target": "left"}


def executive_args(**params: Any) -> list[str]:
    return node_args("forethought.ros_ws.executive", "executive", **params)


def node_statuses(probe: Probe) -> dict[str, tuple[bytes, str]]:
    """Subscribe to ``status``; return {node name: (level, message)} of the latest status of each."""
    latest: dict[str, tuple[bytes, str]] = {}

    def keep(msg: DiagnosticArray) -> None:
        for st in msg.status:
            latest[st.name] = (st.level, st.message)
    probe.node.create_subscription(DiagnosticArray, "status", keep, 50)
    return latest


def heartbeat(probe: Probe, name: str, level: bytes = nc.OK, message: str = "running", **values: Any) -> DiagnosticArray:
    """A peer's ``status`` as ``name`` publishes it."""
    msg = nc.status_msg(probe.node, level, message, values)
    msg.status[0].name = f"/{name}"
    return msg


def test_executive_hands_out_steps_in_order_and_exits_when_done(probe: Probe, spawn) -> None:
    goals: list[str] = []
    probe.node.create_subscription(String, "goal", lambda m: goals.append(m.data), 50)
    plan_pub = probe.node.create_publisher(String, "plan", nc.PLAN_QOS)
    inputs = InputPublisher(probe, RED)
    plan = {"steps": [{"skill": "reach", "target": "center"}, RED_LEFT]}
    plan_pub.publish(String(data=json.dumps(plan)))  # before the node starts: transient local delivers it late
    proc, log = spawn(executive_args(exit_on_success=True, dwell_s=0.1, goal_period_s=0.2, objects=list(RED)),
                      "executive")
    probe.spin_until(lambda: inputs.joints.get_subscription_count() > 0, 40, "the executive to subscribe")
    away = scene_obs((0.2, 0.2), {"red_block": (0.05, 0.0)})
    deadline = time.monotonic() + 10
    while not goals and time.monotonic() < deadline:
        inputs.publish(away)
        probe.spin_for(0.1)
    assert goals and json.loads(goals[-1]) == plan["steps"][0]
    bad = away.copy()
    bad[0] = np.inf
    inputs.publish(bad)  # refused, never fatal
    at_center = scene_obs((0.0, 0.0), {"red_block": (0.05, 0.0)})
    deadline = time.monotonic() + 10
    while json.loads(goals[-1]) != plan["steps"][1] and time.monotonic() < deadline:
        inputs.publish(at_center)
        probe.spin_for(0.1)
    assert json.loads(goals[-1]) == plan["steps"][1], goals[-3:]
    done = scene_obs((0.0, 0.0), {"red_block": scene.REGIONS["left"].center})
    deadline = time.monotonic() + 10
    while proc.poll() is None and time.monotonic() < deadline:
        inputs.publish(done)
        probe.spin_for(0.1)
    assert proc.wait(timeout=10) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "plan done" in text and "input refused: joint_states: NaN or infinite" in text and "Traceback" not in text


def test_executive_needs_the_dwell_on_fresh_inputs_and_refuses_replays(probe: Probe, spawn) -> None:
    """dwell_s 1 s: "block in target" inputs replayed with old stamps (6 s old, and just older than
    the latest) are refused and counted, with the reason on ``status`` (WARN); 0.5 s of success does
    not count, nor two 0.6 s runs with a gap longer than ``max_age_s`` between them; 1 s of fresh
    success does; then stale input turns the status WARN."""
    events = task_events(probe)
    probe.subscribe(DiagnosticArray, "status")
    statuses = node_statuses(probe)
    plan_pub = probe.node.create_publisher(String, "plan", nc.PLAN_QOS)
    inputs = InputPublisher(probe, RED)
    proc, log = spawn(executive_args(dwell_s=1.0, max_age_s=0.5, goal_period_s=0.2, objects=list(RED)), "executive")
    probe.spin_until(lambda: inputs.joints.get_subscription_count() > 0, 40, "the executive to subscribe")
    away = scene_obs((0.25, -0.25), {"red_block": (0.0, 0.15)})
    done = scene_obs((0.25, -0.25), {"red_block": scene.REGIONS["left"].center})
    executive = lambda: probe.status.get("/executive", {})  # noqa: E731
    plan_pub.publish(String(data=json.dumps({"id": "dwell", "steps": [RED_LEFT]})))

    def publish_for(obs: np.ndarray, seconds: float, stamp: Callable[[], float] = time.time) -> float:
        """Publish ``obs`` at 10 Hz while the stamps span less than ``seconds``; return the first stamp."""
        first = stamp()
        while (t := stamp()) - first < seconds:
            inputs.publish(obs, t)
            probe.spin_for(0.1)
        return first

    deadline = time.monotonic() + 10
    while not events.get("dwell") and time.monotonic() < deadline:
        inputs.publish(away)
        probe.spin_for(0.1)
    assert [e["state"] for e in events["dwell"]] == ["executing"]

    latest = time.time()
    inputs.publish(away, latest)
    for k in range(20):  # the replay of an old success, with its old stamps, as captured 6 s ago
        inputs.publish(done, latest - 6.0 + 0.1 * k)
        probe.spin_for(0.05)
    probe.spin_until(lambda: int(executive().get("refused_stale", 0)) >= 20  # node_statuses' subscription may
                     and "input refused: " in statuses.get("/executive", (0, ""))[1],  # take that status a wake later
                     10, "the stale replays on status")
    assert "old on arrival" in executive()["last_input_refusal"] and statuses["/executive"][0] == nc.WARN
    assert "input refused: " in statuses["/executive"][1], statuses["/executive"]
    latest = time.time()
    inputs.publish(away, latest)
    inputs.publish(done, latest - 0.05)  # fresh, but older than the latest accepted: a reordered replay
    probe.spin_until(lambda: int(executive().get("refused_out_of_order", 0)) >= 1, 10, "the reordered replay")
    publish_for(away, 0.3)
    publish_for(done, 0.5)  # success, shorter than the dwell
    publish_for(away, 0.3)
    publish_for(done, 0.6)
    probe.spin_for(0.8)  # no input: longer than max_age_s
    publish_for(done, 0.6)  # 0.6 + 0.8 + 0.6 s, but not fresh throughout
    publish_for(away, 0.3)
    assert [e["state"] for e in events["dwell"]] == ["executing"], events["dwell"]
    assert executive()["plan_status"] == "running"

    deadline = time.monotonic() + 20
    first = time.time()
    while not terminal(events["dwell"]) and time.monotonic() < deadline:
        inputs.publish(done)
        probe.spin_for(0.1)
    took = time.time() - first
    assert terminal(events["dwell"]) == ["done"], events["dwell"]
    assert took >= 0.95, f"done after {took:.2f} s of success: shorter than dwell_s"
    probe.spin_until(lambda: "stale input" in statuses.get("/executive", (0, ""))[1], 10, "the stale input warning")
    assert statuses["/executive"][0] == nc.WARN and "plan done" in statuses["/executive"][1]
    assert_clean_exit(proc, log)


def test_executive_discards_inputs_that_queued_while_it_was_frozen(probe: Probe, spawn) -> None:
    """The executive is frozen (SIGSTOP) while 1.5 s of "block in target" inputs are published: on
    resume the queued ones older than ``max_age_s`` (0.5 s) are refused by their stamps, and the fresh
    rest (under 0.5 s of stamps) is shorter than ``dwell_s`` (0.6 s; the ~1 s of queued messages
    would pass it): no done. Fresh success afterwards completes the plan."""
    events = task_events(probe)
    probe.subscribe(DiagnosticArray, "status")
    plan_pub = probe.node.create_publisher(String, "plan", nc.PLAN_QOS)
    inputs = InputPublisher(probe, RED)
    proc, log = spawn(executive_args(dwell_s=0.6, max_age_s=0.5, objects=list(RED)), "executive")
    probe.spin_until(lambda: inputs.joints.get_subscription_count() > 0, 40, "the executive to subscribe")
    away = scene_obs((0.25, -0.25), {"red_block": (0.0, 0.15)})
    done = scene_obs((0.25, -0.25), {"red_block": scene.REGIONS["left"].center})
    executive = lambda: probe.status.get("/executive", {})  # noqa: E731
    plan_pub.publish(String(data=json.dumps({"id": "frozen", "steps": [RED_LEFT]})))
    deadline = time.monotonic() + 10
    while not (events.get("frozen") and executive()) and time.monotonic() < deadline:
        inputs.publish(away)
        probe.spin_for(0.1)
    assert [e["state"] for e in events["frozen"]] == ["executing"]
    stale_before = int(executive()["refused_stale"])
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            inputs.publish(done)
            probe.spin_for(0.1)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    probe.spin_until(lambda: int(executive().get("refused_stale", 0)) > stale_before, 10, "the queued inputs refused")
    probe.spin_for(1.5)
    assert [e["state"] for e in events["frozen"]] == ["executing"], events["frozen"]
    deadline = time.monotonic() + 20
    while not terminal(events["frozen"]) and time.monotonic() < deadline:
        inputs.publish(done)
        probe.spin_for(0.1)
    assert terminal(events["frozen"]) == ["done"]
    assert_clean_exit(proc, log)


def test_executive_reissues_a_step_a_later_step_broke_then_reports_failure(probe: Probe, spawn) -> None:
    """Plan: red to the left, then green to the right. Each push knocks the other block out of its
    region; with ``max_reissues=1`` each step is re-issued once, then the plan fails on ``status``."""
    probe.subscribe(nc.DiagnosticArray, "status")
    goals: list[str] = []
    probe.node.create_subscription(String, "goal", lambda m: goals.append(m.data), 50)
    plan_pub = probe.node.create_publisher(String, "plan", nc.PLAN_QOS)
    blocks = ("red_block", "green_block")
    inputs = InputPublisher(probe, blocks)
    red, green = RED_LEFT, {"skill": "push", "object": "green_block", "target": "right"}
    plan_pub.publish(String(data=json.dumps({"steps": [red, green]})))
    proc, log = spawn(executive_args(dwell_s=0.0, max_reissues=1, goal_period_s=0.2, objects=list(blocks)),
                      "executive")
    probe.spin_until(lambda: inputs.joints.get_subscription_count() > 0, 40, "the executive to subscribe")
    left, right, middle = scene.REGIONS["left"].center, scene.REGIONS["right"].center, (0.0, 0.15)

    def send_until(red_xy: tuple[float, float], green_xy: tuple[float, float], done: Callable[[], bool]) -> None:
        o = scene_obs((0.25, -0.25), {"red_block": red_xy, "green_block": green_xy})
        deadline = time.monotonic() + 10
        while not done() and time.monotonic() < deadline:
            inputs.publish(o)
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
    inputs = InputPublisher(probe, RED)
    proc, log = spawn(executive_args(exit_on_success=True, objects=list(RED)), "executive")
    probe.spin_until(lambda: inputs.joints.get_subscription_count() > 0, 40, "the executive to subscribe")
    scene_now = scene_obs((0.0, 0.0), {"red_block": (0.05, 0.0)})  # blue is absent
    inputs.publish(scene_now)
    probe.spin_for(0.5)
    plan_pub.publish(String(data=plan if isinstance(plan, str) else json.dumps(plan)))
    deadline = time.monotonic() + 20
    while proc.poll() is None and time.monotonic() < deadline:
        inputs.publish(scene_now)
        probe.spin_for(0.1)
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
    inputs = InputPublisher(probe, RED)
    peer_status = probe.node.create_publisher(DiagnosticArray, "status", 10)
    surprise = probe.node.create_publisher(DiagnosticArray, "surprise", 10)
    proc, log = spawn(executive_args(goal_period_s=0.1, step_timeout_s=1.0, max_retries=1, surprise_hold_k=3,
                                     peer_timeout_s=2.5, objects=list(RED)), "executive")
    probe.spin_until(lambda: inputs.joints.get_subscription_count() > 0, 40, "the executive to subscribe")
    client = probe.node.create_client(Trigger, "cancel")  # found now: the cancel below lands within the 2.5 s
    assert client.wait_for_service(timeout_sec=20)
    away = scene_obs((0.25, -0.25), {"red_block": (0.0, 0.15)})
    alive = heartbeat(probe, "policy_controller")

    def run(plan_id: str, until: Callable[[], bool], timeout: float, what: str, inject: Callable[[], None] = lambda: None,
            beat: bool = True) -> None:
        plan_pub.publish(String(data=json.dumps({"id": plan_id, "steps": [RED_LEFT]})))
        t0 = time.monotonic()
        while not until():
            assert time.monotonic() - t0 < timeout, (what, events.get(plan_id))
            inputs.publish(away)
            if beat:
                peer_status.publish(alive)  # the controller's status, its heartbeat
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

    error = heartbeat(probe, "policy_controller", nc.ERROR, "holding: policy error; error: policy.act: RuntimeError: boom")
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
    peer_status.publish(alive)
    future = client.call_async(Trigger.Request())
    probe.spin_until(future.done, 10, "the cancel service")
    probe.spin_until(lambda: bool(terminal(events["second"])), 5, "the cancelled event")
    assert terminal(events["second"]) == ["cancelled"]
    probe.spin_until(lambda: goals[-1]["skill"] == nc.HOLD_SKILL, 5, "the hold goal")

    probe.spin_for(2.0)  # the controller stays silent: 2.5 s in, the plan fails before its 1 s step timeout
    run("orphan", lambda: bool(terminal(events.get("orphan", []))), 10, "the controller's silence", beat=False)
    assert terminal(events["orphan"]) == ["failed"] and "policy_controller silent for" in events["orphan"][-1]["reason"]
    assert_clean_exit(proc, log)


def test_executive_fails_the_commands_of_a_silent_planner(probe: Probe, spawn) -> None:
    """planner_node (played by this probe: its heartbeat and task_status events) falls silent while
    one command is planning and one is queued: after ``peer_timeout_s`` both fail with the reason,
    ``status`` says the planner is silent, and a late plan for one of them is not executed. A
    command planned before, and one waiting while the planner is heard, do not fail."""
    events = task_events(probe)
    statuses = node_statuses(probe)
    plan_pub = probe.node.create_publisher(String, "plan", nc.PLAN_QOS)
    task_pub = probe.node.create_publisher(String, "task_status", nc.TASK_STATUS_QOS)
    peer_status = probe.node.create_publisher(DiagnosticArray, "status", 10)
    inputs = InputPublisher(probe, RED)
    proc, log = spawn(executive_args(peer_timeout_s=3.0, objects=list(RED)), "executive")
    probe.spin_until(lambda: task_pub.get_subscription_count() > 0 and inputs.joints.get_subscription_count() > 0, 40,
                     "the executive to subscribe")
    away = scene_obs((0.25, -0.25), {"red_block": (0.0, 0.15)})
    alive = heartbeat(probe, "planner_node", message="ready")

    def beat(seconds: float, planner: bool = True) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            inputs.publish(away)
            if planner:
                peer_status.publish(alive)
            probe.spin_for(0.2)

    beat(1.0)
    for cid, state in (("c0", "queued"), ("c0", "planning"), ("c0", "planned"), ("c1", "queued"), ("c1", "planning"),
                       ("c2", "queued")):
        task_pub.publish(nc.task_event(cid, state))
    beat(4.0)  # longer than peer_timeout_s, but the planner is heard
    assert not any(terminal(events.get(c, [])) for c in ("c0", "c1", "c2")), events
    t0 = time.monotonic()
    probe.spin_until(lambda: terminal(events.get("c1", [])) and terminal(events.get("c2", [])), 15,
                     "the waiting commands to fail")
    assert time.monotonic() - t0 >= 2.0  # peer_timeout_s after the last heartbeat
    for cid in ("c1", "c2"):
        assert terminal(events[cid]) == ["failed"] and "planner_node silent for" in events[cid][-1]["reason"]
    assert terminal(events["c0"]) == []  # planned: the executive reports it once it runs
    probe.spin_until(lambda: "planner_node silent for" in statuses.get("/executive", (0, ""))[1], 5,
                     "the status to say the planner is silent")
    assert statuses["/executive"][0] == nc.WARN

    plan_pub.publish(String(data=json.dumps({"id": "c1", "steps": [RED_LEFT]})))  # the planner was only frozen
    beat(1.5, planner=False)
    assert [e["state"] for e in events["c1"]].count("executing") == 0, events["c1"]
    probe.spin_until(lambda: "not executed: that command already failed" in log.read_text(), 10,
                     "the late plan's refusal in the log")

    task_pub.publish(nc.task_event("c3", "queued"))
    beat(4.0)  # heard again: the new command waits as long as it needs
    assert terminal(events.get("c3", [])) == []
    probe.spin_until(lambda: "silent" not in statuses["/executive"][1], 5, "the silence warning to clear")
    task_pub.publish(nc.task_event("c3", "planned"))
    plan_pub.publish(String(data=json.dumps({"id": "c3", "steps": [RED_LEFT]})))
    probe.spin_until(lambda: bool(events.get("c3")) and events["c3"][-1]["state"] == "executing", 10,
                     "the next command's plan to run")
    assert_clean_exit(proc, log)


def test_executive_fails_the_commands_a_restarted_planner_lost(probe: Probe, spawn) -> None:
    """planner_node (played by this probe) restarts (its ``uptime_s`` goes down) far sooner than
    ``peer_timeout_s``: the commands it had queued or was planning fail at once with the reason, a
    late plan for one of them is not executed; a command the new planner queued before its first
    heartbeat, and a planned one, do not fail."""
    events = task_events(probe)
    plan_pub = probe.node.create_publisher(String, "plan", nc.PLAN_QOS)
    task_pub = probe.node.create_publisher(String, "task_status", nc.TASK_STATUS_QOS)
    peer_status = probe.node.create_publisher(DiagnosticArray, "status", 10)
    inputs = InputPublisher(probe, RED)
    proc, log = spawn(executive_args(peer_timeout_s=60.0, objects=list(RED)), "executive")
    probe.spin_until(lambda: task_pub.get_subscription_count() > 0 and peer_status.get_subscription_count() > 0, 40,
                     "the executive to subscribe")
    away = scene_obs((0.25, -0.25), {"red_block": (0.0, 0.15)})

    def beat(seconds: float, uptime: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            inputs.publish(away)
            peer_status.publish(heartbeat(probe, "planner_node", message="ready", uptime_s=uptime))
            probe.spin_for(0.2)

    beat(1.0, uptime=10.0)
    for cid, state in (("p0", "queued"), ("p0", "planning"), ("p0", "planned"), ("p1", "queued"), ("p1", "planning"),
                       ("p2", "queued")):
        task_pub.publish(nc.task_event(cid, state))
    beat(3.0, uptime=11.0)  # the old planner is alive: nothing fails
    assert not any(terminal(events.get(c, [])) for c in ("p0", "p1", "p2")), events
    task_pub.publish(nc.task_event("p3", "queued"))  # queued by the new planner, just before its first heartbeat
    peer_status.publish(heartbeat(probe, "planner_node", message="ready", uptime_s=1.5))
    probe.spin_until(lambda: terminal(events.get("p1", [])) and terminal(events.get("p2", [])), 10,
                     "the lost commands to fail")
    for cid in ("p1", "p2"):
        assert terminal(events[cid]) == ["failed"], events[cid]
        assert events[cid][-1]["reason"] == ("planner_node restarted (uptime_s went from 11 to 1.5): the command was "
                                             "lost")
    plan_pub.publish(String(data=json.dumps({"id": "p1", "steps": [RED_LEFT]})))  # a late plan of a lost command
    beat(1.5, uptime=2.0)
    assert terminal(events["p0"]) == [] and terminal(events["p3"]) == [], events
    assert [e["state"] for e in events["p1"]].count("executing") == 0, events["p1"]
    assert [e["state"] for e in events["p2"]].count("failed") == 1  # once: the next heartbeats are no restart
    probe.spin_until(lambda: "not executed: that command already failed" in log.read_text(), 10,
                     "the late plan's refusal in the log")
    assert_clean_exit(proc, log)


def test_executive_resumes_the_plan_after_a_controller_restart(probe: Probe, spawn) -> None:
    """A real policy_controller (the expert) is killed (``kill -9``) mid-step and started again: the
    executive re-issues the active step to the new one (which starts with no goal) as a retry,
    instead of failing the plan; a second restart exceeds ``max_retries`` 1: the plan fails with
    the reason. The goal is republished only on events (``goal_period_s`` 100 s)."""
    events = task_events(probe)
    probe.subscribe(DiagnosticArray, "status")
    plan_pub = probe.node.create_publisher(String, "plan", nc.PLAN_QOS)
    inputs = InputPublisher(probe, RED)
    controller_args = node_args("forethought.ros_ws.policy_controller", "policy_controller", task="",
                                objects=list(RED))
    controller, controller_log = spawn(controller_args, "policy_controller")
    proc, log = spawn(executive_args(goal_period_s=100.0, step_timeout_s=0.0, max_retries=1, peer_timeout_s=60.0,
                                     objects=list(RED)), "executive")
    away = scene_obs((0.25, -0.25), {"red_block": (0.0, 0.15)})
    ctrl = lambda: probe.status.get("/policy_controller", {})  # noqa: E731
    executive = lambda: probe.status.get("/executive", {})  # noqa: E731

    def feed_until(pred: Callable[[], bool], timeout: float, what: str) -> None:
        t0 = time.monotonic()
        while not pred():
            assert time.monotonic() - t0 < timeout, (what, events.get("resume"), ctrl(), executive())
            inputs.publish(away)
            probe.spin_for(0.1)

    def has_goal() -> bool:
        task = ctrl().get("task", "null")
        return task not in ("None", "null", "") and json.loads(task) == RED_LEFT

    feed_until(lambda: bool(ctrl()) and bool(executive()), 60, "both nodes up")
    plan_pub.publish(String(data=json.dumps({"id": "resume", "steps": [RED_LEFT]})))
    feed_until(lambda: has_goal() and bool(events.get("resume")), 20, "the controller to get the step")
    assert [e["state"] for e in events["resume"]] == ["executing"]

    for restart in (1, 2):
        os.killpg(controller.pid, signal.SIGKILL)
        controller.wait()
        probe.spin_for(0.5)
        probe.status.pop("/policy_controller", None)
        controller, controller_log = spawn(controller_args, f"policy_controller_{restart}")
        if restart == 1:
            # the new controller's status shows the goal (sent on the match) and tells the executive of
            # the restart at once: the retry event may reach the probe a moment after that status
            feed_until(lambda: bool(ctrl()) and has_goal() and len(events["resume"]) > 1, 60,
                       "the restarted controller to get the step again, as a retry")
            assert [e["state"] for e in events["resume"]] == ["executing", "executing"], events["resume"]
            feed_until(lambda: executive().get("controller_resumes") == "1", 5, "the resume on status")
            assert executive()["retries"] == "1" and executive()["plan_status"] == "running"
        else:
            feed_until(lambda: bool(terminal(events["resume"])), 60, "the plan to fail on the second restart")
            reason = events["resume"][-1]["reason"]
            assert terminal(events["resume"]) == ["failed"], events["resume"]
            assert re.search(r"was interrupted: policy_controller (restarted \((commands|uptime_s)|back after)", reason), reason
            assert "max_retries=1" in reason
    assert "re-issuing step 1" in log.read_text()
    assert_clean_exit(proc, log)
    assert_clean_exit(controller, controller_log)


def test_executive_sends_the_last_goal_to_a_subscription_that_matches_late(probe: Probe, spawn) -> None:
    """With ``goal_period_s`` 100 s, a ``goal`` subscription created after the step was issued (a
    controller that starts late, or whose subscription was discovered after the publish) gets the
    active step within seconds; after a cancel, a later one gets the hold."""
    events = task_events(probe)
    probe.subscribe(DiagnosticArray, "status")
    plan_pub = probe.node.create_publisher(String, "plan", nc.PLAN_QOS)
    inputs = InputPublisher(probe, RED)
    proc, log = spawn(executive_args(goal_period_s=100.0, objects=list(RED)), "executive")
    probe.spin_until(lambda: inputs.joints.get_subscription_count() > 0, 40, "the executive to subscribe")
    away = scene_obs((0.25, -0.25), {"red_block": (0.0, 0.15)})
    plan_pub.publish(String(data=json.dumps({"id": "late", "steps": [RED_LEFT]})))
    deadline = time.monotonic() + 20
    while not events.get("late") and time.monotonic() < deadline:
        inputs.publish(away)
        probe.spin_for(0.1)
    assert [e["state"] for e in events.get("late", [])] == ["executing"], events
    probe.spin_for(1.0)  # the step went out to nobody

    def late_goals() -> list[dict[str, Any]]:
        goals: list[dict[str, Any]] = []
        probe.node.create_subscription(String, "goal", lambda m: goals.append(json.loads(m.data)), 10)
        probe.spin_until(lambda: bool(goals), 10, "the goal on a late subscription")
        return goals

    assert late_goals()[0] == RED_LEFT
    client = probe.node.create_client(Trigger, "cancel")
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(Trigger.Request())
    probe.spin_until(future.done, 10, "the cancel service")
    assert late_goals()[0] == {"skill": nc.HOLD_SKILL, "reason": "plan cancelled"}
    probe.spin_until(lambda: int(probe.status.get("/executive", {}).get("goals_on_match", "0")) >= 2, 5,
                     "goals_on_match on status")
    assert_clean_exit(proc, log)


# ------------------------------------------------------------------------ pure helpers (no DDS)
def test_peer_watch_tells_a_restart_and_a_return_from_silence() -> None:
    from forethought.ros_ws.executive import SILENT_S, PeerWatch

    peer = PeerWatch("policy_controller")
    assert peer.silence(5.0) == 0.0 and peer.hear(0.0, {"commands": "40"}) is None  # the first status
    assert peer.hear(1.0, {"commands": "45", "uptime_s": "12.0"}) is None
    assert peer.silence(3.0) == pytest.approx(2.0)
    assert peer.hear(2.0, {"commands": "45", "uptime_s": "13.0"}) is None  # counters need not grow
    assert not peer.restarted and peer.started == pytest.approx(2.0 - 13.0)
    back = peer.hear(3.0, {"commands": "2", "uptime_s": "0.5"})
    assert back == "restarted (uptime_s went from 13 to 0.5)"
    assert peer.restarted and peer.started == pytest.approx(2.5)  # its new run started 0.5 s ago
    assert peer.hear(3.5, {"commands": "1"}) == "restarted (commands went from 2 to 1)"  # without uptime_s
    assert peer.hear(4.0, {"commands": "3"}) is None  # a key that went missing is no restart
    assert not peer.restarted and peer.started is None
    assert peer.hear(4.5, {"commands": "x"}) is None  # nor is an unreadable value
    back = peer.hear(4.5 + SILENT_S + 0.5, {"commands": "9"})
    assert back == f"back after {SILENT_S + 0.5:.1f} s of silence"
