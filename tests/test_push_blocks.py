"""Contract tests for the PushBlocks env (``forethought/PushBlocks-v0``)."""

from __future__ import annotations

import math

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import forethought.sim.envs  # noqa: F401  (registers the envs)
from forethought.sim import scene
from forethought.sim.push_blocks import PushBlocksEnv, sample_task, wrap_yaw
from forethought.sim.scene import BLOCK_NAMES, OBS_DIM, REGION_NAMES, WORKSPACE_HALF

ENV_ID = "forethought/PushBlocks-v0"
PUSH_RED_LEFT = {"skill": "push", "object": "red_block", "target": "left"}


def qpos_of(env: PushBlocksEnv, joint: str) -> float:
    m = env.model
    return float(env.data.qpos[m.jnt_qposadr[m.joint(joint).id]])


def test_registered_with_time_limit_and_rate():
    env = gym.make(ENV_ID)
    assert env.spec.max_episode_steps == 200
    assert env.unwrapped.dt == pytest.approx(0.1)
    assert env.metadata["render_fps"] == 10
    assert env.action_space == gym.spaces.Box(-WORKSPACE_HALF, WORKSPACE_HALF, (2,), np.float32)
    assert env.observation_space.shape == (OBS_DIM,) and env.observation_space.dtype == np.float32
    env.close()


@pytest.mark.parametrize("n_blocks", [1, 3])
def test_check_env(n_blocks):
    env = PushBlocksEnv(n_blocks=n_blocks)
    check_env(env, skip_render_check=True)
    env.close()


def test_xml_matches_scene():
    env = PushBlocksEnv()
    m = env.model
    for name, region in scene.REGIONS.items():
        g = m.geom(f"region_{name}")
        np.testing.assert_allclose(g.pos[:2], region.center, atol=1e-9)
        np.testing.assert_allclose(g.size[:2], region.half, atol=1e-9)
        assert g.contype[0] == 0 and g.conaffinity[0] == 0, f"region {name} must be visual only"
    for b in BLOCK_NAMES:
        np.testing.assert_allclose(m.geom(b).size, [scene.BLOCK_HALF] * 3)
        assert m.body(b).id == m.geom(b).bodyid[0]
    assert m.geom("pusher").size[0] == pytest.approx(scene.PUSHER_RADIUS)
    assert m.geom("wall_right").pos[0] - m.geom("wall_right").size[0] == pytest.approx(scene.TABLE_HALF)
    for j in ("pusher_x", "pusher_y"):
        assert m.jnt_range[m.joint(j).id][1] >= WORKSPACE_HALF
    np.testing.assert_array_equal(m.actuator_ctrlrange, [[-1, 1], [-1, 1]])
    assert m.camera("top").id >= 0
    env.close()


def rollout(seed: int, n: int = 15, n_blocks: int = 3) -> np.ndarray:
    env = PushBlocksEnv(n_blocks=n_blocks)
    obs, _ = env.reset(seed=seed)
    acts = np.random.default_rng(123).uniform(-0.25, 0.25, size=(n, 2)).astype(np.float32)
    out = [obs]
    for a in acts:
        out.append(env.step(a)[0])
    env.close()
    return np.array(out)


def test_determinism_by_seed():
    a, b, c = rollout(7), rollout(7), rollout(8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[0], c[0])


@pytest.mark.parametrize("n_blocks", [1, 2, 3])
def test_observation_layout(n_blocks):
    env = PushBlocksEnv(n_blocks=n_blocks)
    obs, info = env.reset(seed=3)
    assert env.present == BLOCK_NAMES[:n_blocks]
    for _ in range(3):
        obs, _, _, _, info = env.step(np.array([0.0, 0.0], np.float32))
    assert obs.dtype == np.float32 and obs.shape == (OBS_DIM,)
    assert obs[0] == pytest.approx(qpos_of(env, "pusher_x"), abs=1e-6)
    assert obs[1] == pytest.approx(qpos_of(env, "pusher_y"), abs=1e-6)
    assert obs[2] == pytest.approx(env.data.qvel[env.model.joint("pusher_x").dofadr[0]], abs=1e-5)
    assert info["pusher"] == pytest.approx(obs[:2].tolist(), abs=1e-6)
    assert scene.present_blocks(obs) == BLOCK_NAMES[:n_blocks]
    assert [float(obs[i]) for i in scene.PRESENCE_FLAGS] == [1.0] * n_blocks + [0.0] * (3 - n_blocks)
    mujoco.mj_kinematics(env.model, env.data)  # body poses as render() sees them
    assert set(info["blocks"]) == set(BLOCK_NAMES[:n_blocks])
    for i, b in enumerate(BLOCK_NAMES):
        s = scene.block_slice(b)
        if i < n_blocks:
            assert obs[s.start] == 1.0
            x, y, yaw = (qpos_of(env, f"{b}_{j}") for j in ("x", "y", "yaw"))
            np.testing.assert_allclose(obs[s.start + 1 : s.stop], [x, y, wrap_yaw(yaw)], atol=1e-6)
            assert -math.pi / 4 - 1e-6 <= obs[s.start + 3] < math.pi / 4 + 1e-6
            assert info["blocks"][b] == pytest.approx([x, y, yaw])
            np.testing.assert_allclose(env.data.body(b).xpos[:2], [x, y], atol=1e-9)
            assert max(abs(x), abs(y)) < scene.TABLE_HALF
        else:
            np.testing.assert_array_equal(obs[s], 0.0)
            g = env.model.geom(b)
            assert g.contype[0] == 0 and g.conaffinity[0] == 0 and g.rgba[3] == 0.0
            assert np.max(np.abs(env.data.body(b).xpos[:2])) > 1.0, "absent blocks are parked off the table"
    env.close()


