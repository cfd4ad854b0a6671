"""forethought/Reacher-v5 and forethought/Pusher-v5: stock behaviour kept, goals settable, success reported."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest

from forethought.sim.adapters import (
    PUSHER_DEFAULT_GOAL,
    PUSHER_REWARD_WEIGHTS,
    PUSHER_SUCCESS_TOL,
    REACHER_REWARD_WEIGHTS,
    REACHER_SUCCESS_TOL,
    PusherGoalEnv,
    ReacherGoalEnv,
)
from forethought.sim.envs import register_envs
from forethought.sim.expert_reacher import reacher_ik

REACHER, PUSHER = "forethought/Reacher-v5", "forethought/Pusher-v5"


def reach(xy):
    return {"skill": "reach", "target": list(xy)}


def test_registered_with_stock_limits_and_explicit_weights():
    register_envs()  # idempotent: a second call must not raise or re-register
    for env_id, steps, weights in ((REACHER, 50, REACHER_REWARD_WEIGHTS), (PUSHER, 100, PUSHER_REWARD_WEIGHTS)):
        spec = gym.spec(env_id)
        assert spec.max_episode_steps == steps
        assert spec.kwargs == weights  # every weight passed, none left to the stock default
    assert set(PUSHER_REWARD_WEIGHTS) == {"reward_near_weight", "reward_dist_weight", "reward_control_weight"}
    env = gym.make(REACHER)
    assert env.unwrapped._reward_control_weight == REACHER_REWARD_WEIGHTS["reward_control_weight"] == 1.0
    env.close()


@pytest.mark.parametrize("stock, ours", [("Reacher-v5", REACHER), ("Pusher-v5", PUSHER)])
def test_same_seed_same_episode_as_stock(stock, ours):
    a, b = gym.make(stock), gym.make(ours)
    for seed in (0, 7):
        oa, _ = a.reset(seed=seed)
        ob, _ = b.reset(seed=seed)
        np.testing.assert_array_equal(oa, ob)
        rng = np.random.default_rng(seed)
        for _ in range(10):
            act = rng.uniform(-1, 1, a.action_space.shape)
            ra, rb = a.step(act), b.step(act)
            np.testing.assert_array_equal(ra[0], rb[0])
            assert ra[1] == rb[1]
    a.close(), b.close()


@pytest.mark.parametrize("env_id", [REACHER, PUSHER])
def test_reward_is_sum_of_terms_with_the_given_weights(env_id):
    env = gym.make(env_id, reward_control_weight=0.3)
    env.reset(seed=0)
    act = np.full(env.action_space.shape, 0.5)
    _, reward, _, _, info = env.step(act)
    terms = [v for k, v in info.items() if k.startswith("reward_")]
    assert reward == pytest.approx(sum(terms))
    assert info["reward_ctrl"] == pytest.approx(-0.3 * np.square(act).sum())
    env.close()


def test_reacher_goal_from_options_is_honoured():
    env = gym.make(REACHER)
    target = [0.12, -0.07]
    for seed in (0, 1):
        obs, info = env.reset(seed=seed, options={"task": reach(target)})
        np.testing.assert_allclose(obs[4:6], target)
        assert info["task"] == reach(target)
        # obs[8:10] is fingertip - goal, so the reported distance must match it
        assert info["distance"] == pytest.approx(np.linalg.norm(obs[8:10]))
    obs, _, _, _, info = env.step(np.zeros(2))
    np.testing.assert_allclose(obs[4:6], target)  # the goal stays put
    assert info["task"] == reach(target)
    # without a task the goal is random again, and differs per seed
    g0 = env.reset(seed=0)[0][4:6]
    g1 = env.reset(seed=1)[0][4:6]
    assert not np.allclose(g0, target) and not np.allclose(g0, g1)
    env.close()


def test_reacher_set_task_mid_episode_and_success_flag():
    env = gym.make(REACHER)
    env.reset(seed=3)
    base = env.unwrapped
    target = np.array([-0.05, 0.15])
    base.set_task(reach(target))
    obs, _, _, _, info = env.step(np.zeros(2))
    np.testing.assert_allclose(obs[4:6], target)
    assert info["task"] == reach(target.tolist())
    assert not info["is_success"] and info["distance"] > REACHER_SUCCESS_TOL
    # put the arm on the IK solution: now within tolerance
    qpos, qvel = base.data.qpos.copy(), np.zeros(base.model.nv)
    qpos[:2] = reacher_ik(target, np.zeros(2))
    base.set_state(qpos, qvel)
    obs, _, _, _, info = env.step(np.zeros(2))
    assert info["is_success"] and info["distance"] < 1e-3
    env.close()


@pytest.mark.parametrize(
    "options",
    [
        {"task": reach([0.25, 0.0])},  # beyond the 0.2 m goal radius
        {"task": reach([0.15, 0.15])},  # |.| = 0.212
        {"task": reach([float("nan"), 0.0])},
        {"task": {"skill": "reach", "target": "center"}},  # PushBlocks regions mean nothing here
        {"task": {"skill": "push", "object": "red_block", "target": "left"}},
        {"task": {"skill": "reach", "target": [0.1, 0.0], "speed": 1}},
        {"goal": [0.1, 0.0]},  # unknown option key
    ],
)
def test_reacher_rejects_bad_tasks(options):
    env = gym.make(REACHER)
    with pytest.raises(ValueError):
        env.reset(seed=0, options=options)
    env.reset(seed=0)
    if "task" in options:
        with pytest.raises(ValueError):
            env.unwrapped.set_task(options["task"])
    env.close()


def test_pusher_goal_settable():
    env = gym.make(PUSHER)
    goal = [0.3, -0.3]
    obs, info = env.reset(seed=0, options={"goal": goal})
    np.testing.assert_allclose(obs[20:22], goal)  # obs[20:23] is the goal body, world frame
    assert info["goal"] == pytest.approx(goal)
    assert info["distance"] > 0.17  # the object starts away from the goal, as in the stock env
    np.testing.assert_allclose(env.step(np.zeros(7))[0][20:22], goal)
    env.unwrapped.set_goal([0.5, 0.0])
    obs, _, _, _, info = env.step(np.zeros(7))
    np.testing.assert_allclose(obs[20:22], [0.5, 0.0])
    assert info["distance"] == pytest.approx(np.linalg.norm(obs[17:19] - obs[20:22]))
    # a plain reset returns to the default goal
    obs, info = env.reset(seed=0)
    np.testing.assert_allclose(obs[20:22], PUSHER_DEFAULT_GOAL)
    env.close()
    env = gym.make(PUSHER, goal=[0.2, -0.4])
    np.testing.assert_allclose(env.reset(seed=0)[0][20:22], [0.2, -0.4])
    env.close()


def test_pusher_success_when_object_on_goal():
    env = gym.make(PUSHER)
    env.reset(seed=0, options={"goal": [0.35, -0.2]})
    base = env.unwrapped
    m, qpos = base.model, base.data.qpos.copy()
    obj_rest = m.body("object").pos[:2]
    qpos[m.joint("obj_slidex").qposadr[0]] = 0.35 - obj_rest[0] + 0.8 * PUSHER_SUCCESS_TOL
    qpos[m.joint("obj_slidey").qposadr[0]] = -0.2 - obj_rest[1]
    base.set_state(qpos, np.zeros(m.nv))
    _, _, _, _, info = env.step(np.zeros(7))
    assert info["is_success"] and info["distance"] == pytest.approx(0.8 * PUSHER_SUCCESS_TOL, abs=2e-3)
    env.close()


@pytest.mark.parametrize("goal", [[0.0, 0.0], [0.45, 0.5], [np.inf, 0.0], [0.3], "left", None])
def test_pusher_rejects_bad_goals(goal):
    env = gym.make(PUSHER)
    with pytest.raises(ValueError):
        env.reset(seed=0, options={"goal": goal})
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.unwrapped.set_goal(goal)
    env.close()
    with pytest.raises(ValueError):
        PusherGoalEnv(goal=goal)


def test_adapters_pickle_to_the_same_env():
    for env in (ReacherGoalEnv(success_tolerance=0.02), PusherGoalEnv(goal=[0.3, -0.3])):
        clone = pickle.loads(pickle.dumps(env))
        assert type(clone) is type(env) and clone.success_tolerance == env.success_tolerance
        env.close(), clone.close()
    assert clone.default_goal.tolist() == [0.3, -0.3]


@pytest.mark.parametrize("env_id", [REACHER, PUSHER])
def test_gymnasium_env_checker_passes(env_id):
    from gymnasium.utils.env_checker import check_env

    with pytest.warns(UserWarning):  # the stock spaces' infinite bounds and [-2, 2] torques draw warnings
        check_env(gym.make(env_id).unwrapped, skip_render_check=True)
