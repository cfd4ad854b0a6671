"""Harness of the ROS graph tests (``tests/test_ros_*.py``): nodes as separate processes over real
rclpy / Fast DDS, loopback only.

Every process runs with ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and this run's random
``ROS_DOMAIN_ID`` (1-101); the in-test probe node joins the same domain on its own rclpy context.
Traffic is a few hundred small messages, bounded by each test's deadline.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402

from forethought.ros_ws import node_common as nc  # noqa: E402
from forethought.ros_ws.input_topics import observation_msgs, seconds_to_time  # noqa: E402
from forethought.ros_ws.safety import LIMIT_PARAMS  # noqa: E402
from forethought.ros_ws.stamped import TABLE_FRAME, pose_topic  # noqa: E402
from forethought.runtime import apply_defaults  # noqa: E402
from forethought.sim import scene  # noqa: E402
from ros2_control_rules import chunk_contract, validate_trajectory_msg  # noqa: E402

DOMAIN_ID = random.randint(1, 101)
TASK = '{"skill": "push", "object": "red_block", "target": "left"}'
ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def ros_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for node processes: loopback discovery, this run's domain, logs in tmp."""
    env = apply_defaults(dict(os.environ))
    env.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(DOMAIN_ID),
               ROS_LOG_DIR=str(tmp_path_factory.mktemp("ros_log")), PYTHONUNBUFFERED="1")
    env.pop("ROS_LOCALHOST_ONLY", None)
    return env


