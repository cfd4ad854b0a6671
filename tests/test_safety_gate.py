"""The safety gate (``forethought.ros_ws.safety``) and the trajectory follower, without ROS.

Property tests (hypothesis) over random and adversarial chunks, NaN included: whatever the gate
lets through, and whatever the follower then executes at the physics rate, stays within the
position, velocity and acceleration limits. The limits are checked here with this file's own
code (``within_limits`` and ``executed_within_limits``), not with the gate's.
"""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from forethought.ros_ws.safety import LIMIT_PARAMS, JointLimits, SafetyGate  # noqa: E402
from forethought.ros_ws.trajectory import TrajectoryFollower  # noqa: E402

PERIOD = 0.1
PHYSICS = 0.005
LIMITS = JointLimits.from_params({k: v[0] for k, v in LIMIT_PARAMS.items()})
TIGHT = JointLimits(LIMITS.lower, LIMITS.upper, np.array([0.5, 0.3]), np.array([1.0, 2.5]))
"""Limits under which braking takes several periods (max_acceleration * PERIOD < max_velocity)."""
V, A = LIMITS.max_velocity, LIMITS.max_acceleration
SLACK = 1e-6


def within_limits(q0: np.ndarray, v0: np.ndarray, q: np.ndarray, t: np.ndarray, limits: JointLimits = LIMITS,
                  period: float = PERIOD) -> bool:
    """The module docstring's definition, written out again over every pair of segments."""
    knots = np.vstack([q0, q])
    times = np.concatenate([[0.0], t])
    if not (np.all(np.isfinite(knots)) and np.all(np.diff(times) > 0)):
        return False
    segments = [(-np.inf, 0.0, v0)]  # (start, end, velocity): the start state's, the trajectory's, the hold
    segments += [(times[i], times[i + 1], (knots[i + 1] - knots[i]) / (times[i + 1] - times[i])) for i in range(len(t))]
    segments.append((times[-1], np.inf, np.zeros(2)))
    for i, (_, end_i, v_i) in enumerate(segments):
        if i > 0 and np.any(np.abs(v_i) > limits.max_velocity * (1 + SLACK)):
            return False
        for start_j, _, v_j in segments[i + 1:]:
            if start_j - end_i < period * (1 - 1e-9) and np.any(np.abs(v_j - v_i) > limits.max_acceleration * period * (1 + SLACK)):
                return False
    return bool(np.all(q >= limits.lower - SLACK) and np.all(q <= limits.upper + SLACK))


def executed_within_limits(commands: np.ndarray, dt: float, limits: JointLimits = LIMITS) -> bool:
    """Setpoints sampled every ``dt`` (the sim's control ticks): finite differences within the limits."""
    vel = np.diff(commands, axis=0) / dt
    acc = np.diff(vel, axis=0) / dt
    return bool(np.all(commands >= limits.lower - SLACK) and np.all(commands <= limits.upper + SLACK)
                and np.all(np.abs(vel) <= limits.max_velocity * (1 + SLACK))
                and np.all(np.abs(acc) <= limits.max_acceleration * (1 + SLACK)))


coordinate = st.one_of(st.floats(-0.4, 0.4), st.sampled_from([np.nan, np.inf, -np.inf, 0.27, -0.27, 5.0, -5.0]))


@st.composite
def start_states(draw: st.DrawFn, limits: JointLimits = LIMITS) -> tuple[np.ndarray, np.ndarray]:
    """A setpoint state the gate can have produced: in the box, within the velocity limit, able to brake."""
    q0 = np.array([draw(st.floats(-0.27, 0.27)) for _ in range(2)])
    v0 = np.array([draw(st.floats(-1.0, 1.0)) for _ in range(2)]) * limits.max_velocity
    room = np.where(v0 > 0, limits.upper - q0, q0 - limits.lower)
    v0 = np.where(2 * np.abs(v0) * PERIOD + v0 ** 2 / (2 * limits.max_acceleration) <= room, v0, 0.0)
    return q0, v0


@st.composite
def chunks(draw: st.DrawFn, finite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 24))
    q = np.array(draw(st.lists(st.tuples(st.floats(-0.4, 0.4) if finite else coordinate,
                                         st.floats(-0.4, 0.4) if finite else coordinate), min_size=n, max_size=n)))
    kind = draw(st.sampled_from(["period", "random", "tiny"]))
    if kind == "period":
        t = PERIOD * np.arange(1, n + 1)
    elif kind == "tiny":
        t = 1e-3 * np.arange(1, n + 1)
    else:
        t = np.cumsum(draw(hnp.arrays(float, n, elements=st.floats(1e-4, 2.0))))
    return q, t


