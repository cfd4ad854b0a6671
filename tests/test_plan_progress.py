"""Plan-level progress (``sim.plan_progress``) on scripted, timed observation sequences, without ROS or MuJoCo."""

from __future__ import annotations

import math

import numpy as np
import pytest

from forethought.sim import scene
from forethought.sim.plan_progress import DONE, DWELL_S, FAILED, RUNNING, PlanProgress, disturbance, named_blocks

RED_LEFT = {"skill": "push", "object": "red_block", "target": "left"}
GREEN_RIGHT = {"skill": "push", "object": "green_block", "target": "right"}
BLUE_CENTER = {"skill": "push", "object": "blue_block", "target": "center"}
MIDDLE = (0.0, 0.15)  # inside no region


def obs(red=MIDDLE, green=(0.1, 0.15), blue=(-0.1, 0.15)) -> np.ndarray:
    """A 3-block PushBlocks observation with the pusher parked at a corner."""
    o = np.zeros(scene.OBS_DIM, dtype=np.float32)
    o[scene.PUSHER_POS] = (0.25, -0.25)
    for name, xy in zip(scene.BLOCK_NAMES, (red, green, blue)):
        s = scene.block_slice(name).start
        o[s : s + 3] = (1.0, *xy)
    return o


LEFT, RIGHT, CENTER = scene.REGIONS["left"].center, scene.REGIONS["right"].center, scene.REGIONS["center"].center


class Clock:
    """Observation times at 10 Hz (``dt`` = 0.1 s, summed in floating point as a driver's stamps are)."""

    def __init__(self, dt: float = 0.1) -> None:
        self.t, self.dt = 0.0, dt

    def __call__(self) -> float:
        self.t += self.dt
        return self.t


def feed(progress: PlanProgress, o: np.ndarray, times: int, clock: Clock) -> list[str | None]:
    return [progress.update(o, clock()) for _ in range(times)]


def test_steps_settle_in_order_and_the_plan_is_done_only_when_all_hold() -> None:
    p, clock = PlanProgress([RED_LEFT, GREEN_RIGHT], dwell_s=0.1), Clock()
    assert p.active == RED_LEFT
    assert feed(p, obs(red=LEFT), 1, clock) == [None]  # not settled yet
    assert feed(p, obs(), 1, clock) == [None]  # the run of holding observations restarts
    assert feed(p, obs(red=LEFT), 2, clock) == [None, "settled"]
    assert p.active == GREEN_RIGHT and p.status == RUNNING
    assert feed(p, obs(red=LEFT, green=RIGHT), 2, clock) == [None, DONE]
    assert p.status == DONE and p.active is None and p.steps_done == 2
    assert p.update(obs(red=LEFT, green=RIGHT), clock()) is None  # finished: nothing more happens


def test_the_default_dwell_is_three_observations_at_10_hz_whatever_the_rounding() -> None:
    """``DWELL_S`` at 10 Hz is the former ``settle_steps=3``, at any start time (stamps summed in
    floating point land on either side of 0.2 s)."""
    for start in np.arange(0.0, 50.0, 0.7):
        p, clock = PlanProgress([RED_LEFT]), Clock()
        clock.t = float(start)
        assert feed(p, obs(red=LEFT), 3, clock) == [None, None, DONE], start
    assert DWELL_S == pytest.approx(0.2)


def test_success_counts_only_when_it_dwells_on_newer_observations_without_gaps() -> None:
    p = PlanProgress([RED_LEFT], dwell_s=1.0, max_gap_s=0.5)
    assert [p.update(obs(red=LEFT), t) for t in (10.0, 10.4, 10.8)] == [None] * 3
    assert p.held(10.8) == pytest.approx(0.8)
    assert p.update(obs(red=LEFT), 10.8) is None and p.update(obs(red=LEFT), 5.0) is None  # not newer: ignored
    assert p.update(obs(red=LEFT), math.nan) is None
    assert p.update(obs(red=LEFT), 11.5) is None and p.held(11.5) == 0.0  # 0.7 s without observations: the run restarts
    assert p.update(obs(), 11.6) is None and p.since is None  # no longer holds
    times = [11.7 + 0.25 * k for k in range(5)]
    assert [p.update(obs(red=LEFT), t) for t in times] == [None, None, None, None, DONE]  # 1.0 s of holding, no gap