def test_wrap_yaw():
    for yaw, want in [(0.0, 0.0), (math.pi / 2, 0.0), (math.pi / 4 + 0.1, -math.pi / 4 + 0.1), (-3.0, -3.0 + math.pi)]:
        assert wrap_yaw(yaw) == pytest.approx(want)
        assert -math.pi / 4 <= wrap_yaw(yaw) < math.pi / 4


def test_reset_options_n_blocks_and_task():
    env = PushBlocksEnv(n_blocks=3)
    obs, info = env.reset(seed=0, options={"n_blocks": 1, "task": PUSH_RED_LEFT})
    assert env.present == ("red_block",) and scene.present_blocks(obs) == ("red_block",)
    assert env.task == PUSH_RED_LEFT and info["task"] == PUSH_RED_LEFT
    obs, _ = env.reset(seed=0)  # back to the constructor's n_blocks
    assert env.present == BLOCK_NAMES
    env.close()


def test_start_layout_valid_and_not_solved():
    env = PushBlocksEnv(n_blocks=3)
    for seed in range(30):
        obs, info = env.reset(seed=seed)
        assert not info["is_success"] and info["distance"] >= 0.02
        xy = np.array([scene.block_xy(obs, b) for b in BLOCK_NAMES])
        assert np.all(np.abs(xy) <= 0.13 + 1e-6)
        gaps = [np.linalg.norm(xy[i] - xy[j]) for i in range(3) for j in range(i + 1, 3)]
        assert min(gaps) >= 0.09 - 1e-6
        assert np.min(np.linalg.norm(xy - obs[:2], axis=1)) >= 0.06 - 1e-6
        assert env.data.ncon == 0
    env.close()


def test_random_tasks_cover_all_kinds():
    rng = np.random.default_rng(0)
    tasks = [sample_task(rng, BLOCK_NAMES) for _ in range(300)]
    kinds = {
        (t["skill"], "block" if t["target"] in BLOCK_NAMES else "region" if isinstance(t["target"], str) else "point")
        for t in tasks
    }
    assert kinds == {("push", "block"), ("push", "region"), ("reach", "region"), ("reach", "point")}
    for t in tasks:
        assert scene.validate_step(t, BLOCK_NAMES) == t
    assert all(t["target"] not in BLOCK_NAMES for t in (sample_task(rng, ("red_block",)) for _ in range(50)))


@pytest.mark.parametrize(
    "bad, names",
    [
        ({"skill": "push", "object": "yellow_block", "target": "left"}, ["red_block", "green_block", "blue_block"]),
        ({"skill": "push", "object": "red_block", "target": "middle"}, list(REGION_NAMES)),
        ({"skill": "reach", "target": "nowhere"}, list(REGION_NAMES)),
        ({"skill": "grasp", "object": "red_block"}, ["push", "reach"]),
    ],
)
def test_unknown_names_raise_listing_valid_ones(bad, names):
    env = PushBlocksEnv()
    for call in (lambda: env.reset(seed=0, options={"task": bad}), lambda: env.set_task(bad)):
        with pytest.raises(ValueError) as e:
            call()
        for n in names:
            assert repr(n) in str(e.value) or n in str(e.value)
    env.close()


def test_absent_block_and_bad_options_raise():
    env = PushBlocksEnv(n_blocks=1)
    with pytest.raises(ValueError, match="red_block"):
        env.reset(seed=0, options={"task": {"skill": "push", "object": "blue_block", "target": "left"}})
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.set_task({"skill": "push", "object": "red_block", "target": "green_block"})
    for bad in (0, 4, 1.5, "2"):
        with pytest.raises(ValueError, match="n_blocks"):
            env.reset(seed=0, options={"n_blocks": bad})
    with pytest.raises(ValueError, match="n_blocks"):
        PushBlocksEnv(n_blocks=0)
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"goal": "left"})
    env.close()