@settings(max_examples=300, deadline=None)
@given(st.data(), chunks(), st.sampled_from(["clip", "reject"]), st.sampled_from([LIMITS, TIGHT]))
def test_nothing_the_gate_passes_exceeds_a_limit(data: st.DataObject, chunk: tuple, mode: str,
                                                 limits: JointLimits) -> None:
    start = data.draw(start_states(limits))
    gate = SafetyGate(limits, mode, PERIOD)
    q, t = chunk
    try:
        out = gate.apply(*start, q, t)
    except ValueError:
        assert mode == "reject" or not np.all(np.isfinite(q)) or not np.all(np.diff(t) > 0)
        return
    assert within_limits(*start, out.positions, out.times, limits)
    assert np.all(np.diff(out.times) > 0) and out.times[0] > 0
    if not out.clipped:
        assert np.array_equal(out.positions, q) and np.array_equal(out.times, t)
    if mode == "reject":
        assert not out.clipped


@settings(max_examples=150, deadline=None)
@given(st.data(), st.lists(chunks(finite=True), min_size=1, max_size=4), st.integers(0, 30),
       st.sampled_from([LIMITS, TIGHT]))
def test_what_the_follower_executes_stays_within_limits(data: st.DataObject, sequence: list, gap: int,
                                                        limits: JointLimits) -> None:
    """Chunks replacing each other mid-way, each gated from the follower's own state (at rest at first),
    sampled at every tick."""
    start = data.draw(start_states(limits))
    gate = SafetyGate(limits, "clip", PERIOD)
    follower = TrajectoryFollower(start[0], timeout_s=1.0)
    tick, commands = 0, [follower.state(0.0)[0]]
    for q, t in sequence:
        now = tick * PERIOD
        out = gate.apply(follower.state(now)[0], follower.recent(now, PERIOD), q, t)
        follower.accept(out.positions, out.times, now)
        for _ in range(gap + 1):
            tick += 1
            commands.append(follower.step(tick * PERIOD, commands[-1]).copy())
    for _ in range(40):
        tick += 1
        commands.append(follower.step(tick * PERIOD, commands[-1]).copy())
    assert executed_within_limits(np.array(commands), PERIOD, limits)


def test_nan_and_bad_times_are_refused_in_both_modes() -> None:
    for mode in ("clip", "reject"):
        gate = SafetyGate(LIMITS, mode, PERIOD)
        with pytest.raises(ValueError, match="NaN"):
            gate.apply(np.zeros(2), np.zeros(2), np.array([[0.01, np.nan], [0.0, 0.0]]), np.array([0.1, 0.2]))
        with pytest.raises(ValueError, match="strictly increasing"):
            gate.apply(np.zeros(2), np.zeros(2), np.array([[0.01, 0.0], [0.02, 0.0]]), np.array([0.1, 0.1]))
        with pytest.raises(ValueError, match="> 0"):
            gate.apply(np.zeros(2), np.zeros(2), np.array([[0.01, 0.0]]), np.array([0.0]))


def test_a_rogue_jump_never_runs_faster_than_the_velocity_limit() -> None:
    """0.7 m in 1 ms: rejected, or clipped so that what executes at the physics rate keeps to the limits."""
    start = np.array([-0.25, -0.25])
    jump = (np.array([[0.25, 0.25]]), np.array([1e-3]))  # 0.71 m diagonally
    with pytest.raises(ValueError, match="velocity"):
        SafetyGate(LIMITS, "reject", PERIOD).apply(start, np.zeros(2), *jump)
    out = SafetyGate(LIMITS, "clip", PERIOD).apply(start, np.zeros(2), *jump)
    assert out.clipped and np.all(out.positions <= LIMITS.upper)
    follower = TrajectoryFollower(start, timeout_s=1.0)
    follower.accept(out.positions, out.times, 0.0)
    samples = np.array([follower.step(k * PHYSICS, start).copy() for k in range(400)])
    speed = np.abs(np.diff(samples, axis=0)).max() / PHYSICS
    assert speed <= V.max() * (1 + SLACK), speed
    assert executed_within_limits(samples[:: round(PERIOD / PHYSICS)], PERIOD)