def test_a_step_broken_by_a_later_one_is_reissued_then_the_plan_fails_with_a_reason() -> None:
    p, clock = PlanProgress([RED_LEFT, GREEN_RIGHT, BLUE_CENTER], max_reissues=1, dwell_s=0.0), Clock()
    assert p.update(obs(red=LEFT), clock()) == "settled" and p.active == GREEN_RIGHT
    # pushing green to the right knocked red out of "left": step 1 is issued again
    assert p.update(obs(red=MIDDLE, green=RIGHT), clock()) == "reissue"
    assert p.active == RED_LEFT and p.reissues == [1, 0, 0]
    # red back in place: the next step not holding is blue's (green still holds)
    assert p.update(obs(red=LEFT, green=RIGHT), clock()) == "settled" and p.active == BLUE_CENTER
    # blue's push breaks red again: one re-issue was allowed, so the plan fails and says why
    assert p.update(obs(red=MIDDLE, green=RIGHT, blue=CENTER), clock()) == FAILED
    assert p.status == FAILED and p.active is None
    assert "step 1" in p.reason and "max_reissues=1" in p.reason and "step 3" in p.reason


def test_steps_that_already_hold_are_skipped_and_then_guarded() -> None:
    p, clock = PlanProgress([RED_LEFT, GREEN_RIGHT, BLUE_CENTER], max_reissues=0, dwell_s=0.0), Clock()
    # green starts in "right": after red settles, blue is next
    assert p.update(obs(red=LEFT, green=RIGHT), clock()) == "settled" and p.active == BLUE_CENTER
    # green held at a settle, so knocking it out later is a break (with no re-issues allowed: failure)
    assert p.update(obs(red=LEFT, green=MIDDLE, blue=CENTER), clock()) == FAILED and "step 2" in p.reason


def test_fail_and_bad_settings() -> None:
    p = PlanProgress([RED_LEFT])
    p.fail("step 1 not achieved within 200 env steps")
    assert p.status == FAILED and p.active is None and "200" in p.reason
    for kwargs in ({"max_reissues": -1}, {"dwell_s": -0.1}, {"dwell_s": math.inf}, {"max_reissues": 1.5},
                   {"max_gap_s": 0.0}, {"max_retries": True}):
        with pytest.raises(ValueError):
            PlanProgress([RED_LEFT], **kwargs)
    with pytest.raises(ValueError, match="at least one step"):
        PlanProgress([])


def test_disturbance_counts_only_blocks_the_step_does_not_name() -> None:
    start = obs()
    knocked = obs(red=LEFT, green=(0.1, 0.12))  # red pushed (named), green moved 3 cm
    assert disturbance(RED_LEFT, start, knocked) == pytest.approx(0.03, abs=1e-6)
    assert disturbance(GREEN_RIGHT, start, obs(green=RIGHT)) == 0.0
    next_to = {"skill": "push", "object": "red_block", "target": "green_block"}
    assert named_blocks(next_to) == ("red_block", "green_block")
    assert disturbance(next_to, start, knocked) == 0.0  # blue did not move
    assert named_blocks({"skill": "reach", "target": "left"}) == ()
    one_block = obs()
    one_block[scene.block_slice("green_block")] = 0.0
    one_block[scene.block_slice("blue_block")] = 0.0
    assert disturbance(RED_LEFT, one_block, one_block) == 0.0  # no bystanders


def test_a_retried_step_is_retried_max_retries_times_then_fails_with_the_reason() -> None:
    p, clock = PlanProgress([RED_LEFT, GREEN_RIGHT], dwell_s=0.1, max_retries=2), Clock()
    assert feed(p, obs(red=LEFT), 1, clock) == [None]
    assert p.retry("was not achieved within 5 s") == "retry" and p.since is None  # the dwell restarts
    assert p.active == RED_LEFT
    assert feed(p, obs(red=LEFT), 2, clock) == [None, "settled"]  # retries are per step: green has its own
    reasons = ("was not achieved within 5 s", "was interrupted: policy_controller restarted", "was not achieved within 5 s")
    assert [p.retry(why) for why in reasons] == ["retry", "retry", FAILED]
    assert p.status == FAILED and p.active is None and p.retries == [1, 2]
    assert "step 2" in p.reason and "within 5 s" in p.reason and "max_retries=2" in p.reason
    assert p.retry("was not achieved within 5 s") is None  # finished: nothing more happens
    with pytest.raises(ValueError, match="max_retries"):
        PlanProgress([RED_LEFT], max_retries=-1)


def test_without_retries_a_retry_fails_at_once() -> None:
    p = PlanProgress([RED_LEFT])
    assert p.retry("was not achieved within 100 env steps") == FAILED and "within 100 env steps" in p.reason


def test_a_clock_that_restarts_needs_restart_clock_then_dwells_again() -> None:
    step = {"skill": "push", "object": "red_block", "target": "left"}
    progress = PlanProgress([step], dwell_s=0.2)
    done = obs(red=scene.REGIONS["left"].center)
    assert progress.update(done, 30.0) is None and progress.update(done, 30.1) is None
    assert progress.update(done, 1.0) is None  # older than the last stamp: ignored
    progress.restart_clock()
    assert [progress.update(done, t) for t in (1.0, 1.1, 1.2)] == [None, None, "done"]
