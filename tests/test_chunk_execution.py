"""Chunk execution (``ros_ws/chunk_execution.py``): alignment, ACT ensembling, replan lead, missed-tick
accounting, the planning thread; and the policies' public chunk API (``evaluation.plan_chunk``)."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forethought.ros_ws.chunk_execution import (ChunkExecutor, PlanWorker, TickMonitor, align, ensemble, landed_late,
                                                lead_steps, steps_past)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
T = 0.1
PRETRAINED = Path(__file__).resolve().parents[1] / "models" / "pretrained"


def chunk(n: int, start: float = 0.0) -> np.ndarray:
    """``[n, 2]`` actions whose x is ``start + i``: the step index is readable from the value."""
    return np.stack([start + np.arange(n, dtype=float), np.zeros(n)], axis=1)


# ----------------------------------------------------------------------------- alignment
def test_steps_in_the_past_are_dropped_never_replayed() -> None:
    a = chunk(8)
    assert len(align(a, 10.0, 10.0, T)) == 8  # planned from an observation taken now: all ahead
    assert align(a, 10.0, 10.0 + 0.05, T)[0, 0] == 0  # step 0 (due at 10.1) still ahead
    assert align(a, 10.0, 10.0 + 3 * T, T)[0, 0] == 3  # exactly 3 periods later: 3 steps are due, gone
    assert align(a, 10.0, 10.0 + 3.5 * T, T)[0, 0] == 3
    assert len(align(a, 10.0, 10.0 + 8 * T, T)) == 0
    assert steps_past(10.0, 9.0, T) == 0  # a stamp ahead of the clock drops nothing


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 16), t0=st.floats(0, 1e4), latency=st.floats(0, 3.0), period=st.floats(0.005, 0.5))
def test_aligned_setpoints_run_late_by_less_than_a_period_never_early(n: int, t0: float, latency: float,
                                                                      period: float) -> None:
    """Setpoint j goes out for ``now + (j + 1) T``; the action it carries was planned for
    ``t0 + (i + 1) T``: never earlier than planned, in order, none twice; less than one period later,
    except a chunk that landed after its last step, of which only the last step goes out (next)."""
    now = t0 + latency
    ex = ChunkExecutor(period)
    out = ex.add(chunk(n), t0, now)
    idx = out[:, 0].astype(int)
    assert np.array_equal(idx, np.arange(n - len(out), n))  # a suffix: the future steps, each once, in order
    late = landed_late(chunk(n), t0, now, period)
    for j, i in enumerate(idx):
        planned, executed = t0 + (i + 1) * period, now + (j + 1) * period
        assert executed >= planned - 1e-5 * period
        assert late or executed - planned < period * (1 + 1e-5)
    assert ex.remaining(now) == len(out)
    ahead = n - math.floor(latency / period + 1e-6)
    assert late == (ahead <= 0) and len(out) == max(1, ahead)


def test_a_chunk_landing_after_its_last_step_keeps_its_last_step_as_the_next_setpoint() -> None:
    """The scripted expert's one-step chunk under 100 ms input delay: not dropped (nothing would ever
    run); its last action goes out one period ahead of now, the past steps are not replayed."""
    ex = ChunkExecutor(T)
    one = np.array([[0.2, -0.1]])
    assert landed_late(one, 10.0, 10.0 + T, T) and not landed_late(one, 10.0, 10.0 + 0.5 * T, T)
    out = ex.add(one, 10.0, 10.0 + T)
    assert np.array_equal(out, one) and ex.remaining(10.0 + T) == 1 and ex.remaining(10.0 + 2 * T) == 0
    out = ex.add(chunk(4), 10.0, 10.0 + 7 * T)  # 4 steps, 7 periods late: only step 3
    assert out[:, 0].tolist() == [3]
    ens = ChunkExecutor(T, ensemble_k=0.5)
    ens.add(chunk(8, 0.0), 0.0, 0.0)
    assert ens.add(chunk(2, 50.0), 0.0, 3 * T)[:, 0].tolist() == [51]  # the late newest chunk sets it
    assert not ens.starved(3 * T + T)


def test_without_ensembling_the_newest_chunk_replaces_the_rest() -> None:
    ex = ChunkExecutor(T)
    ex.add(chunk(8, 0.0), 0.0, 0.0)
    out = ex.add(chunk(4, 100.0), 0.25, 0.3)  # planned at 0.25, lands at 0.3: 0 steps past
    assert out[:, 0].tolist() == [100, 101, 102, 103]
    assert ex.remaining(0.3) == 4 and ex.remaining(0.3 + 2 * T) == 2 and ex.remaining(0.3 + 4 * T) == 0


def test_act_temporal_ensembling_weights_the_oldest_most() -> None:
    """ACT: w_i = exp(-k i), i = 0 the oldest; the newest chunk sets the length."""
    k = 0.5
    old, new = chunk(8, 0.0), chunk(4, 10.0)
    out = ensemble([(0.0, old), (2 * T, new)], 2 * T, T, k)  # old: 2 steps past -> steps 2.. ahead
    w = np.exp(-k * np.arange(2))
    expected = [(w[0] * (2 + j) + w[1] * (10 + j)) / w.sum() for j in range(4)]
    assert np.allclose(out[:, 0], expected) and len(out) == 4
    ex = ChunkExecutor(T, ensemble_k=k)
    ex.add(old, 0.0, 0.0)
    assert np.allclose(ex.add(new, 2 * T, 2 * T)[:, 0], expected)
    # a chunk whose steps have all passed no longer takes part
    three = ex.add(chunk(8, 50.0), 10 * T, 10 * T)
    assert len(ex.chunks) == 1 and three[0, 0] == 50.0
    with pytest.raises(ValueError, match="temporal_ensemble_k"):
        ChunkExecutor(T, ensemble_k=-1.0)


@settings(max_examples=100, deadline=None)
@given(k=st.floats(0.01, 5.0), seeds=st.lists(st.integers(0, 10**6), min_size=1, max_size=5))
def test_ensembled_setpoints_stay_within_the_actions_they_blend(k: float, seeds: list[int]) -> None:
    """A weighted mean: each setpoint lies within the range of the chunks' actions (within limits
    whenever every chunk is)."""
    ex = ChunkExecutor(T, ensemble_k=k)
    chunks = [np.random.default_rng(s).uniform(-0.27, 0.27, (8, 2)) for s in seeds]
    for i, c in enumerate(chunks):
        out = ex.add(c, i * T, i * T + 0.01)
    lo, hi = np.min([c.min(0) for c in chunks], 0), np.max([c.max(0) for c in chunks], 0)
    assert np.all(out >= lo - 1e-12) and np.all(out <= hi + 1e-12) and len(out) == 8


def test_bad_chunks_are_refused() -> None:
    ex = ChunkExecutor(T)
    for bad in (np.zeros((0, 2)), np.zeros(2), np.array([[0.0, np.nan]])):
        with pytest.raises(ValueError, match="finite actions"):
            ex.add(bad, 0.0, 0.0)


def test_starved_after_the_setpoints_run_out_by_half_a_period() -> None:
    ex = ChunkExecutor(T)
    assert not ex.starved(5.0)  # nothing planned yet: waiting for the first chunk is not a miss
    ex.add(chunk(3), 0.0, 0.0)  # setpoints up to 0.3
    assert not ex.starved(0.3) and not ex.starved(0.34) and ex.starved(0.36)
    ex.clear()
    assert not ex.starved(1.0) and ex.remaining(1.0) == 0


def test_lead_steps_cover_the_latency_plus_one_period() -> None:
    assert lead_steps(0.0, T) == 1
    assert lead_steps(0.001, T) == 2
    assert lead_steps(0.1, T) == 2
    assert lead_steps(0.25, T) == 4


# ----------------------------------------------------------------------------- tick accounting
def test_tick_monitor_counts_skipped_slots_and_rates() -> None:
    m = TickMonitor(T)
    for i in range(11):  # on time, with jitter below half a period
        m.tick(i * T + (0.03 if i % 2 else 0.0))
    assert m.late_ticks == 0
    assert m.tick(10 * T + 2 * T) == 1  # one slot skipped
    assert m.tick(12 * T + 3.6 * T) == 3  # 3.6 periods later: 3 slots skipped
    m.starved()
    m.replanned(40.0)
    m.replanned(60.0)
    values = m.window(2.0)
    assert values["missed_ticks"] == 5 and values["late_ticks"] == 4 and values["starved_ticks"] == 1
    assert values["control_rate_hz"] == pytest.approx(12 / 2.0) and values["replan_rate_hz"] == pytest.approx(1.0)
    assert values["replan_ms_median"] == 50.0 and values["replan_ms_max"] == 60.0
    assert "replan_ms_median" not in m.window(3.0)  # a new window
    m.tick(0.0)  # the clock went back (a sim reset): no miss
    assert m.late_ticks == 4


# ----------------------------------------------------------------------------- the planning thread
def test_plan_worker_never_blocks_and_hands_back_results_and_errors() -> None:
    gate, done = threading.Event(), threading.Event()

    def plan(job: int) -> np.ndarray:
        if job < 0:
            raise RuntimeError("policy bug")
        gate.wait(5)
        return chunk(job)

    w = PlanWorker(plan, done.set)
    try:
        t0 = time.perf_counter()
        assert w.submit(3) and w.busy
        assert not w.submit(4)  # one job at a time
        assert time.perf_counter() - t0 < 0.5 and w.take() is None  # the caller is never blocked
        gate.set()
        assert done.wait(5)
        r = w.take()
        assert r is not None and r.job == 3 and r.error is None and len(r.chunk) == 3 and r.compute_ms >= 0
        assert not w.busy and w.take() is None
        done.clear()
        assert w.submit(-1) and done.wait(5)
        r = w.take()
        assert isinstance(r.error, RuntimeError) and r.chunk is None
        assert w.submit(2)  # the thread survived the error
        assert done.wait(5)
    finally:
        assert w.stop(5)
    assert not w.submit(1)


def test_plan_worker_stops_while_a_plan_runs() -> None:
    started = threading.Event()
    w = PlanWorker(lambda job: (started.set(), time.sleep(0.3), chunk(1))[2])
    assert w.submit(0) and started.wait(5)
    assert w.stop(5)  # waits for the plan in flight, then ends


# ----------------------------------------------------------------------------- the policies' chunk API
def run_act(policy, observations: np.ndarray) -> np.ndarray:
    return np.array([policy.act(o) for o in observations])


def run_chunks(policy, observations: np.ndarray) -> np.ndarray:
    """Execute ``plan_chunk`` chunks whole, replanning when one runs out, with the observations
    since the previous plan (what sync execution does)."""
    from forethought.models.evaluation import plan_chunk

    out, queue, since = [], [], []
    for o in observations:
        since.append(o)
        if not queue:
            queue = list(plan_chunk(policy, np.array(since)))
            since = []
        out.append(queue.pop(0))
    return np.array(out)


def observations(n: int) -> np.ndarray:
    from forethought.sim import scene

    rng = np.random.default_rng(0)
    obs = np.zeros((n, scene.OBS_DIM), dtype=np.float32)
    obs[:, scene.PUSHER_POS] = rng.uniform(-0.2, 0.2, (n, 2))
    obs[:, scene.block_slice("red_block")] = (1.0, 0.05, 0.0, 0.0)
    return obs


@pytest.mark.parametrize("name", ["proposer", "dmpc"])
def test_plan_chunk_executed_whole_gives_the_actions_of_act(name: str) -> None:
    """``plan_chunk`` is ``act``'s chunk, bit for bit, from the same history and seed."""
    import forethought.models.control.policy  # noqa: F401  (registers dmpc)
    from forethought.models.evaluation import PolicySpec, build_policy
    from forethought.sim import PUSH_BLOCKS_ID

    dmpc = name == "dmpc"
    spec = PolicySpec(model=PRETRAINED / "proposer-pushblocks", env_id=PUSH_BLOCKS_ID, observation_dim=16,
                      action_dim=2, num_inference_steps=2, action_steps=3,
                      planner="ssr" if dmpc else None, options={"samples": "4"} if dmpc else {},
                      dynamics=str(PRETRAINED / "dynamics-pushblocks") if dmpc else None)
    a, b = build_policy(name, spec), build_policy(name, spec)
    task = {"skill": "push", "object": "red_block", "target": "left"}
    obs = observations(8)
    a.reset(task, 7)
    b.reset(task, 7)
    by_act, by_chunk = run_act(a, obs), run_chunks(b, obs)
    assert by_act.dtype == by_chunk.dtype == np.float32 and by_act.shape == (8, 2)
    assert np.array_equal(by_act, by_chunk)
    c = b.plan_chunk(obs[:1])
    assert c.shape == (3, 2) and c.dtype == np.float32
    with pytest.raises(ValueError, match="T >= 1"):
        b.plan_chunk(np.zeros((0, 16), dtype=np.float32))


def test_a_closed_loop_policy_gives_a_one_action_chunk() -> None:
    from forethought.models.evaluation import PolicySpec, build_policy, plan_chunk
    from forethought.sim import PUSH_BLOCKS_ID

    spec = PolicySpec(model=None, env_id=PUSH_BLOCKS_ID, observation_dim=16, action_dim=2)
    a, b = build_policy("expert", spec), build_policy("expert", spec)
    task = {"skill": "push", "object": "red_block", "target": "left"}
    a.reset(task, 0)
    b.reset(task, 0)
    obs = observations(4)
    out = plan_chunk(b, obs)
    assert out.shape == (1, 2) and out.dtype == np.float32
    assert np.array_equal(out[0], np.asarray(a.act(obs[-1]), dtype=np.float32))
