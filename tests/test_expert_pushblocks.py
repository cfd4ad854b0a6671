"""The PushBlocks scripted expert: success rates on fixed seeds, limits, and its path planner.

The full numbers (100 seeds, Wilson intervals) come from ``bench/experts.py``; here 20 seeds per
skill with thresholds a regression would break.
"""

from __future__ import annotations

import numpy as np
import pytest

from forethought.sim import scene
from forethought.sim.expert_pushblocks import AVOID_RADIUS, PushBlocksExpert, plan_waypoint
from forethought.sim.experts import make_expert
from forethought.sim.push_blocks import PushBlocksEnv, sample_task
from forethought.sim.scene import BLOCK_NAMES, WORKSPACE_HALF

SEEDS = range(20)


def run(env: PushBlocksEnv, expert: PushBlocksExpert, seed: int, task: dict, n_blocks: int) -> tuple[bool, int]:
    obs, info = env.reset(seed=seed, options={"task": task, "n_blocks": n_blocks})
    expert.reset()
    for t in range(200):  # the registered time limit
        a = expert.act(obs, task)
        assert a.dtype == np.float32 and a.shape == (2,)
        assert np.all(np.abs(a) <= WORKSPACE_HALF)
        obs, _, terminated, _, info = env.step(a)
        if terminated:
            return True, t + 1
    return bool(info["is_success"]), 200


def success_rate(n_blocks: int, skills: tuple[str, ...], seeds=SEEDS, task_fn=None) -> float:
    env, expert = PushBlocksEnv(n_blocks=n_blocks), make_expert("forethought/PushBlocks-v0")
    assert isinstance(expert, PushBlocksExpert)
    present = BLOCK_NAMES[:n_blocks]
    wins = 0
    for s in seeds:
        task = task_fn(s) if task_fn else sample_task(np.random.default_rng(s), present, skills)
        wins += run(env, expert, s, task, n_blocks)[0]
    env.close()
    return wins / len(seeds)


def test_push_one_block():
    assert success_rate(1, ("push",)) >= 0.95


def test_reach_among_three_blocks():
    assert success_rate(3, ("reach",)) >= 0.95


def test_push_among_three_blocks():
    assert success_rate(3, ("push",)) >= 0.9


def test_push_next_to_another_block():
    def task(seed: int) -> dict:
        rng = np.random.default_rng(seed)
        obj, target = rng.choice(BLOCK_NAMES, size=2, replace=False)
        return {"skill": "push", "object": str(obj), "target": str(target)}

    assert success_rate(3, ("push",), task_fn=task) >= 0.9


def test_holds_still_when_done():
    env, expert = PushBlocksEnv(n_blocks=1), PushBlocksExpert()
    task = {"skill": "reach", "target": "center"}
    obs, _ = env.reset(seed=0, options={"task": task})
    assert run(env, expert, 0, task, 1)[0]
    obs = env._get_obs()
    np.testing.assert_allclose(expert.act(obs, task), obs[:2], atol=1e-6)
    env.close()


def test_rejects_bad_input():
    expert = PushBlocksExpert()
    env = PushBlocksEnv(n_blocks=1)
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="green_block"):  # absent in this scene: lists the valid ones
        expert.act(obs, {"skill": "push", "object": "red_block", "target": "green_block"})
    with pytest.raises(ValueError, match="obs"):
        expert.act(np.full(scene.OBS_DIM, np.nan), {"skill": "reach", "target": "center"})
    with pytest.raises(ValueError, match="travel_step"):
        PushBlocksExpert(travel_step=-1.0)
    env.close()


def test_planner_goes_around_blocks():
    obstacles = np.array([[0.0, 0.0], [0.0, 0.12]])
    p, goal = np.array([-0.15, 0.01]), np.array([0.15, 0.0])
    closest = np.inf
    for _ in range(100):
        w = plan_waypoint(p, goal, obstacles, AVOID_RADIUS)
        step = w - p
        n = np.linalg.norm(step)
        if n < 1e-9:
            break
        p = p + step * min(1.0, 0.01 / n)
        closest = min(closest, float(np.min(np.linalg.norm(obstacles - p, axis=1))))
    np.testing.assert_allclose(p, goal, atol=1e-6)
    assert closest >= 0.9 * AVOID_RADIUS
    # A clear line is taken directly.
    np.testing.assert_allclose(plan_waypoint(np.array([-0.2, -0.2]), np.array([0.2, -0.2]), obstacles, 0.05), [0.2, -0.2])


def test_follows_a_task_changed_mid_episode():
    env, expert = PushBlocksEnv(n_blocks=2), PushBlocksExpert()
    obs, _ = env.reset(seed=3, options={"task": {"skill": "push", "object": "red_block", "target": "left"}})
    for _ in range(5):
        obs = env.step(expert.act(obs, env.task))[0]
    env.set_task({"skill": "push", "object": "green_block", "target": "top_right"})
    for _ in range(200):
        obs, _, terminated, _, info = env.step(expert.act(obs, env.task))
        if terminated:
            break
    assert info["is_success"] and info["task"]["object"] == "green_block"
    env.close()