class Probe:
    """An in-test node on its own context: subscribes, publishes, spins until a condition holds."""

    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID)
        self.node = rclpy.create_node("test_probe", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.latest: dict[str, Any] = {}
        self.status: dict[str, dict[str, str]] = {}
        self.count: dict[str, int] = {}
        self.first_wall: dict[str, float] = {}  # topic -> time.time() of its first message

    def subscribe(self, msg_type: type, topic: str) -> None:
        def keep(msg: Any) -> None:
            self.first_wall.setdefault(topic, time.time())
            self.latest[topic] = msg
            self.count[topic] = self.count.get(topic, 0) + 1
            if isinstance(msg, DiagnosticArray):
                for st in msg.status:
                    self.status[st.name] = {kv.key: kv.value for kv in st.values}
        self.node.create_subscription(msg_type, topic, keep, 50)

    def spin_until(self, pred: Callable[[], bool], timeout: float, what: str) -> float:
        """Spin until ``pred()``; return the seconds it took, fail after ``timeout``."""
        t0 = time.monotonic()
        while not pred():
            if time.monotonic() - t0 > timeout:
                pytest.fail(f"timed out after {timeout} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.05)
        return time.monotonic() - t0

    def spin_for(self, seconds: float) -> None:
        """Spin (deliver messages) for ``seconds``."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture
def probe() -> Probe:
    saved = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE")
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # read by rcl at init
    p = Probe()
    yield p
    p.close()
    if saved is None:
        os.environ.pop("ROS_AUTOMATIC_DISCOVERY_RANGE")
    else:
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = saved


@pytest.fixture
def spawn(ros_env: dict[str, str], tmp_path: Path):
    """Start processes (own process group, output to a log file); kill leftovers at teardown."""
    started: list[tuple[subprocess.Popen, Path]] = []

    def start(args: list[str], name: str) -> tuple[subprocess.Popen, Path]:
        log = tmp_path / f"{name}.log"
        with open(log, "w") as f:
            proc = subprocess.Popen([sys.executable, *args], env=ros_env, stdout=f, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=ROOT)
        started.append((proc, log))
        return proc, log

    yield start
    for proc, _ in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def node_args(module: str, name: str, **params: Any) -> list[str]:
    from forethought.ros_ws.runner import yaml_value

    args = ["-m", module, "--ros-args", "-r", f"__node:={name}", "--params-file", str(ROOT / "launch" / "sim.yaml")]
    for k, v in params.items():
        args += ["-p", f"{k}:={yaml_value(v)}"]
    return args


def our_processes() -> list[int]:
    """Pids of live forethought processes in this run's ROS domain (orphans, after a test)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if b"forethought" not in (d / "cmdline").read_bytes():
                continue
            if f"ROS_DOMAIN_ID={DOMAIN_ID}".encode() not in (d / "environ").read_bytes().split(b"\0"):
                continue
            if (d / "stat").read_text().split(") ")[1].startswith("Z"):
                continue
        except OSError:
            continue
        pids.append(int(d.name))
    return pids


def assert_clean_exit(proc: subprocess.Popen, log: Path, timeout: float = 40.0) -> str:
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(timeout=timeout)
    text = log.read_text()
    assert rc == 0, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    return text


def trajectory(*points: tuple[float, float], dt: float = 0.1,
               names: tuple[str, ...] = scene.PUSHER_JOINTS) -> JointTrajectory:
    """Points ``dt`` apart from ``dt`` on, stamp zero."""
    msg = JointTrajectory(joint_names=list(names))
    for i, p in enumerate(points):
        pt = JointTrajectoryPoint(positions=[float(v) for v in p])
        ns = int(round((i + 1) * dt * 1e9))
        pt.time_from_start.sec, pt.time_from_start.nanosec = ns // 10**9, ns % 10**9
        msg.points.append(pt)
    return msg


def assert_ros2_control_accepts(messages: list[JointTrajectory], period: float = 0.1) -> None:
    """Every controller message passes joint_trajectory_controller's checks and the chunk contract,
    and stays inside the position limits."""
    assert messages, "the controller published nothing"
    lo, hi = LIMIT_PARAMS["position_min"][0], LIMIT_PARAMS["position_max"][0]
    for i, msg in enumerate(messages):
        broken = validate_trajectory_msg(msg, scene.PUSHER_JOINTS, now_s=0.0) + chunk_contract(msg, period)
        assert not broken, f"message {i} of {len(messages)}: {broken}"
        q = np.array([pt.positions for pt in msg.points])
        assert np.all(q >= np.array(lo) - 1e-9) and np.all(q <= np.array(hi) + 1e-9), q


def scene_obs(pusher: tuple[float, float], blocks: dict[str, tuple[float, float]]) -> np.ndarray:
    """A hand-made observation: the pusher at ``pusher``, each block of ``blocks`` present at its xy."""
    obs = np.zeros(scene.OBS_DIM, dtype=np.float32)
    obs[scene.PUSHER_POS] = pusher
    for name, xy in blocks.items():
        obs[scene.block_slice(name)] = (1.0, *xy, 0.0)
    return obs


class InputPublisher:
    """Publishes observations the way a driver and a perception node do (``sim_node`` too):
    ``joint_states`` plus ``objects/<name>/pose`` of each block present, one stamp per observation."""

    def __init__(self, probe: Probe, objects: tuple[str, ...] = scene.BLOCK_NAMES) -> None:
        self.joints = probe.node.create_publisher(JointState, "joint_states", 10)
        self.poses = {b: probe.node.create_publisher(PoseStamped, pose_topic(b), 10) for b in objects}

    def publish(self, obs: np.ndarray, stamp_s: float | None = None, frame: str = TABLE_FRAME) -> None:
        """Publish ``obs[OBS_DIM]`` stamped ``stamp_s`` (s; default: wall-clock now, the clock of a
        node without ``use_sim_time``); poses first, so the set is complete when ``joint_states`` lands."""
        js, poses = observation_msgs(obs, seconds_to_time(time.time() if stamp_s is None else stamp_s), frame=frame)
        for name, pose in poses.items():
            self.poses[name].publish(pose)
        self.joints.publish(js)


def task_events(probe: Probe) -> dict[str, list[dict[str, Any]]]:
    """Subscribe to ``task_status``; return {command id: [event, ...]} as they arrive."""
    events: dict[str, list[dict[str, Any]]] = {}

    def keep(msg: String) -> None:
        event = json.loads(msg.data)
        assert event["state"] in nc.TASK_STATES, event
        events.setdefault(event["id"], []).append(event)
    probe.node.create_subscription(String, "task_status", keep, nc.TASK_STATUS_QOS)
    return events


def terminal(events: list[dict[str, Any]]) -> list[str]:
    return [e["state"] for e in events if e["state"] in nc.TERMINAL_STATES]