def test_a_long_valid_trajectory_is_followed_to_the_end_not_cut_by_the_watchdog() -> None:
    """1000 points over 10 s (a slow circle), watchdog 1 s: every point is reached in turn."""
    t = np.linspace(0.01, 10.0, 1000)
    q = 0.1 * np.stack([np.cos(2 * np.pi * t / 10) - 1, np.sin(2 * np.pi * t / 10)], axis=1)
    gate = SafetyGate(LIMITS, "reject", PERIOD)
    out = gate.apply(np.zeros(2), np.zeros(2), q, t)
    assert not out.clipped
    follower = TrajectoryFollower(np.zeros(2), timeout_s=1.0)
    follower.accept(out.positions, out.times, 5.0)
    here = np.array([0.2, 0.2])
    for k in range(1, 1001):
        now = 5.0 + k * 0.01
        cmd = follower.step(now, here)
        assert np.allclose(cmd, q[k - 1], atol=1e-9), (k, cmd, q[k - 1])
    assert not follower.stale
    assert np.allclose(follower.step(15.5, here), q[-1]) and not follower.stale  # held after the end
    assert np.allclose(follower.step(16.1, here), here) and follower.stale  # timeout after the last point


def test_a_clipped_trajectory_brakes_to_rest_inside_the_box() -> None:
    """Moving at the velocity limit toward the wall, asked to jump onto it: slowed, stopped inside, then held."""
    gate = SafetyGate(TIGHT, "clip", PERIOD)
    start, vel = np.array([0.0, 0.0]), np.array([0.5, 0.0])
    out = gate.apply(start, vel, np.array([[0.27, 0.0]]), np.array([PERIOD]))
    assert out.clipped and len(out.times) > 3 and np.all(out.positions[:, 0] <= TIGHT.upper[0])
    assert within_limits(start, vel, out.positions, out.times, TIGHT)
    assert np.allclose(np.diff(out.times), PERIOD)  # braking points one period apart
    last = (out.positions[-1] - out.positions[-2]) / PERIOD
    assert np.all(np.abs(last) <= TIGHT.max_acceleration * PERIOD + 1e-12)  # can stop within a period
    stop = gate.stop(np.array([0.0, 0.1]), np.array([0.5, -0.3]))
    assert len(stop.times) >= 2 and within_limits(np.array([0.0, 0.1]), np.array([0.5, -0.3]), stop.positions,
                                                  stop.times, TIGHT)
    hold = gate.stop(np.array([0.1, 0.1]), np.zeros(2))
    assert np.allclose(hold.positions, [[0.1, 0.1], [0.1, 0.1]]) and np.allclose(hold.times, [PERIOD, 2 * PERIOD])


def test_normal_pushes_are_not_clipped() -> None:
    """The scripted expert's chunks, as the controller publishes them, pass the default limits unchanged."""
    import gymnasium as gym

    import forethought.sim.envs  # noqa: F401
    from forethought.sim.experts import make_expert

    gate = SafetyGate(LIMITS, "reject", PERIOD)
    env = gym.make("forethought/PushBlocks-v0", n_blocks=3)
    step = {"skill": "push", "object": "red_block", "target": "left"}
    expert = make_expert("forethought/PushBlocks-v0")
    passed = 0
    for seed in range(3):
        obs, _ = env.reset(seed=seed, options={"task": step})
        expert.reset()
        follower = TrajectoryFollower(obs[:2].astype(float), timeout_s=1.0)
        for k in range(80):
            a = expert.act(obs, step).astype(float)
            pos, vel = follower.state(k * PERIOD)
            out = gate.apply(pos, vel, np.stack([a, a]), np.array([PERIOD, 2 * PERIOD]))  # raises if clipped
            follower.accept(out.positions, out.times, k * PERIOD)
            obs, *_ = env.step(follower.step((k + 1) * PERIOD, obs[:2]).astype(np.float32))
            passed += 1
    env.close()
    assert passed == 240


@pytest.mark.parametrize("params, error", [
    ({"position_min": [0.3, -0.27]}, "below position_max"),
    ({"max_velocity": [0.8]}, "2 values"),
    ({"max_acceleration": [0.0, 1.0]}, "> 0"),
    ({"limit_mode": "ignore"}, "limit_mode"),
])
def test_bad_limits_are_refused(params: dict, error: str) -> None:
    p = {k: v[0] for k, v in LIMIT_PARAMS.items()} | params
    with pytest.raises(ValueError, match=error):
        SafetyGate.from_params(p, PERIOD)