def test_set_task_mid_episode_changes_reward_and_success():
    env = PushBlocksEnv(n_blocks=2)
    obs, info = env.reset(seed=5, options={"task": PUSH_RED_LEFT})
    hold = obs[:2].copy()
    obs, r, term, _, info = env.step(hold)
    assert r < 0 and not term and not info["is_success"]
    env.set_task({"skill": "reach", "target": [float(obs[0]), float(obs[1])]})
    assert env.task["skill"] == "reach"
    obs, r, term, _, info = env.step(hold)
    assert r == 0.0 and term and info["is_success"] and info["distance"] == 0.0
    assert info["task"] == env.task
    env.set_task({"skill": "reach", "target": "top_right" if obs[0] < 0 else "bottom_left"})
    obs, r2, term, _, info = env.step(hold)
    assert r2 < -0.05 and not term
    assert r2 == pytest.approx(-scene.step_distance(env.task, obs)) and info["reward_distance"] == r2
    env.close()


def test_nan_action_raises_and_actions_are_clipped():
    env = PushBlocksEnv(n_blocks=1)
    env.reset(seed=1)
    for bad in ([np.nan, 0.0], [0.0, np.inf]):
        with pytest.raises(ValueError, match="finite"):
            env.step(np.array(bad, np.float32))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3, np.float32))
    a = rollout_actions(env, [[5.0, -5.0]] * 10)
    b = rollout_actions(env, [[WORKSPACE_HALF, -WORKSPACE_HALF]] * 10)
    np.testing.assert_array_equal(a, b)
    assert a[-1][0] == pytest.approx(WORKSPACE_HALF, abs=0.003) and a[-1][1] == pytest.approx(-WORKSPACE_HALF, abs=0.003)
    env.close()


def rollout_actions(env: PushBlocksEnv, actions) -> np.ndarray:
    env.reset(seed=11, options={"task": {"skill": "reach", "target": "center"}})
    return np.array([env.step(np.asarray(a, np.float32))[0] for a in actions])


def test_servo_tracks_target_and_weaker_gear_is_slower():
    def travel(gear_scale: float) -> float:
        env = PushBlocksEnv(n_blocks=1)
        env.model.actuator_gear[:, 0] *= gear_scale
        obs, _ = env.reset(seed=2, options={"task": {"skill": "reach", "target": "center"}})
        start = obs[:2].copy()
        target = -np.sign(start) * 0.2
        obs = env.step(target.astype(np.float32))[0]
        env.close()
        return float(np.linalg.norm(obs[:2] - start))

    full, weak = travel(1.0), travel(0.1)
    assert weak < 0.6 * full
    env = PushBlocksEnv(n_blocks=1)
    env.reset(seed=2)
    for _ in range(5):
        obs = env.step(np.array([0.1, -0.05], np.float32))[0]
    np.testing.assert_allclose(obs[:2], [0.1, -0.05], atol=2e-3)
    env.close()


@pytest.mark.parametrize("size", [64, 96])
def test_render_shapes_and_red_block_visible(size):
    env = gym.make(ENV_ID, render_mode="rgb_array", width=size, height=size, n_blocks=1)
    obs, _ = env.reset(seed=4)
    img = env.render()
    assert img.shape == (size, size, 3) and img.dtype == np.uint8
    r, g, b = (img[..., i].astype(int) for i in range(3))
    red = (r > 150) & (g < 90) & (b < 90)
    assert red.sum() >= (size / 64) ** 2 * 6, "the red block should be visible"
    rows, cols = np.nonzero(red)
    # Top-down camera: x to the right, y up; the table (with walls) fills most of the image.
    x, y = scene.block_xy(obs, "red_block")
    half = (1.2 - 0.04) * math.tan(math.radians(15))  # visible half-width at the block's top face (m)
    col = (x / half + 1) / 2 * size
    row = (1 - y / half) / 2 * size
    assert abs(cols.mean() - col) < 0.05 * size and abs(rows.mean() - row) < 0.05 * size
    blue = (b > 150) & (r < 90) & (g < 120)
    assert blue.sum() == 0, "absent blocks are not drawn"
    env.close()
    assert env.unwrapped._renderer is None


def test_render_without_mode_returns_none():
    env = PushBlocksEnv()
    env.reset(seed=0)
    with pytest.warns(UserWarning):
        assert env.render() is None
    env.close()


def test_model_geometry_contacts_only_where_expected():
    env = PushBlocksEnv()
    m = env.model
    assert m.geom("table").contype[0] == 0 and m.geom("table").conaffinity[0] == 0
    assert m.opt.timestep * env.frame_skip == pytest.approx(0.1)
    assert 0.2 <= m.body("pusher").mass[0] <= 0.5
    for b in BLOCK_NAMES:
        assert m.body(b).mass[0] == pytest.approx(0.1)
    assert mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, "top") >= 0
    env.close()
